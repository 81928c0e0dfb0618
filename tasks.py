"""Operator and developer tasks: `invoke setup warden.start`, `invoke test`, ...

Run `invoke --list` for the list. Paths and the backend come from the config
file (default `config/linux.yml`), the same file the server reads.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from invoke import Collection, Exit, task

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = "config/linux.yml"
SKELETON_BINARIES = {
    "insecure": ["iomux/iomux-spawn", "iomux/iomux-link"],
    "linux": ["iomux/iomux-spawn", "iomux/iomux-link", "wsh/wshd", "wsh/wsh"],
}


def _config(path: str):
    sys.path.insert(0, str(ROOT))
    from warden import config

    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise Exit(f"config error: {exc}", code=2) from None


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


@task
def build(c):
    """Compile the C helpers in src/ and copy them into the container skeletons."""
    _step("building C helpers (make -C src)")
    c.run(f"make -C {ROOT / 'src'} all", echo=False)
    for backend, binaries in SKELETON_BINARIES.items():
        target = ROOT / "root" / backend / "skeleton" / "bin"
        target.mkdir(parents=True, exist_ok=True)
        for binary in binaries:
            source = ROOT / "src" / binary
            if source.exists():
                shutil.copy2(source, target / source.name)
    _step("helpers installed into root/*/skeleton/bin")


@task(help={"config": f"config file (default {DEFAULT_CONFIG})"})
def rootfs(c, config=DEFAULT_CONFIG):
    """Build the container root filesystem named by the config (cached; skipped when built)."""
    cfg = _config(config)
    if cfg.server.backend != "linux":
        _step("insecure backend: no rootfs needed")
        return
    path = cfg.server.container_rootfs_path
    script = ROOT / "root" / "linux" / "rootfs" / "setup.sh"
    if not script.exists():
        raise Exit("root/linux/rootfs/setup.sh is missing", code=1)
    _step(f"root filesystem at {path}")
    c.run(f"{script} {path}", pty=False)


@task(pre=[build], help={"config": f"config file (default {DEFAULT_CONFIG})"})
def setup(c, config=DEFAULT_CONFIG):
    """Build the helpers and the root filesystem: everything the server needs."""
    rootfs(c, config=config)
    _step("setup complete")


@task(help={"config": f"config file (default {DEFAULT_CONFIG})"})
def start(c, config=DEFAULT_CONFIG):
    """Run the server in the foreground (SIGUSR2 drains it, leaving containers running)."""
    _config(config)
    _step(f"starting warden with {config}")
    c.run(f"{sys.executable} -m warden.server --config {config}", pty=False)


@task(help={"config": f"config file (default {DEFAULT_CONFIG})",
            "all": "also remove live leftovers and the rules of every pool (no other warden on this host)"})
def clear(c, config=DEFAULT_CONFIG, all=False):
    """Destroy every container in the depot and every kernel object warden made for it."""
    cfg = _config(config)
    script = ROOT / "root" / cfg.server.backend / "clear.sh"
    depot = Path(cfg.server.container_depot_path)
    if not depot.exists():
        _step(f"nothing to clear: {depot} does not exist")
        return
    flags = "--all " if all and cfg.server.backend == "linux" else ""
    c.run(f"{script} {flags}{depot}", env={"POOL_NETWORK": cfg.network.pool_network})


SERVICE_TEMPLATE = ROOT / "config" / "warden.service"
SERVICE_PATH = "/etc/systemd/system/warden.service"


def render_service(root: Path = ROOT) -> str:
    """config/warden.service with this checkout's path in place of @ROOT@."""
    return SERVICE_TEMPLATE.read_text().replace("@ROOT@", str(root))


@task(help={"dest": f"where to write the unit (default {SERVICE_PATH})",
            "reload": "run systemctl daemon-reload afterwards (default: yes)"})
def install_service(c, dest=SERVICE_PATH, reload=True):
    """Install warden.service for this checkout (Delegate=yes; a restart leaves containers running)."""
    Path(dest).write_text(render_service())
    _step(f"wrote {dest}")
    if reload:
        c.run("systemctl daemon-reload")
        _step("systemctl daemon-reload done: systemctl start warden")


@task(help={"k": "only tests matching this expression", "verbose": "pytest -v"})
def test(c, k=None, verbose=False):
    """Run the whole test suite (unit, C helpers, integration)."""
    args = ["-q" if not verbose else "-v", "-ra"]
    if k:
        args += ["-k", repr(k)]
    c.run(f"{sys.executable} -m pytest {' '.join(args)}", pty=False)


@task(help={"json": "also write the results as JSON to this file",
            "quick": "fewer iterations and smaller sizes (about 20 s; a full run takes about 2 minutes)",
            "only": "comma-separated benchmarks: run_true, lifecycle, scale, stream, ping (default: all)"})
def bench(c, json=None, quick=False, only=None):
    """Benchmark warden against crun, runc, LXC, a kernel-only reference and a pipe (needs root)."""
    args = []
    if json:
        args += ["--json", shlex.quote(str(Path(json).resolve()))]
    if quick:
        args.append("--quick")
    if only:
        args += ["--only", shlex.quote(only)]
    with c.cd(str(ROOT)):
        c.run(f"{sys.executable} -m bench {' '.join(args)}", pty=False)


ns = Collection(build, rootfs, setup, test, bench)
ns.add_collection(Collection("warden", start, clear, install_service))

from vm.tasks import ns as vm_collection  # noqa: E402  (vm/ is beside this file)

ns.add_collection(vm_collection)
