"""Operator and developer tasks: `invoke setup warden.start`, `invoke test`, ...

Run `invoke --list` for the list. Paths and the backend come from the config
file (default `config/linux.yml`), the same file the server reads.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import sh
from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

if TYPE_CHECKING:
    from warden.config import Config

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = "config/linux.yml"
SKELETON_BINARIES = {
    "insecure": ["iomux/iomux-spawn", "iomux/iomux-link"],
    "linux": ["iomux/iomux-spawn", "iomux/iomux-link", "wsh/wshd", "wsh/wsh", "devices/devices-bpf"],
}


def _config(path: str) -> Config:
    sys.path.insert(0, str(ROOT))
    from warden import config

    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise Exit(f"config error: {exc}", code=2) from None


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _sh(program: str | Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Run one of the project's scripts or tools through `sh`, its output going
    straight to ours as it comes; a failure ends the task with its status.
    (The server runs its scripts with asyncio instead: see README, Design notes.)"""
    try:
        sh.Command(str(program))(*args, _out=sys.stdout, _err=sys.stderr, _env={**os.environ, **(env or {})})
    except sh.ErrorReturnCode as exc:
        raise Exit(f"{program} {' '.join(args)} failed with exit status {exc.exit_code}", code=exc.exit_code) from None
    except sh.CommandNotFound:
        raise Exit(f"{program} not found", code=127) from None


@task
def build(c: Context) -> None:
    """Compile the C helpers in src/ and copy them into the container skeletons."""
    _step("building C helpers (make -C src)")
    _sh("make", "-C", str(ROOT / "src"), "all")
    for backend, binaries in SKELETON_BINARIES.items():
        target = ROOT / "root" / backend / "skeleton" / "bin"
        target.mkdir(parents=True, exist_ok=True)
        for binary in binaries:
            source = ROOT / "src" / binary
            if source.exists():
                shutil.copy2(source, target / source.name)
    _step("helpers installed into root/*/skeleton/bin")


@task(help={"config": f"config file (default {DEFAULT_CONFIG})"})
def rootfs(c: Context, config: str = DEFAULT_CONFIG) -> None:
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
    _sh(script, path)


@task(pre=[build], help={"config": f"config file (default {DEFAULT_CONFIG})"})
def setup(c: Context, config: str = DEFAULT_CONFIG) -> None:
    """Build the helpers and the root filesystem: everything the server needs."""
    rootfs(c, config=config)
    _step("setup complete")


@task(help={"config": f"config file (default {DEFAULT_CONFIG})"})
def start(c: Context, config: str = DEFAULT_CONFIG) -> None:
    """Run the server in the foreground (SIGUSR2 drains it, leaving containers running)."""
    _config(config)
    _step(f"starting warden with {config}")
    c.run(f"{sys.executable} -m warden.server --config {config}", pty=False)


@task(help={"config": f"config file (default {DEFAULT_CONFIG})",
            "all": "also remove live leftovers and the rules of every pool (no other warden on this host)"})
def clear(c: Context, config: str = DEFAULT_CONFIG, all: bool = False) -> None:
    """Destroy every container in the depot and every kernel object warden made for it."""
    cfg = _config(config)
    script = ROOT / "root" / cfg.server.backend / "clear.sh"
    depot = Path(cfg.server.container_depot_path)
    if not depot.exists():
        _step(f"nothing to clear: {depot} does not exist")
        return
    flags = ["--all"] if all and cfg.server.backend == "linux" else []
    _sh(script, *flags, str(depot), env={"POOL_NETWORK": cfg.network.pool_network})


SERVICE_TEMPLATE = ROOT / "config" / "warden.service"
SERVICE_PATH = "/etc/systemd/system/warden.service"


def render_service(root: Path = ROOT) -> str:
    """config/warden.service with this checkout's path in place of @ROOT@."""
    return SERVICE_TEMPLATE.read_text().replace("@ROOT@", str(root))


@task(help={"dest": f"where to write the unit (default {SERVICE_PATH})",
            "reload": "run systemctl daemon-reload afterwards (default: yes)"})
def install_service(c: Context, dest: str = SERVICE_PATH, reload: bool = True) -> None:
    """Install warden.service for this checkout (Delegate=yes; a restart leaves containers running)."""
    Path(dest).write_text(render_service())
    _step(f"wrote {dest}")
    if reload:
        c.run("systemctl daemon-reload")
        _step("systemctl daemon-reload done: systemctl start warden")


LINTERS = {
    "ruff": "-m ruff check",
    "mypy --strict": "-m mypy",
    "requests.py against spec/protocol.yml": "-m warden.protocol.generate --check",
}


@task
def lint(c: Context) -> None:
    """Check the Python code: ruff, mypy --strict, and the generated requests.py (config in pyproject.toml)."""
    failed = []
    with c.cd(str(ROOT)):
        for name, args in LINTERS.items():
            _step(name)
            result = c.run(f"{sys.executable} {args}", warn=True, pty=False)
            if result is None or result.failed:
                failed.append(name)
    if failed:
        raise Exit(f"lint failed: {', '.join(failed)}", code=1)


@task(pre=[lint], help={"k": "only tests matching this expression", "verbose": "pytest -v"})
def test(c: Context, k: str | None = None, verbose: bool = False) -> None:
    """Lint, then run the whole test suite (unit, C helpers, integration)."""
    args = ["-q" if not verbose else "-v", "-ra"]
    if k:
        args += ["-k", repr(k)]
    c.run(f"{sys.executable} -m pytest {' '.join(args)}", pty=False)


@task(help={"seconds": "how long to fuzz (default 60)"})
def fuzz(c: Context, seconds: float = 60) -> None:
    """Fuzz a real insecure server with frames from spec/protocol.yml (tests/integration/test_fuzz.py)."""
    c.run(f"{sys.executable} -m pytest -q -ra tests/integration/test_fuzz.py", pty=False,
          env={"WARDEN_FUZZ_SECONDS": str(seconds)})


@task(help={"json": "also write the results as JSON to this file",
            "quick": "fewer iterations and smaller sizes (about 20 s; a full run takes about 2 minutes)",
            "only": "comma-separated benchmarks: run_true, lifecycle, scale, stream, ping (default: all)"})
def bench(c: Context, json: str | None = None, quick: bool = False, only: str | None = None) -> None:
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


ns = Collection(build, rootfs, setup, lint, test, fuzz, bench)
ns.add_collection(Collection("warden", start, clear, install_service))

from vm.tasks import ns as vm_collection  # noqa: E402  (vm/ is beside this file)

ns.add_collection(vm_collection)
