"""Smoke test of the benchmark suite: a tiny run (few iterations, a 16 MiB
stream, 4 containers) must produce every key with sane values and leave
nothing behind. Needs root and the rootfs, like the Linux integration tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import leaks as bench_leaks
from bench.__main__ import SCHEMA
from warden import leaks

ROOT = Path(__file__).resolve().parents[2]
ROOTFS = Path(os.environ.get("WARDEN_TEST_ROOTFS", "/var/lib/warden/rootfs"))
SKELETON_BIN = ROOT / "root" / "linux" / "skeleton" / "bin"

TINY = ["--warmup", "1", "--iterations", "3", "--lifecycle-iterations", "2", "--scale", "4",
        "--stream-mib", "16", "--stream-repeats", "1", "--ping-seconds", "0.3"]


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, iptables)"
    if not (ROOTFS / "etc").is_dir():
        return f"no rootfs at {ROOTFS}: run `invoke setup`"
    for name in ("wshd", "wsh", "iomux-spawn"):
        if not os.access(SKELETON_BIN / name, os.X_OK):
            return f"{SKELETON_BIN / name} missing: run `invoke build`"
    return None


def _is_timing(value) -> bool:
    return (isinstance(value, dict) and set(value) == {"median", "p95", "min"}
            and all(isinstance(v, (int, float)) and v > 0 for v in value.values())
            and value["min"] <= value["median"] <= value["p95"])


@pytest.mark.root
@pytest.mark.timeout(120)
def test_tiny_bench_run(tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    before_warden = leaks.snapshot()
    before = bench_leaks.snapshot()
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--json", str(out), *TINY, "--rootfs", str(ROOTFS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"bench exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "LEFT BEHIND" not in done.stderr

    results = json.loads(out.read_text())
    assert set(results) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        allowed = set(keys) | {f"{key}_error" for key in keys}
        assert set(keys) <= set(results[section]) <= allowed, (section, results[section])
        for key in keys:
            # A value, or null with a reason (a peer that cannot run here).
            assert results[section][key] is not None or isinstance(results[section].get(f"{key}_error"), str)

    run_true, lifecycle = results["run_true"], results["lifecycle"]
    assert _is_timing(run_true["warden_ms"]), run_true
    assert _is_timing(lifecycle["warden_ms"]), lifecycle
    assert _is_timing(lifecycle["reference_ms"]), lifecycle
    for section, key in (("run_true", "crun_exec_ms"), ("run_true", "runc_exec_ms"), ("run_true", "lxc_attach_ms"),
                         ("lifecycle", "crun_run_ms"), ("lifecycle", "runc_run_ms"),
                         ("lifecycle", "lxc_execute_ms")):
        value = results[section][key]
        runtime = key.split("_")[0]
        if shutil.which(runtime if runtime != "lxc" else "lxc-execute"):
            assert _is_timing(value), (section, key, results[section])
        else:
            assert value is None and runtime in results[section][f"{key}_error"]
    if run_true["crun_exec_ms"]:
        assert run_true["ratio_vs_crun"] > 0
    assert lifecycle["ratio_vs_reference"] > 0
    # The warden side is a superset of the reference's kernel work.
    assert lifecycle["warden_ms"]["median"] < 60_000

    scale = results["scale"]
    assert scale["containers"] == 4 and scale["failures"] == 0, scale
    assert 0 < scale["seconds"] < 120
    assert isinstance(scale["rss_kib_per_container"], (int, float))

    stream = results["stream"]
    assert stream["warden_mib_s"] > 0 and stream["pipe_mib_s"] > 0, stream
    assert stream["ratio"] == pytest.approx(stream["warden_mib_s"] / stream["pipe_mib_s"], rel=0.01)
    assert results["ping"]["rps"] > 100

    # Nothing left behind. The bench compared before/after itself, with the ids
    # of the containers it made (exit status 1 and "LEFT BEHIND" otherwise);
    # here, warden's own list and the bench's objects once more. New warden
    # objects without any of the bench's marks belong to another server running
    # meanwhile (a test run next to this one), not to the bench.
    new = (leaks.snapshot() - before_warden).report()
    assert not any(mark in new for mark in ("10.253.", "/tmp/wb-", "wbench", "warden-bench")), new
    left, _ = bench_leaks.compare(before, bench_leaks.snapshot(), set())
    assert not left, left
