"""Build and cache the Debian 12 disk image the VM tests boot.

The guest has no network device, so the image must already hold everything
`./install.sh --offline` and `invoke setup` need: every Debian package
install.sh installs, a wheelhouse of the project's Python dependencies, and the
container rootfs built by the project's own root/linux/rootfs/setup.sh. Each
piece is built on the host once and cached outside the checkout under a key
hashed from what goes into it, so an unchanged tree boots at once and a
changed package list, builder, requirement or rootfs script rebuilds only what
it affects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = Path(__file__).resolve().parent / "image-files"
DEFAULT_CACHE = "/var/cache/warden-vm"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_SIZE = "8G"
# What a booting Debian needs besides install.sh's packages.
GUEST_PACKAGES = ("systemd-sysv", "linux-image-amd64", "udev", "kmod", "dbus", "e2fsprogs")
# The build tools the host needs, by Debian package.
HOST_TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
              "mkfs.ext4": "e2fsprogs", "debootstrap": "debootstrap"}
WHEEL_TOOLS = ("pip", "setuptools", "wheel")
ROOTFS_SCRIPTS = ("root/linux/rootfs/setup.sh", "root/linux/rootfs/mirror.sh",
                  "root/linux/skeleton/lib/dev.sh")
GUEST_WHEELHOUSE = "/opt/warden/wheelhouse"
# Timers that would wake up in a test run and reach for the network or disk.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                "fstrim.timer", "man-db.timer")

Step = Callable[[str], None]


def step(message: str) -> None:
    """Progress line in the style of tasks.py's `_step`."""
    print(f"==> {message}", flush=True)


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The cache root: WARDEN_VM_CACHE, else /var/cache/warden-vm (never the checkout)."""
    return Path(env.get("WARDEN_VM_CACHE") or DEFAULT_CACHE)


def digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """A short sha256 over named parts; the names keep `ab`+`c` apart from `a`+`bc`."""
    h = hashlib.sha256()
    for name, data in parts:
        for piece in (name.encode(), data):
            h.update(len(piece).to_bytes(8, "big"))
            h.update(piece)
    return h.hexdigest()[:16]


def install_packages(root: Path = ROOT) -> tuple[str, ...]:
    """The Debian packages install.sh installs, read from install.sh itself."""
    out = subprocess.run([str(root / "install.sh"), "--print-packages"], check=True,
                         capture_output=True, text=True).stdout
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def wheel_requirements(pyproject: Path) -> tuple[str, ...]:
    """pip's own tools plus the runtime and test dependencies pyproject declares."""
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = list(project.get("dependencies", []))
    deps += project.get("optional-dependencies", {}).get("test", [])
    return WHEEL_TOOLS + tuple(deps)


def rootfs_path(config: Path) -> str:
    """Where the server looks for the container rootfs (server.container_rootfs_path)."""
    path: str = yaml.safe_load(config.read_text())["server"]["container_rootfs_path"]
    return path


def _builder_files() -> list[Path]:
    return [Path(__file__).resolve(), *sorted(p for p in FILES.iterdir() if p.is_file())]


@dataclass(frozen=True)
class ImageInputs:
    """Everything that decides an image's content, and the cache keys made from it."""

    packages: tuple[str, ...]
    requirements: tuple[str, ...]
    python: str
    builder: tuple[tuple[str, bytes], ...]
    rootfs_scripts: tuple[tuple[str, bytes], ...]
    rootfs_path: str
    suite: str = SUITE

    @classmethod
    def from_checkout(cls, root: Path = ROOT) -> ImageInputs:
        """Read the inputs from a checkout (install.sh, pyproject, scripts, config)."""
        return cls(
            packages=GUEST_PACKAGES + install_packages(root),
            requirements=wheel_requirements(root / "pyproject.toml"),
            python="{}.{}".format(*sys.version_info[:2]),
            builder=tuple((p.name, p.read_bytes()) for p in _builder_files()),
            rootfs_scripts=tuple((s, (root / s).read_bytes()) for s in ROOTFS_SCRIPTS),
            rootfs_path=rootfs_path(root / "config" / "linux.yml"),
        )

    def wheelhouse_key(self) -> str:
        return digest([("python", self.python.encode()),
                       ("requirements", "\n".join(self.requirements).encode())])

    def rootfs_key(self) -> str:
        return digest(self.rootfs_scripts)

    def image_key(self) -> str:
        return digest([("suite", self.suite.encode()),
                       ("packages", "\n".join(self.packages).encode()),
                       ("wheelhouse", self.wheelhouse_key().encode()),
                       ("rootfs", self.rootfs_key().encode()),
                       ("rootfs_path", self.rootfs_path.encode()),
                       *self.builder])


@dataclass(frozen=True)
class Image:
    """A built image in the cache: the raw root disk and the kernel to boot it with."""

    dir: Path

    @property
    def disk(self) -> Path:
        return self.dir / "base.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def ready(self) -> bool:
        return (self.dir / "ready").exists()


def _run(argv: list[str], **kwargs: Any) -> None:
    subprocess.run(argv, check=True, **kwargs)


def ensure_tools(say: Step = step) -> None:
    """Install qemu and friends with apt-get when missing (a fresh Debian 12 CI host)."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    say(f"installing the VM tools: apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def host_mirror(suite: str = SUITE) -> str:
    """The host's apt mirror, by the same shell function the rootfs build uses."""
    script = ROOT / "root" / "linux" / "rootfs" / "mirror.sh"
    out = subprocess.run(["bash", "-c", 'source "$1" && host_mirror "$2"', "_", str(script), suite],
                         capture_output=True, text=True).stdout.split()
    return os.environ.get("ROOTFS_MIRROR") or (out[0] if out else DEFAULT_MIRROR)


def _fresh(path: Path) -> Path:
    """An empty directory at path, removing a leftover of an interrupted build."""
    if path.exists():
        _run(["rm", "-rf", "--one-file-system", str(path)])
    path.mkdir(parents=True)
    return path


def build_wheelhouse(target: Path, requirements: Iterable[str], say: Step = step) -> None:
    """Wheels (not sdists: the guest cannot build them) of every requirement, for this Python."""
    if target.exists():
        say(f"wheelhouse cached: {target}")
        return
    say(f"building the wheelhouse: {' '.join(requirements)}")
    work = _fresh(target.with_name(target.name + ".tmp"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(work), *requirements])
    work.rename(target)


def build_rootfs(target: Path, say: Step = step) -> None:
    """The container rootfs, by root/linux/rootfs/setup.sh (which skips a finished one)."""
    say(f"container rootfs: root/linux/rootfs/setup.sh {target}")
    _run([str(ROOT / "root" / "linux" / "rootfs" / "setup.sh"), str(target)])


def debootstrap(root: Path, packages: Iterable[str], say: Step = step) -> None:
    """A bootable minbase Debian with every package install.sh wants (private mounts)."""
    mirror = host_mirror()
    say(f"debootstrap {SUITE} from {mirror} into {root} (about a minute)")
    _run(["unshare", "-m", "debootstrap", "--variant=minbase",
          f"--include={','.join(packages)}", SUITE, str(root), mirror])


def _chroot(root: Path, *argv: str) -> None:
    _run(["unshare", "-m", "chroot", str(root), "/usr/bin/env", "-i",
          "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *argv])


def _check_python(root: Path, wanted: str) -> None:
    """The wheelhouse holds wheels for the host's Python: the guest's must be the same."""
    out = subprocess.run(["chroot", str(root), "python3", "-c",
                          "import sys; print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    if out != wanted:
        raise RuntimeError(f"the guest has Python {out}, the wheelhouse was built for {wanted}: "
                           f"run vm.image with a Python {out} (e.g. the checkout's .venv on Debian 12)")


def configure_guest(root: Path, wheelhouse: Path, rootfs: Path, rootfs_at: str,
                    python: str, say: Step = step) -> None:
    """Make the debootstrapped tree boot to the run unit, with the wheelhouse and rootfs in place."""
    say("configuring the guest: fstab, hostname, run unit, wheelhouse, container rootfs")
    _check_python(root, python)
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc" / "hostname").write_text("warden-vm\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 warden-vm\n"
                                        "::1 localhost ip6-localhost ip6-loopback\n")
    unit = root / "etc" / "systemd" / "system" / "warden-vm-run.service"
    shutil.copy2(FILES / "warden-vm-run.service", unit)
    runner = root / "usr" / "local" / "sbin" / "warden-vm-run"
    shutil.copy2(FILES / "warden-vm-run", runner)
    runner.chmod(0o755)
    _chroot(root, "systemctl", "enable", "--quiet", "warden-vm-run.service")
    _chroot(root, "systemctl", "mask", "--quiet", *MASKED_UNITS)
    _lxc_without_bridge(root)
    _copy_tree(wheelhouse, root / GUEST_WHEELHOUSE.lstrip("/"))
    _copy_tree(rootfs, root / rootfs_at.lstrip("/"))
    _run(["rm", "-rf", *map(str, (root / "var" / "cache" / "apt" / "archives").glob("*.deb")),
          *map(str, (root / "var" / "lib" / "apt" / "lists").glob("*_*"))])


def _lxc_without_bridge(root: Path) -> None:
    """What install.sh does where it installs lxc: lxc-net off, by its own USE_LXC_BRIDGE."""
    _chroot(root, "systemctl", "disable", "--quiet", "lxc-net.service")
    default = root / "etc" / "default" / "lxc-net"
    if default.exists():
        lines = ['USE_LXC_BRIDGE="false"' if line.startswith("USE_LXC_BRIDGE=") else line
                 for line in default.read_text().splitlines()]
        default.write_text("\n".join(lines) + "\n")


def _copy_tree(source: Path, dest: Path) -> None:
    """cp -a: keeps owners, modes, device nodes, links and xattrs of a root tree."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-a", "--", str(source), str(dest)])


def _boot_files(root: Path, image: Path) -> None:
    """The image's own kernel and initrd, for qemu -kernel/-initrd."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel or initrd in {root / 'boot'}")
    shutil.copy2(kernels[-1], image / "vmlinuz")
    shutil.copy2(initrds[-1], image / "initrd.img")


def make_disk(root: Path, disk: Path, size: str = IMAGE_SIZE, say: Step = step) -> None:
    """A raw ext4 disk filled from a directory: no loop device, no mount."""
    say(f"making the {size} ext4 disk {disk} (sparse) from {root}")
    _run(["mkfs.ext4", "-q", "-F", "-L", "warden-vm", "-d", str(root), str(disk), size])


def prune(cache: Path, keep: Iterable[str], say: Step = step) -> None:
    """Remove the cache's images, wheelhouses and rootfs built from older inputs."""
    keep = set(keep)
    for path in sorted(cache.iterdir()):
        if path.is_dir() and path.name.split("-")[0] in ("image", "wheelhouse", "rootfs") \
                and path.name not in keep:
            say(f"removing the outdated {path}")
            _run(["rm", "-rf", "--one-file-system", str(path)])


def build(inputs: ImageInputs, cache: Path, say: Step = step) -> Image:
    """The image for these inputs: from the cache, else built (and the old ones pruned)."""
    names = {"image": f"image-{inputs.image_key()}",
             "wheelhouse": f"wheelhouse-{inputs.wheelhouse_key()}",
             "rootfs": f"rootfs-{inputs.rootfs_key()}"}
    image = Image(cache / names["image"])
    if image.ready:
        say(f"image cached: {image.dir}")
        return image
    if os.geteuid() != 0:
        raise RuntimeError("building the VM image needs root (debootstrap, chroot)")
    cache.mkdir(parents=True, exist_ok=True)
    ensure_tools(say)
    build_wheelhouse(cache / names["wheelhouse"], inputs.requirements, say)
    build_rootfs(cache / names["rootfs"], say)
    work = _fresh(cache / (names["image"] + ".tmp"))
    tree = work / "root"
    debootstrap(tree, inputs.packages, say)
    configure_guest(tree, cache / names["wheelhouse"], cache / names["rootfs"],
                    inputs.rootfs_path, inputs.python, say)
    _boot_files(tree, work)
    make_disk(tree, work / "base.img", say=say)
    _run(["rm", "-rf", "--one-file-system", str(tree)])
    (work / "ready").write_text(f"key={inputs.image_key()}\n")
    work.rename(image.dir)
    prune(cache, names.values(), say)
    say(f"image ready: {image.dir}")
    return image
