"""Boot a throw-away guest from the cached image, run one command, stream its output.

Each run gets a qcow2 overlay over the image (the image itself is never
written) and a small job disk with a copy of the checkout and the command, so
the guest can neither change the cache nor the host's checkout. The guest's
serial console goes to a log file (shown only when something goes wrong, or
with --console); the command's output comes through a virtio port, which the
host reads live and passes to the terminal. The guest's last line,
`WARDEN-VM-EXIT <n>`, carries the command's exit status.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .image import Image, step

START_MARKER = b"WARDEN-VM-START"
EXIT_MARKER = b"WARDEN-VM-EXIT"
MARKERS = (START_MARKER, EXIT_MARKER)
KERNEL_CMDLINE = "console=ttyS0 root=/dev/vda rw panic=-1"
TIMEOUT_STATUS = 124
NO_STATUS = 125
POWEROFF_GRACE = 60.0
ACCELS = ("kvm", "tcg")
KVM_PROBE_SECONDS = 30.0
# Printed by every kernel once it has booted far enough to start the initramfs.
KVM_PROBE_SIGN = b"Run /init as init process"
JOB_DISK_HEADROOM = 2 << 30  # .venv, the C builds, test droppings

Say = Callable[[str], None]


@dataclass
class OutputFilter:
    """Passes the command's output through and takes the harness's marker lines out.

    Output is passed on as it comes (pytest's progress dots have no newline), except
    a line that could still turn out to be a marker, which is held until it ends.
    """

    status: int | None = None
    started: bool = False
    _held: bytes = b""
    _mid_line: bool = False
    _blank: bool = False  # an empty line not shown yet: the one the guest puts before EXIT

    def feed(self, data: bytes) -> bytes:
        """The part of data to show; markers seen update status and started."""
        out = bytearray()
        buf, self._held = self._held + data, b""
        while buf and self.status is None:
            end = buf.find(b"\n")
            line, buf = (buf, b"") if end < 0 else (buf[:end + 1], buf[end + 1:])
            if self._mid_line:
                out += line
            elif end < 0 and _may_be_marker(line):
                self._held = line
            elif not self._take_marker(line):
                out += self._flush_blank() + (b"" if self._hold_blank(line) else line)
            self._mid_line = not line.endswith(b"\n") and not self._held
        return bytes(out)

    def _hold_blank(self, line: bytes) -> bool:
        self._blank = line == b"\n"
        return self._blank

    def _flush_blank(self) -> bytes:
        blank, self._blank = self._blank, False
        return b"\n" if blank else b""

    def _take_marker(self, line: bytes) -> bool:
        words = line.split()
        if words[:1] == [START_MARKER]:
            self.started = True
            return True
        if words[:1] == [EXIT_MARKER] and len(words) == 2 and words[1].isdigit():
            self.status = int(words[1])
            self._blank = False
            return True
        return False


def _may_be_marker(partial: bytes) -> bool:
    return any(m.startswith(partial) or partial.startswith(m) for m in MARKERS)


@dataclass(frozen=True)
class Guest:
    """One guest's qemu settings: its disks, its logs and the accelerator."""

    kernel: Path
    initrd: Path
    root_disk: Path  # a qcow2 overlay over the image
    job_disk: Path
    console_log: Path
    output_log: Path
    accel: str = "tcg"
    memory_mb: int = 2048
    cpus: int = 2


def qemu_argv(g: Guest) -> list[str]:
    """qemu-system-x86_64's arguments: no network, no display, console and output to files."""
    if g.accel not in ACCELS:
        raise ValueError(f"accel must be one of {ACCELS}, not {g.accel!r}")
    kvm = g.accel == "kvm"
    return [
        "qemu-system-x86_64",
        "-accel", "kvm" if kvm else "tcg,thread=multi",
        "-cpu", "host" if kvm else "max",
        "-smp", str(g.cpus), "-m", str(g.memory_mb),
        "-kernel", str(g.kernel), "-initrd", str(g.initrd), "-append", KERNEL_CMDLINE,
        "-drive", f"file={g.root_disk},format=qcow2,if=virtio,cache=unsafe",
        "-drive", f"file={g.job_disk},format=raw,if=virtio,cache=unsafe",
        "-nic", "none", "-display", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{g.console_log}",
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=out,path={g.output_log}",
        "-device", "virtserialport,chardev=out,name=warden.out",
    ]


def choose_accel(override: str | None, kvm_works: Callable[[], bool]) -> str:
    """WARDEN_VM_ACCEL if set, else KVM when a real boot under it works, else TCG."""
    if override:
        if override not in ACCELS:
            raise ValueError(f"WARDEN_VM_ACCEL must be one of {ACCELS}, not {override!r}")
        return override
    return "kvm" if kvm_works() else "tcg"


def kvm_works(cache: Path, image: Image, say: Say = step) -> bool:
    """Whether KVM boots a kernel here: /dev/kvm exists on hosts where guests still hang.

    The answer is probed once by a real boot and kept in <cache>/accel-probe
    (delete it to probe again).
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    record = cache / "accel-probe"
    if record.exists():
        return record.read_text().strip() == "kvm"
    say(f"probing KVM: a kernel must boot under it within {KVM_PROBE_SECONDS:.0f} s")
    ok = probe_kvm(image)
    say(f"KVM {'works' if ok else 'does not work here'}: using {'kvm' if ok else 'tcg'}")
    record.write_text("kvm\n" if ok else "tcg\n")
    return ok


def probe_kvm(image: Image, seconds: float = KVM_PROBE_SECONDS) -> bool:
    """Boot the image's kernel and initrd under KVM until it starts /init, or give up."""
    with tempfile.TemporaryDirectory(prefix="warden-vm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        console.touch()
        argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "512",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd),
                "-append", "console=ttyS0 panic=-1", "-nic", "none", "-display", "none",
                "-monitor", "none", "-no-reboot", "-serial", f"file:{console}"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                if KVM_PROBE_SIGN in console.read_bytes():
                    return True
                time.sleep(0.2)
            return KVM_PROBE_SIGN in console.read_bytes()
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def checkout_files(root: Path) -> list[str]:
    """The checkout's files as git sees them: tracked plus untracked-but-not-ignored.

    Deleted files are left out, and so is .venv (the guest makes its own).
    """
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    names = sorted({n.decode() for n in out.split(b"\0") if n})
    return [n for n in names if not n.startswith(".venv/")
            and (os.path.lexists(root / n))]


def copy_checkout(root: Path, dest: Path) -> int:
    """Copy the checkout's files into dest (modes and links kept); returns the bytes copied."""
    total = 0
    for name in checkout_files(root):
        source, target = root / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        total += source.lstat().st_size
    return total


def make_job_disk(root: Path, command: str, work: Path) -> Path:
    """A raw ext4 disk with checkout/ and command, made without a loop mount."""
    tree = work / "job"
    size = copy_checkout(root, tree / "checkout") + JOB_DISK_HEADROOM
    (tree / "command").write_text(command + "\n")
    disk = work / "job.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "warden-job", "-d", str(tree), str(disk),
                    f"{size >> 20}M"], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(tree)
    return disk


def make_overlay(image: Image, work: Path) -> Path:
    """A copy-on-write qcow2 over the image: the guest's writes stay in the run's temp dir."""
    overlay = work / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "raw",
                    str(overlay)], check=True)
    return overlay


@dataclass
class Run:
    """A running guest: qemu, the files it writes, and what the host has read of them."""

    guest: Guest
    proc: subprocess.Popen[bytes]
    out: BinaryIO
    show_console: bool = False
    filter: OutputFilter = field(default_factory=OutputFilter)
    started_at: float = field(default_factory=time.monotonic)
    _files: dict[Path, BinaryIO] = field(default_factory=dict)

    def pump(self) -> None:
        """Pass on what the guest wrote since the last call."""
        data = self._read(self.guest.output_log)
        if data:
            self.out.write(self.filter.feed(data))
        if self.show_console:
            self.out.write(self._read(self.guest.console_log))
        self.out.flush()

    def _read(self, path: Path) -> bytes:
        if path not in self._files:
            self._files[path] = path.open("rb")
        return self._files[path].read()

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def console_tail(guest: Guest, lines: int = 30) -> str:
    """The end of the guest's console, to say why a guest failed."""
    text = guest.console_log.read_bytes().decode(errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])


def supervise(run: Run, timeout: float, say: Say = step) -> int:
    """Stream the guest's output until it powers off; the command's status, or why not."""
    announced = False
    status_seen_at: float | None = None
    while True:
        run.pump()
        if run.filter.started and not announced:
            announced = True
            say(f"guest up after {run.elapsed():.1f} s")
        if run.filter.status is not None and status_seen_at is None:
            status_seen_at = time.monotonic()
        if run.proc.poll() is not None:
            run.pump()
            break
        if run.elapsed() > timeout:
            _stop(run.proc)
            say(f"vm: TIMEOUT: the guest did not finish within {timeout:.0f} s; killed it. "
                f"Its console ended with:\n{console_tail(run.guest)}")
            return TIMEOUT_STATUS
        if status_seen_at is not None and time.monotonic() - status_seen_at > POWEROFF_GRACE:
            say(f"vm: the guest did not power off within {POWEROFF_GRACE:.0f} s of finishing; killed it")
            _stop(run.proc)
            break
        time.sleep(0.05)
    if run.filter.status is None:
        say(f"vm: the guest stopped (qemu exit {run.proc.returncode}) without reporting the "
            f"command's status. Its console ended with:\n{console_tail(run.guest)}")
        return NO_STATUS
    say(f"guest powered off after {run.elapsed():.1f} s; command exit status {run.filter.status}")
    return run.filter.status


def run_command(image: Image, command: str, accel: str, timeout: float, checkout: Path,
                show_console: bool = False, say: Say = step) -> int:
    """Run command (bash) as root in a fresh guest, in a copy of checkout; its exit status."""
    with tempfile.TemporaryDirectory(prefix="warden-vm-") as tmp:
        work = Path(tmp)
        say(f"copying the checkout {checkout} onto a job disk")
        guest = Guest(kernel=image.kernel, initrd=image.initrd, root_disk=make_overlay(image, work),
                      job_disk=make_job_disk(checkout, command, work),
                      console_log=work / "console.log", output_log=work / "output.log", accel=accel)
        for log in (guest.console_log, guest.output_log):
            log.touch()
        say(f"booting a fresh guest ({accel}, {guest.cpus} CPUs, {guest.memory_mb} MiB, "
            f"timeout {timeout:.0f} s): {command}")
        argv = qemu_argv(guest)
        qemu_log = (work / "qemu.log").open("wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)
        run = Run(guest, proc, sys.stdout.buffer, show_console)
        try:
            status = supervise(run, timeout, say)
        finally:
            _stop(proc)
            run.close()
            qemu_log.close()
        if status == NO_STATUS:
            qemu_text = (work / "qemu.log").read_text(errors="replace").strip()
            if qemu_text:
                say(f"qemu said: {qemu_text}")
        return status
