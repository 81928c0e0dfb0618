"""The `vm` invoke collection: `vm.image`, `vm.run -- CMD`, `vm.test`."""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from . import guest as vmguest
from . import image as vmimage

DEFAULT_TIMEOUT = 3600
DEFAULT_TESTS = "tests/linux_kernel tests/linux_limits tests/linux_net tests/integration_linux tests/c"
GUEST_TEST_SCRIPT = "vm/guest-test.sh"


def _image() -> vmimage.Image:
    """The image, built at most once at a time: a second vm.* waits for the first's build."""
    cache = vmimage.cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return vmimage.build(vmimage.ImageInputs.from_checkout(), cache)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise Exit(f"vm.image: {exc}", code=1) from None


def _run(command: str, timeout: float, console: bool) -> int:
    image = _image()
    cache = vmimage.cache_dir()
    try:
        accel = vmguest.choose_accel(os.environ.get("WARDEN_VM_ACCEL"),
                                     lambda: vmguest.kvm_works(cache, image))
    except ValueError as exc:
        raise Exit(str(exc), code=2) from None
    return vmguest.run_command(image, command, accel, float(timeout), vmimage.ROOT, console)


@task
def image(c: Context) -> None:
    """Build (or find in the cache) the Debian 12 VM test image: WARDEN_VM_CACHE, default /var/cache/warden-vm."""
    img = _image()
    vmimage.step(f"disk {img.disk}, kernel {img.kernel}, initrd {img.initrd}")


_RUN_HELP = {"timeout": f"kill the guest after this many seconds (default {DEFAULT_TIMEOUT})",
             "console": "also show the guest's serial console (kernel and systemd messages)"}


@task(help=_RUN_HELP)
def run(c: Context, timeout: int = DEFAULT_TIMEOUT, console: bool = False) -> None:
    """Run `-- CMD...` as root in a fresh Debian 12 guest, in a copy of this checkout; exit with its status."""
    command = c.remainder.strip()
    if not command:
        raise Exit("usage: invoke vm.run [--timeout N] -- CMD...", code=2)
    raise Exit(code=_run(command, timeout, console))


@task(help={**_RUN_HELP, "tests": f"pytest arguments (default: {DEFAULT_TESTS})"})
def test(c: Context, tests: str = DEFAULT_TESTS, timeout: int = DEFAULT_TIMEOUT, console: bool = False) -> None:
    """README's setup in a fresh guest (install.sh, invoke setup, warden.service + Ping), then pytest."""
    command = f"bash {GUEST_TEST_SCRIPT} {' '.join(shlex.quote(a) for a in shlex.split(tests))}"
    raise Exit(code=_run(command, timeout, console))


ns = Collection("vm", image, run, test)
