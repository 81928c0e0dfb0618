"""Where the time goes: `python -m bench.profile [lifecycle] [run] [stream]`.

Starts a server of its own (as the bench does) and reports, with evidence:

  lifecycle  every bash script on the Create/Destroy path traced with
             timestamps (BASH_ENV turns on xtrace into a file per process, so
             the cost is small): time per script and the costliest lines,
             averaged over the traced rounds; the server's own per-script
             times (debug log); the processes started (strace, one round).
  run        per Run of /bin/true: CPU of the server and of the container's
             wshd, the processes started (strace of wshd), and the server's
             hottest Python frames (py-spy, if installed).
  stream     per GiB streamed: CPU of the server, the container and the
             client, the server's peak RSS, and its hottest Python frames.

Timings under a profiler are not the benchmark's numbers; the shares are what
matter. Needs root; py-spy (`pip install py-spy`) and strace are optional.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

from .server import BenchServer, make_base, rss_kib
from .wire import frame

POOL = os.environ.get("WARDEN_BENCH_POOL", "10.253.8.0/22")
# One file per bash process ($$ repeats across pid namespaces: the container's
# hooks all run as small pids), the full path of each line's script.
XTRACE_ENV = """exec 19>>{dir}/trace.$$.$SRANDOM
BASH_XTRACEFD=19
PS4='+ $EPOCHREALTIME ${{BASH_SOURCE}}:$LINENO '
set -x
"""
ROOT = Path(__file__).resolve().parents[1]
K = TypeVar("K", bound=Hashable)
XTRACE_LINE = re.compile(r"^\++ (\d+\.\d+) (\S+):(\d+) (.*)$")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cgroup_cpu(handle: str) -> float:
    return int(Path(f"/sys/fs/cgroup/cpuacct/warden/instance-{handle}/cpuacct.usage").read_text()) / 1e9


def wshd_pid(handle: str) -> int:
    out = subprocess.run(["pgrep", "-f", f"wshd: {handle}"], capture_output=True, text=True).stdout.split()
    return int(out[0])


# ---- py-spy and strace -------------------------------------------------------------------


class Spy:
    """py-spy record of a process into a raw (collapsed stacks) file."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = None
        if shutil.which("py-spy"):
            self.proc = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "250", "-f", "raw",
                                          "-o", str(out), "--nonblocking"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)

    def stop(self, top: int = 12) -> list[str]:
        if self.proc is None:
            return ["(py-spy not installed: pip install py-spy)"]
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            n = int(count)
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                if "warden/" in f or "jobs.py" in f:
                    inclusive[f] += n
        lines = [f"py-spy: {total} samples; own time:"]
        lines += [f"  {n / total * 100:5.1f}%  {f[:110]}" for f, n in own.most_common(top)]
        lines.append("warden frames, inclusive:")
        lines += [f"  {n / total * 100:5.1f}%  {f[:110]}" for f, n in inclusive.most_common(top)]
        return lines


def strace_execs(pid: int, action: Callable[[], object]) -> list[str]:
    """Run action() while strace follows pid and its children; the programs exec'd."""
    if not shutil.which("strace"):
        action()
        return ["(strace not installed)"]
    with tempfile.NamedTemporaryFile(prefix="wb-strace-", delete=False) as tmp:
        path = tmp.name
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none",
                               "-o", path, "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        action()
        time.sleep(0.3)
    finally:
        tracer.terminate()
        tracer.wait()
    programs = []
    for line in Path(path).read_text().splitlines():
        m = re.search(r'execve\("([^"]+)"', line)
        if m and "ENOENT" not in line and "= -1" not in line:
            programs.append(m.group(1).rsplit("/", 1)[-1])
    os.unlink(path)
    return programs


# ---- lifecycle ----------------------------------------------------------------------------


def profile_lifecycle(base: Path, rounds: int) -> list[str]:
    traces = base / "xtrace"
    traces.mkdir()
    env_file = base / "bash_env"
    env_file.write_text(XTRACE_ENV.format(dir=traces))
    os.environ["BASH_ENV"] = str(env_file)  # the server's scripts inherit it
    try:
        server = BenchServer(base, pool_network=POOL, log_level="debug").start()
    finally:
        del os.environ["BASH_ENV"]
    out: list[str] = []
    try:
        with server.connect() as wire:
            for _ in range(2):
                wire.call("Destroy", handle=server.create(wire))
            for f in traces.iterdir():
                f.unlink()
            log_offset = server.log_path.stat().st_size
            walls = []
            for _ in range(rounds):
                started = time.perf_counter()
                handle = server.create(wire)
                created = time.perf_counter()
                wire.call("Destroy", handle=handle)
                walls.append((created - started, time.perf_counter() - created))
            out.append(f"traced Create {sum(w[0] for w in walls) / rounds * 1000:.0f} ms, "
                       f"Destroy {sum(w[1] for w in walls) / rounds * 1000:.0f} ms (mean of {rounds})")
            out += _server_script_times(server.log_path, log_offset, rounds)
            out += _xtrace_report(traces, rounds)
            execs = strace_execs(server.pid, lambda: wire.call("Destroy", handle=server.create(wire)))
            counts = collections.Counter(execs)
            out.append(f"programs exec'd for one Create + Destroy: {len(execs)} execve "
                       f"(a script counts twice: itself, then bash):")
            out.append("  " + ", ".join(f"{n} {name}" for name, n in counts.most_common()))
    finally:
        problems = server.stop()
        out += [f"cleanup problem: {p}" for p in problems]
    return out


def _server_script_times(log: Path, offset: int, rounds: int) -> list[str]:
    totals: collections.Counter[str] = collections.Counter()
    with open(log) as f:
        f.seek(offset)
        for line in f:
            try:
                data = json.loads(line).get("data") or {}
            except ValueError:
                continue
            if "argv" in data and "took" in data:
                argv = data["argv"]
                name = " ".join([_script_name(argv[0])] + [a for a in argv[1:] if not a.startswith("/")])
                totals[name] += data["took"]
    lines = ["scripts the server ran, ms per Create + Destroy (debug log):"]
    lines += [f"  {t / rounds * 1000:7.1f}  {name}" for name, t in totals.most_common()]
    return lines


def _script_name(path: str) -> str:
    """root/linux/destroy.sh and a container's skeleton/destroy.sh told apart."""
    if path.startswith(str(ROOT) + "/"):
        return path[len(str(ROOT)) + 1:]
    if "/depot/" in path:  # a container dir (the hooks after pivot see it under /mnt)
        rest = path.split("/depot/", 1)[1].split("/", 1)[-1]
        return "skeleton/" + rest
    if not path.startswith("/"):  # relative to the container dir: ./net.sh, lib/common.sh
        return "skeleton/" + path.removeprefix("./")
    return path


def _largest_first(totals: dict[K, float]) -> list[tuple[K, float]]:
    """Counter.most_common for float totals (ties keep their first-seen order)."""
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)


def _xtrace_report(traces: Path, rounds: int) -> list[str]:
    spans: collections.defaultdict[str, float] = collections.defaultdict(float)
    cost: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)
    for f in traces.iterdir():
        rows = []
        for line in f.read_text(errors="replace").splitlines():
            m = XTRACE_LINE.match(line)
            if m:
                rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))
        if not rows:
            continue
        rows.sort(key=lambda r: r[0])
        spans[_script_name(rows[0][1])] += rows[-1][0] - rows[0][0]
        for a, b in itertools.pairwise(rows):
            text = re.sub(r"/tmp/wb-[^ ]*?/depot/[^/ ]+", "<dir>", a[3])
            text = re.sub(r"\b1[0-9a-v]{10}\b", "<id>", text)
            text = re.sub(r"\b\d{4,}\b", "<n>", text)[:90]
            cost[(f"{_script_name(a[1])}:{a[2]}", text)] += b[0] - a[0]
    lines = ["bash scripts (xtrace), ms per Create + Destroy: time from a script's first to last line",
             "(a script that runs others includes them; bash's own start-up is not counted):"]
    lines += [f"  {t / rounds * 1000:7.1f}  {name}" for name, t in _largest_first(spans)]
    lines.append("costliest lines (the time until the script's next line), ms per Create + Destroy:")
    lines += [f"  {t / rounds * 1000:7.1f}  {where}  {text}" for (where, text), t in _largest_first(cost)[:25]]
    return lines


# ---- run and stream ------------------------------------------------------------------------


def profile_run(base: Path, runs: int) -> list[str]:
    server = BenchServer(base, pool_network=POOL).start()
    out: list[str] = []
    try:
        with server.connect() as wire:
            handle = server.create(wire)
            request = frame("Run", handle=handle, script="/bin/true")
            for _ in range(20):
                wire.call_raw(request, "Run")
            wshd = wshd_pid(handle)
            server_cpu, wshd_cpu, container_cpu = cpu_seconds(server.pid), cpu_seconds(wshd), cgroup_cpu(handle)
            started = time.perf_counter()
            for _ in range(runs):
                wire.call_raw(request, "Run")
            wall = time.perf_counter() - started
            out.append(f"per Run (mean of {runs}): wall {wall / runs * 1000:.2f} ms; CPU: server "
                       f"{(cpu_seconds(server.pid) - server_cpu) / runs * 1000:.2f} ms, wshd "
                       f"{(cpu_seconds(wshd) - wshd_cpu) / runs * 1000:.2f} ms, container cgroup (wshd + job) "
                       f"{(cgroup_cpu(handle) - container_cpu) / runs * 1000:.2f} ms")
            on_host = strace_execs(server.pid, lambda: wire.call_raw(request, "Run"))
            in_container = strace_execs(wshd, lambda: wire.call_raw(request, "Run"))
            out.append(f"processes exec'd per Run: by the server {on_host or 'none'}; in the container "
                       f"{in_container}")
            spy = Spy(server.pid, base / "run.spy")
            for _ in range(runs):
                wire.call_raw(request, "Run")
            out += spy.stop()
            wire.call("Destroy", handle=handle)
    finally:
        out += [f"cleanup problem: {p}" for p in server.stop()]
    return out


def profile_stream(base: Path, size: int) -> list[str]:
    server = BenchServer(base, pool_network=POOL,
                         overrides={"server": {"job_output_limit": max(2 << 30, 2 * size)}}).start()
    out: list[str] = []
    try:
        with server.connect() as wire:
            handle = server.create(wire)
            wshd = wshd_pid(handle)
            for spy_on in (False, True):
                spy = Spy(server.pid, base / "stream.spy") if spy_on else None
                before = (cpu_seconds(server.pid), cgroup_cpu(handle), cpu_seconds(wshd), time.process_time())
                started = time.perf_counter()
                job = wire.call("Spawn", handle=handle, script=f"head -c {size} /dev/zero")["job_id"]
                received, _ = wire.stream_count(handle, job)
                wall = time.perf_counter() - started
                gib = received / (1 << 30)
                out.append(f"{'(py-spy attached) ' if spy_on else ''}{received >> 20} MiB at "
                           f"{received / (1 << 20) / wall:.0f} MiB/s; CPU per GiB: server "
                           f"{(cpu_seconds(server.pid) - before[0]) / gib:.2f} s (wall {wall / gib:.2f} s), "
                           f"container {(cgroup_cpu(handle) - before[1]) / gib:.2f} s (of which wshd "
                           f"{(cpu_seconds(wshd) - before[2]) / gib:.2f} s), client "
                           f"{(time.process_time() - before[3]) / gib:.2f} s; server peak RSS "
                           f"{rss_kib(server.pid, 'VmHWM') >> 10} MiB")
                if spy is not None:
                    out += spy.stop()
            wire.call("Destroy", handle=handle)
    finally:
        out += [f"cleanup problem: {p}" for p in server.stop()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", help="lifecycle, run, stream (default: all three)")
    parser.add_argument("--rounds", type=int, default=10, help="traced Create + Destroy rounds")
    parser.add_argument("--runs", type=int, default=300, help="Runs for the CPU split and py-spy")
    parser.add_argument("--stream-mib", type=int, default=1024)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.what = args.what or ["lifecycle", "run", "stream"]
    unknown = set(args.what) - {"lifecycle", "run", "stream"}
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        print("bench.profile: needs root", file=sys.stderr)
        return 2
    for what in args.what:
        base = make_base()
        try:
            print(f"== {what}", flush=True)
            if what == "lifecycle":
                lines = profile_lifecycle(base, args.rounds)
            elif what == "run":
                lines = profile_run(base, args.runs)
            else:
                lines = profile_stream(base, args.stream_mib << 20)
            print("\n".join(lines), flush=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
