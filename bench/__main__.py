"""Run the benchmark suite: `python -m bench [--json FILE] [--quick]` (or `invoke bench`).

Needs root, the rootfs (`invoke setup`) and the C helpers; crun, runc and LXC
are peers (`apt-get install crun runc lxc`) and recorded as null with an error
when missing. Prints a table; --json writes the numbers. Exit status: 0, or 1 when
the bench left something in the kernel or could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import leaks, lifecycle, ping, run_true, scale, stream
from .oci import Peer
from .server import BenchServer, make_base
from .settings import MIB, Settings

SERVER_POOL = os.environ.get("WARDEN_BENCH_POOL", "10.253.8.0/22")
REFERENCE_POOL = os.environ.get("WARDEN_BENCH_REFERENCE_POOL", "10.253.252.0/24")

SCHEMA: dict[str, tuple[str, ...]] = {
    "run_true": ("warden_ms", "crun_exec_ms", "runc_exec_ms", "lxc_attach_ms", "ratio_vs_crun"),
    "lifecycle": ("warden_ms", "reference_ms", "crun_run_ms", "runc_run_ms", "lxc_execute_ms",
                  "ratio_vs_reference"),
    "scale": ("containers", "failures", "seconds", "rss_kib_per_container"),
    "stream": ("warden_mib_s", "pipe_mib_s", "ratio"),
    "ping": ("rps",),
}


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    parser.add_argument("--quick", action="store_true",
                        help="fewer iterations and smaller sizes (~20 s; a full run takes ~2 min)")
    parser.add_argument("--only", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--iterations", type=int, help="run_true samples per peer")
    parser.add_argument("--burst", type=int, help="run_true runs per peer per round")
    parser.add_argument("--lifecycle-iterations", type=int)
    parser.add_argument("--lifecycle-burst", type=int)
    parser.add_argument("--scale", type=int, dest="scale_containers", help="containers for the scale benchmark")
    parser.add_argument("--scale-clients", type=int)
    parser.add_argument("--stream-mib", type=int)
    parser.add_argument("--stream-repeats", type=int)
    parser.add_argument("--ping-seconds", type=float)
    parser.add_argument("--rootfs", help="container rootfs (default /var/lib/warden/rootfs)")
    parser.add_argument("--log-level", default="info",
                        help="the server's logging.level (debug logs every script run with its time)")
    parser.add_argument("--keep-log", metavar="FILE", help="copy the server's log to FILE before cleaning up")
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    for name in ("warmup", "iterations", "burst", "lifecycle_iterations", "lifecycle_burst",
                 "scale_containers", "scale_clients",
                 "stream_repeats", "ping_seconds", "rootfs"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.stream_mib is not None:
        settings.stream_bytes = args.stream_mib * MIB
    return args, settings


def preflight(settings: Settings) -> str | None:
    if os.geteuid() != 0:
        return "the benchmarks need root (namespaces, cgroups, iptables)"
    if not Path(settings.rootfs, "etc").is_dir():
        return f"no rootfs at {settings.rootfs}: run `invoke setup` first"
    root = Path(__file__).resolve().parents[1]
    for binary in ("wshd", "wsh", "iomux-spawn"):
        if not (root / "root" / "linux" / "skeleton" / "bin" / binary).exists():
            return f"root/linux/skeleton/bin/{binary} is missing: run `invoke build` first"
    for pool in (SERVER_POOL, REFERENCE_POOL):
        busy = subprocess.run(["ip", "-o", "addr", "show", "to", pool], capture_output=True, text=True)
        if busy.returncode != 0 or busy.stdout.strip():
            return (f"{pool} is already in use on this host (another bench running?); "
                    "set WARDEN_BENCH_POOL / WARDEN_BENCH_REFERENCE_POOL")
    return None


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def restore_ip_forward(before: str) -> None:
    """The server's setup turns forwarding on; turn it back off when we found it
    off and no warden server is left using it (its global chain is gone)."""
    try:
        if IP_FORWARD.read_text() == before:
            return
        in_use = subprocess.run(["iptables", "-w", "-S", "warden-forward"], capture_output=True).returncode == 0
        if not in_use:
            IP_FORWARD.write_text(before)
    except OSError:
        pass


def normalize(name: str, section: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """Exactly the section's keys (null where missing), plus `<key>_error` strings."""
    section = dict(section or {})
    out: dict[str, Any] = {}
    for key in SCHEMA[name]:
        out[key] = section.get(key)
        message = section.get(f"{key}_error")
        if out[key] is None and message is None:
            message = error or "not measured"
        if message is not None:
            out[f"{key}_error"] = message
    return out


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(sys.argv[1:] if argv is None else argv)
    only = set(args.only.split(",")) if args.only else set(SCHEMA)
    unknown = only - set(SCHEMA)
    if unknown:
        print(f"bench: unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    problem = preflight(settings)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2

    results: dict[str, dict[str, Any]] = {}
    details: dict[str, Any] = {}
    problems: list[str] = []
    started = time.monotonic()
    before = leaks.snapshot()
    ip_forward = IP_FORWARD.read_text()
    base = make_base()
    peers: dict[str, Peer] = {}
    reference = lifecycle.Reference(base, settings.rootfs, REFERENCE_POOL)
    server: BenchServer | None = None
    try:
        # The OCI workers first: crun's private mount namespace must not hold a
        # copy of the server's disk-pool mount (see oci.py).
        if only & {"run_true", "lifecycle"}:
            for name in ("crun", "runc", "lxc"):
                peers[name] = Peer(name, base, settings.rootfs).start()
        server = BenchServer(
            base, pool_network=SERVER_POOL, rootfs=settings.rootfs, log_level=args.log_level,
            uid_pool=(40000, max(300, settings.scale_containers + 50)),
            overrides={"server": {"job_output_limit": max(2048 * MIB, 2 * settings.stream_bytes)}},
        )
        server.start()
        print(f"bench: warden server pid {server.pid}, pool {SERVER_POOL}, dir {base}", flush=True)

        # scale first: its RSS baseline is then the fresh server's (after one
        # warm-up Create + Destroy), not a heap grown by the other benchmarks.
        steps: list[tuple[str, Callable[[], tuple[dict[str, Any], dict[str, Any]]]]] = [
            ("scale", lambda: scale.run(server, settings)),
            ("run_true", lambda: run_true.run(server, peers, settings)),
            ("lifecycle", lambda: lifecycle.run(server, peers, reference, settings)),
            ("stream", lambda: stream.run(server, settings)),
            ("ping", lambda: ping.run(server, settings.ping_seconds, settings.ping_batch)),
        ]
        for name, step in steps:
            if name not in only:
                continue
            step_started = time.monotonic()
            print(f"bench: {name} ...", flush=True)
            try:
                section, details[name] = step()
                results[name] = normalize(name, section)
            except Exception as exc:  # noqa: BLE001 - one benchmark failing must not lose the others
                traceback.print_exc()
                results[name] = normalize(name, None, f"{name} failed: {type(exc).__name__}: {exc}")
            details.setdefault(name, {})["seconds"] = round(time.monotonic() - step_started, 1)
            if server is not None and not server.running:
                problems.append(f"the warden server died during {name}: {server.stderr()[-1000:]}")
                break
    except Exception as exc:  # noqa: BLE001 - reported, and cleanup still runs
        traceback.print_exc()
        problems.append(f"bench could not run: {type(exc).__name__}: {exc}")
    finally:
        for peer in peers.values():
            problems += peer.stop()
        problems += reference.teardown()
        if server is not None:
            if args.keep_log:
                try:
                    shutil.copyfile(server.log_path, args.keep_log)
                except OSError as exc:
                    problems.append(f"--keep-log: {exc}")
            problems += server.stop()
        shutil.rmtree(base, ignore_errors=True)
        restore_ip_forward(ip_forward)

    after = leaks.snapshot()
    marks = {str(base), SERVER_POOL, REFERENCE_POOL} | (server.created if server else set())
    left, others = leaks.compare(before, after, marks)

    for name in SCHEMA:
        if name in only and name not in results:
            results[name] = normalize(name, None, "not run: " + (problems[-1] if problems else "skipped"))
    output = {name: results[name] for name in SCHEMA if name in results}
    print_table(output, details, settings, time.monotonic() - started)
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=2) + "\n")
        print(f"bench: results written to {args.json}")
    for problem in problems:
        print(f"bench: problem: {problem}", file=sys.stderr)
    if others:
        print("bench: new kernel objects that are not the bench's (another server running?):\n  "
              + "\n  ".join(others[:20]), file=sys.stderr)
    if left:
        print("bench: LEFT BEHIND by the bench:\n  " + "\n  ".join(left), file=sys.stderr)
        return 1
    print("bench: nothing left behind (warden.leaks and the bench's own objects compared before/after)")
    fatal = any(p.startswith("bench could not run") for p in problems)
    return 1 if fatal else 0


# ---- the table ---------------------------------------------------------------------------


def _ms(value: dict[str, float] | None) -> str:
    if not value:
        return f"{'-':>9} {'-':>9} {'-':>9}"
    return f"{value['median']:9.2f} {value['p95']:9.2f} {value['min']:9.2f}"


def _goal(ok: bool | None) -> str:
    return "" if ok is None else ("  ok" if ok else "  MISSED")


def print_table(out: dict[str, Any], details: dict[str, Any], settings: Settings, seconds: float) -> None:
    lines = [f"{'benchmark / peer':44} {'median':>9} {'p95':>9} {'min':>9}"]

    def err(section: dict[str, Any], key: str) -> str:
        message = section.get(f"{key}_error")
        return f"   ({message[:90]})" if message and section.get(key) is None else ""

    if "run_true" in out:
        s = out["run_true"]
        d = details.get("run_true", {})
        lines.append(f"run_true: Run /bin/true (ms, {settings.iterations} back-to-back samples each,"
                     f" bursts of {settings.burst} interleaved)")
        lines.append(f"  {'warden Run (client round trip)':42} {_ms(s['warden_ms'])}{err(s, 'warden_ms')}")
        lines.append(f"  {'crun exec':42} {_ms(s['crun_exec_ms'])}{err(s, 'crun_exec_ms')}")
        lines.append(f"  {'runc exec':42} {_ms(s['runc_exec_ms'])}{err(s, 'runc_exec_ms')}")
        lines.append(f"  {'lxc-attach':42} {_ms(s['lxc_attach_ms'])}{err(s, 'lxc_attach_ms')}")
        for who, value in d.get("cold", {}).items():
            if value:
                lines.append(f"  {'  (first of a burst) ' + who:42} {_ms(value)}")
        r = s["ratio_vs_crun"]
        lines.append(f"  {'ratio warden / crun exec (goal <= 0.7)':42} {r if r is not None else '-':>9}"
                     f"{_goal(None if r is None else r <= 0.7)}")
    if "lifecycle" in out:
        s = out["lifecycle"]
        d = details.get("lifecycle", {})
        lines.append(f"lifecycle: Create + Destroy (ms, {settings.lifecycle_iterations} samples each,"
                     f" bursts of {settings.lifecycle_burst} interleaved)")
        lines.append(f"  {'warden Create + Destroy':42} {_ms(s['warden_ms'])}{err(s, 'warden_ms')}")
        for who in ("warden", "reference"):
            for part in ("create", "destroy"):
                value = d.get(who, {}).get(part)
                if value:
                    lines.append(f"  {'  ' + who + ' ' + part:42} {_ms(value)}")
            if who == "warden":
                lines.append(f"  {'reference.sh create + destroy':42} {_ms(s['reference_ms'])}{err(s, 'reference_ms')}")
        lines.append(f"  {'crun run /bin/true':42} {_ms(s['crun_run_ms'])}{err(s, 'crun_run_ms')}")
        lines.append(f"  {'runc run /bin/true':42} {_ms(s['runc_run_ms'])}{err(s, 'runc_run_ms')}")
        lines.append(f"  {'lxc-execute /bin/true':42} {_ms(s['lxc_execute_ms'])}{err(s, 'lxc_execute_ms')}")
        for who, value in d.get("cold", {}).items():
            if value:
                lines.append(f"  {'  (first of a burst) ' + who:42} {_ms(value)}")
        r = s["ratio_vs_reference"]
        lines.append(f"  {'ratio warden / reference (goal <= 1.5)':42} {r if r is not None else '-':>9}"
                     f"{_goal(None if r is None else r <= 1.5)}")
    if "scale" in out:
        s = out["scale"]
        d = details.get("scale", {})
        target = d.get("target", settings.scale_containers)
        lines.append(f"scale: {target} containers, {d.get('clients', settings.scale_clients)} concurrent clients")
        ok = None if s["containers"] is None else (s["containers"] == target and s["failures"] == 0)
        lines.append(f"  {'containers created / failures':42} {s['containers']!s:>9} {s['failures']!s:>9}{_goal(ok)}")
        lines.append(f"  {'seconds (create all + destroy all)':42} {s['seconds']!s:>9}"
                     f"   (create {d.get('create_seconds')} s, destroy {d.get('destroy_seconds')} s)")
        rss = s["rss_kib_per_container"]
        lines.append(f"  {'server RSS KiB per container (goal <= 200)':42} {rss!s:>9}"
                     f"{_goal(None if rss is None else rss <= 200)}   {d.get('rss_kib', '')}")
        for error in d.get("distinct_errors", []):
            lines.append(f"    error: {error}")
    if "stream" in out:
        s = out["stream"]
        d = details.get("stream", {})
        lines.append(f"stream: {settings.stream_bytes // MIB} MiB of job stdout (MiB/s, median of "
                     f"{settings.stream_repeats}; writer dd bs=1M on both sides)")
        lines.append(f"  {'warden Spawn + Stream':42} {s['warden_mib_s']!s:>9}   {d.get('warden_runs_mib_s', '')}"
                     f"{err(s, 'warden_mib_s')}")
        lines.append(f"  {'dd | cat':42} {s['pipe_mib_s']!s:>9}   {d.get('pipe_runs_mib_s', '')}")
        head = d.get("head")
        if head:
            lines.append(f"    {'(writer head -c, 8 KiB writes) warden':40} {head['warden_mib_s']!s:>9}"
                         f"   {head['warden_runs_mib_s']}")
            lines.append(f"    {'(writer head -c) head | cat':40} {head['pipe_mib_s']!s:>9}"
                         f"   {head['pipe_runs_mib_s']}")
            lines.append(f"    {'(writer head -c) ratio, not judged':40} {head['ratio']!s:>9}")
        peak = d.get("server_peak_rss_kib")
        if peak:
            lines.append(f"  {'server peak RSS (VmHWM) KiB before / after':42} {peak['before']:>9}"
                         f" {peak['after']:>9}")
        r = s["ratio"]
        lines.append(f"  {'ratio warden / pipe (goal >= 0.5)':42} {r if r is not None else '-':>9}"
                     f"{_goal(None if r is None else r >= 0.5)}")
    if "ping" in out:
        s = out["ping"]
        d = details.get("ping", {})
        rps = s["rps"]
        lines.append("ping: round trips per second, one connection")
        lines.append(f"  {'pipelined, batches of ' + str(d.get('batch', settings.ping_batch)) + ' (goal >= 20000)':42}"
                     f" {rps!s:>9}{_goal(None if rps is None else rps >= 20000)}{err(s, 'rps')}")
        lines.append(f"  {'one at a time (lean client)':42} {d.get('unpipelined_rps', '-')!s:>9}")
        lines.append(f"  {'one at a time (warden.client.Client)':42}"
                     f" {d.get('warden_client_unpipelined_rps', '-')!s:>9}")
    lines.append(f"total {seconds:.0f} s")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
