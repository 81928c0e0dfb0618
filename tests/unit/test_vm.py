"""The VM test harness's pure parts: cache keys, marker parsing, qemu's argv, the accel choice.

None of these boot qemu; `invoke vm.run -- uname -a` and `invoke vm.test` are the real proof.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from vm import guest, image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs() -> image.ImageInputs:
    return image.ImageInputs.from_checkout(ROOT)


def test_inputs_read_install_sh_packages_and_pyproject(inputs):
    listed = subprocess.run([str(ROOT / "install.sh"), "--print-packages"], check=True,
                            capture_output=True, text=True).stdout.split()
    assert "build-essential" in listed and "lxc" in listed
    assert inputs.packages == image.GUEST_PACKAGES + tuple(listed)
    assert inputs.requirements[:3] == ("pip", "setuptools", "wheel")
    assert any(r.startswith("msgpack") for r in inputs.requirements)
    assert any(r.startswith("pytest") for r in inputs.requirements)
    assert inputs.rootfs_path == "/var/lib/warden/rootfs"


@pytest.mark.parametrize("change", [
    {"packages": ("systemd-sysv", "extra")},
    {"requirements": ("pip", "msgpack>=2")},
    {"python": "3.12"},
    {"builder": (("image.py", b"changed"),)},
    {"rootfs_scripts": (("root/linux/rootfs/setup.sh", b"changed"),)},
    {"rootfs_path": "/elsewhere"},
    {"suite": "trixie"},
])
def test_image_key_changes_with_every_input(inputs, change):
    assert dataclasses.replace(inputs, **change).image_key() != inputs.image_key()


def test_image_key_is_stable(inputs):
    assert image.ImageInputs.from_checkout(ROOT).image_key() == inputs.image_key()


def test_part_keys_change_only_with_their_inputs(inputs):
    new_pkgs = dataclasses.replace(inputs, packages=("other",))
    assert new_pkgs.wheelhouse_key() == inputs.wheelhouse_key()
    assert new_pkgs.rootfs_key() == inputs.rootfs_key()
    new_reqs = dataclasses.replace(inputs, requirements=("pip",))
    assert new_reqs.wheelhouse_key() != inputs.wheelhouse_key()
    assert new_reqs.rootfs_key() == inputs.rootfs_key()


def test_digest_keeps_part_boundaries():
    assert image.digest([("a", b"bc")]) != image.digest([("ab", b"c")])
    assert image.digest([("a", b"b"), ("c", b"")]) != image.digest([("a", b"bc")])


def test_cache_dir_defaults_outside_the_checkout():
    assert image.cache_dir({}) == Path("/var/cache/warden-vm")
    assert image.cache_dir({"WARDEN_VM_CACHE": "/tmp/c"}) == Path("/tmp/c")


def test_builder_files_include_what_is_baked_in():
    names = [p.name for p in image._builder_files()]
    assert names[0] == "image.py"
    assert "warden-vm-run" in names and "warden-vm-run.service" in names


def test_filter_passes_output_and_takes_markers_out():
    f = guest.OutputFilter()
    out = f.feed(b"WARDEN-VM-START 12.5\nhello\nworld\n\nWARDEN-VM-EXIT 3\nafter\n")
    assert out == b"hello\nworld\n"  # the guest's blank line before EXIT is dropped
    assert f.started and f.status == 3


def test_filter_marker_split_across_reads():
    f = guest.OutputFilter()
    assert f.feed(b"line\nWARDEN-V") == b"line\n"
    assert f.feed(b"M-EX") == b""
    assert f.status is None
    assert f.feed(b"IT 0\n") == b""
    assert f.status == 0


def test_filter_passes_partial_lines_at_once():
    """pytest's progress dots must show as they come, not at the end of the line."""
    f = guest.OutputFilter()
    assert f.feed(b"tests/a.py ..") == b"tests/a.py .."
    assert f.feed(b"WARDEN-VM-EXIT 1\n") == b"WARDEN-VM-EXIT 1\n"  # mid-line: output, not a marker
    assert f.status is None
    assert f.feed(b"W") == b""
    assert f.feed(b"ARDENX\n") == b"WARDENX\n"


def test_filter_ignores_malformed_exit_lines():
    f = guest.OutputFilter()
    assert f.feed(b"WARDEN-VM-EXIT nope\n") == b"WARDEN-VM-EXIT nope\n"
    assert f.status is None


def _guest(tmp_path: Path, accel: str) -> guest.Guest:
    return guest.Guest(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img",
                       root_disk=tmp_path / "root.qcow2", job_disk=tmp_path / "job.img",
                       console_log=tmp_path / "console.log", output_log=tmp_path / "output.log",
                       accel=accel)


def _option(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_qemu_argv_tcg(tmp_path):
    argv = guest.qemu_argv(_guest(tmp_path, "tcg"))
    assert argv[0] == "qemu-system-x86_64"
    assert _option(argv, "-accel") == ["tcg,thread=multi"]
    assert _option(argv, "-smp") == ["2"] and _option(argv, "-m") == ["2048"]
    assert _option(argv, "-nic") == ["none"]
    assert "-no-reboot" in argv
    assert _option(argv, "-kernel") == [str(tmp_path / "vmlinuz")]
    assert "root=/dev/vda" in _option(argv, "-append")[0]
    drives = _option(argv, "-drive")
    assert drives[0].startswith(f"file={tmp_path / 'root.qcow2'},format=qcow2")
    assert drives[1].startswith(f"file={tmp_path / 'job.img'},format=raw")
    assert _option(argv, "-serial") == [f"file:{tmp_path / 'console.log'}"]
    assert f"file,id=out,path={tmp_path / 'output.log'}" in _option(argv, "-chardev")
    assert "virtserialport,chardev=out,name=warden.out" in _option(argv, "-device")


def test_qemu_argv_kvm(tmp_path):
    argv = guest.qemu_argv(_guest(tmp_path, "kvm"))
    assert _option(argv, "-accel") == ["kvm"] and _option(argv, "-cpu") == ["host"]


def test_qemu_argv_rejects_unknown_accel(tmp_path):
    with pytest.raises(ValueError):
        guest.qemu_argv(_guest(tmp_path, "hvf"))


def test_accel_override_wins_without_probing():
    def probe():
        raise AssertionError("must not probe")
    assert guest.choose_accel("tcg", probe) == "tcg"
    assert guest.choose_accel("kvm", probe) == "kvm"


def test_accel_falls_back_to_tcg_when_kvm_fails():
    assert guest.choose_accel(None, lambda: False) == "tcg"
    assert guest.choose_accel("", lambda: True) == "kvm"


def test_accel_override_must_be_known():
    with pytest.raises(ValueError):
        guest.choose_accel("xen", lambda: True)


def test_kvm_probe_result_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(guest.os, "access", lambda path, mode: True)
    calls = []

    def probe(img):
        calls.append(img)
        return False
    monkeypatch.setattr(guest, "probe_kvm", probe)
    img = image.Image(tmp_path / "image")
    assert guest.kvm_works(tmp_path, img, say=lambda m: None) is False
    assert guest.kvm_works(tmp_path, img, say=lambda m: None) is False
    assert len(calls) == 1
    assert (tmp_path / "accel-probe").read_text() == "tcg\n"


def test_no_kvm_device_means_tcg_without_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(guest.os, "access", lambda path, mode: False)
    monkeypatch.setattr(guest, "probe_kvm", lambda img: pytest.fail("probed"))
    assert guest.kvm_works(tmp_path, image.Image(tmp_path), say=lambda m: None) is False


def test_checkout_files_are_gits_without_venv(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored\n")
    for name in ("tracked", "untracked", "ignored", "gone", ".venv/bin/python"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked", "gone", ".venv/bin/python"], check=True)
    (tmp_path / "gone").unlink()
    assert guest.checkout_files(tmp_path) == [".gitignore", "tracked", "untracked"]


def test_filter_drops_the_blank_line_before_exit_only():
    f = guest.OutputFilter()
    assert f.feed(b"a\n\n") == b"a\n"
    assert f.feed(b"b\n\n") == b"\nb\n"
    assert f.feed(b"WARDEN-VM-EXIT 0\n") == b""
    assert f.status == 0
