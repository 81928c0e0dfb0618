"""The OCI peers: crun and runc, driven by a worker process that times them
(LXC, in lxc.py, uses the same worker and Peer).

A worker runs one runtime's commands and times each one itself (a plain
fork+exec+wait, as a shell would), so the timing includes nothing of the
benchmark's own plumbing. The parent talks to it in JSON lines over a pipe, so
that rounds of warden / crun / runc can be interleaved and a noisy machine hits
all peers alike.

crun 1.8 refuses this host's "hybrid" cgroup layout (a cgroup2 at
/sys/fs/cgroup/unified holding only hugetlb), so the crun worker runs in a
private mount namespace (`unshare -m`) in which that mount is replaced by an
empty tmpfs: crun then sees a plain cgroup v1 host. (Without the tmpfs crun would
leave dirs and files behind in /sys/fs/cgroup's tmpfs, under the hidden mount
point.) The tmpfs, and whatever crun writes there, dies with the namespace. The
worker starts before the warden server, so its namespace holds no copy of the
server's disk-pool mount. runc runs from the host's namespace.

Bundles: `crun spec` / `runc spec`, with the given rootfs read-only, no network
namespace (host network), no terminal, and cgroupsPath /warden-bench-<runtime>/<id>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED = CGROUP_ROOT / "unified"


# ---- bundles -------------------------------------------------------------------------


def cgroup_parent(runtime: str) -> str:
    return f"warden-bench-{runtime}"


def make_bundle(runtime: str, directory: Path, rootfs: str, args: list[str], cgroup_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.json"
    config.unlink(missing_ok=True)
    subprocess.run([runtime, "spec"], cwd=directory, check=True, capture_output=True, timeout=30)
    spec = json.loads(config.read_text())
    spec["root"] = {"path": rootfs, "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["hostname"] = "wbench"
    linux = spec.setdefault("linux", {})
    linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"]
    linux["cgroupsPath"] = f"/{cgroup_parent(runtime)}/{cgroup_id}"
    config.write_text(json.dumps(spec, indent=1))
    return directory


# ---- the worker (runs as its own process) ----------------------------------------------


def _private_cgroup_view() -> None:
    """In this (private) mount namespace: hide the cgroup2 mount behind a tmpfs."""
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if any(f" {UNIFIED} cgroup2 " in line for line in mounts):
        subprocess.run(["umount", str(UNIFIED)], check=True, capture_output=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "wbench-unified", str(UNIFIED)],
                       check=True, capture_output=True)


class Worker:
    def __init__(self, runtime: str, state: Path) -> None:
        self.runtime = runtime
        self.state = state
        self.containers: set[str] = set()

    def _cmd(self, *args: str) -> list[str]:
        return [self.runtime, "--root", str(self.state), *args]

    def _timed(self, argv: list[str], timeout: float = 60) -> float:
        # stderr goes to a file, not a pipe: a detached container keeps the
        # runtime's stdio, and a pipe would never see EOF.
        errors = self.state.parent / "command.stderr"
        with open(errors, "w+b") as err:
            started = time.perf_counter()
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=timeout)
            took = time.perf_counter() - started
            if done.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{' '.join(argv[:4])} exited {done.returncode}: "
                                   f"{err.read().decode(errors='replace').strip()[-400:]}")
        return took

    def start(self, cid: str, bundle: str) -> dict[str, Any]:
        self.containers.add(cid)
        self._timed(self._cmd("run", "-d", "--bundle", bundle, cid))
        return {}

    def exec(self, cid: str) -> dict[str, Any]:
        return {"seconds": self._timed(self._cmd("exec", cid, "/bin/true"))}

    def run(self, cid: str, bundle: str) -> dict[str, Any]:
        """create + start + wait + delete: `run` in the foreground deletes the
        container when its process exits (checked: `delete` is timed too if not)."""
        self.containers.add(cid)
        took = self._timed(self._cmd("run", "--bundle", bundle, cid))
        if (self.state / cid).exists():
            took += self._timed(self._cmd("delete", "-f", cid))
        self.containers.discard(cid)
        return {"seconds": took}

    def delete(self, cid: str) -> dict[str, Any]:
        subprocess.run(self._cmd("delete", "-f", cid), capture_output=True, timeout=60)
        self.containers.discard(cid)
        return {}

    def cleanup(self) -> dict[str, Any]:
        problems = []
        for cid in sorted(self.containers):
            done = subprocess.run(self._cmd("delete", "-f", cid), capture_output=True, text=True, timeout=60)
            if done.returncode != 0 and (self.state / cid).exists():
                problems.append(f"{self.runtime} delete -f {cid}: {done.stderr.strip()[-300:]}")
        self.containers.clear()
        return {"problems": problems + self.remove_cgroups()}

    def remove_cgroups(self) -> list[str]:
        return remove_cgroups(self.runtime)


def worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oci")
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--private-cgroup-view", action="store_true")
    args = parser.parse_args(argv)
    if args.private_cgroup_view:
        _private_cgroup_view()
    if args.runtime == "lxc":
        from .lxc import LxcWorker
        worker: Worker = LxcWorker(Path(args.state))
    else:
        worker = Worker(args.runtime, Path(args.state))
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request.pop("op")
            try:
                reply = getattr(worker, op)(**request)
            except Exception as exc:  # noqa: BLE001 - the parent records it as the peer's error
                reply = {"error": str(exc)}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        worker.cleanup()
    return 0


# ---- the parent's side ------------------------------------------------------------------


class Peer:
    """One runtime (crun, runc or lxc) behind a worker process."""

    def __init__(self, runtime: str, base: Path, rootfs: str) -> None:
        self.runtime = runtime
        self.base = base / runtime
        self.state = self.base / "state"
        self.rootfs = rootfs
        self.proc: subprocess.Popen[str] | None = None
        self.error: str | None = None
        self._counter = 0

    def start(self) -> Peer:
        if self.runtime == "lxc":
            from .lxc import missing
            self.error = missing()
        elif shutil.which(self.runtime) is None:
            self.error = f"{self.runtime} is not installed (apt-get install {self.runtime})"
        if self.error:
            return self
        self.state.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bench.oci", "--runtime", self.runtime, "--state", str(self.state)]
        if self.runtime == "crun":
            argv = ["unshare", "--mount", "--propagation", "private", "--", *argv, "--private-cgroup-view"]
        with open(self.base / "worker.stderr", "a") as stderr:
            self.proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[1], text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.error = f"{self.runtime} worker did not start: {self._stderr()}"
            self.proc = None
        return self

    def _stderr(self) -> str:
        try:
            return (self.base / "worker.stderr").read_text().strip()[-500:]
        except OSError:
            return ""

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        if self.proc is None or self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError(self.error or f"{self.runtime} worker is not running")
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.runtime} worker died: {self._stderr()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def next_id(self, kind: str) -> str:
        self._counter += 1
        return f"wb-{self.runtime}-{kind}-{os.getpid()}-{self._counter}"

    def seconds(self, op: str, **fields: Any) -> float:
        """What `request` answers with `seconds`: the time one run or exec took."""
        took: float = self.request(op, **fields)["seconds"]
        return took

    def bundle(self, name: str, args: list[str], cgroup_id: str) -> str:
        """An OCI bundle (crun, runc), or LXC's config file."""
        if self.runtime == "lxc":
            from .lxc import make_config
            return str(make_config(self.base / name, self.rootfs, args, cgroup_id))
        return str(make_bundle(self.runtime, self.base / name, self.rootfs, args, cgroup_id))

    def stop(self) -> list[str]:
        problems: list[str] = []
        if self.proc is not None:
            try:
                problems += self.request("cleanup").get("problems", [])
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{self.runtime} cleanup: {exc}")
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(60)
            except (subprocess.TimeoutExpired, OSError, AssertionError):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        problems += force_cleanup(self.runtime, self.state)
        return problems


def remove_cgroups(runtime: str) -> list[str]:
    """Kill what is left in the runtime's bench cgroups and remove them (in this
    mount namespace's view)."""
    problems = []
    for parent in CGROUP_ROOT.glob(f"*/{cgroup_parent(runtime)}"):
        if _fs_type(parent) == "tmpfs":
            shutil.rmtree(parent, ignore_errors=True)  # crun's files in the private tmpfs
            continue
        # Deepest first (LXC nests its pivot group two levels down).
        groups = [Path(top) for top, _, _ in os.walk(parent, topdown=False)]
        for group in groups:
            for _ in range(200):
                pids = _procs(group)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)
            try:
                group.rmdir()
            except OSError as exc:
                problems.append(f"cannot remove {group}: {exc.strerror}")
    return problems


def _procs(group: Path) -> list[int]:
    try:
        return [int(x) for x in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _fs_type(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and (str(path) + "/").startswith(parts[1].rstrip("/") + "/") and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def force_cleanup(runtime: str, state: Path) -> list[str]:
    """After the worker: any container still in the state dir is deleted (crun from
    a private mount namespace like its worker's), then the cgroups."""
    problems: list[str] = []
    leftovers = [p.name for p in state.iterdir() if p.is_dir()] if state.exists() else []
    for cid in leftovers:
        cmd = [runtime, "--root", str(state), "delete", "-f", cid]
        if runtime == "lxc":
            cmd = ["lxc-stop", "-P", str(state), "-n", cid, "-k"]
        elif runtime == "crun":
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                   f"umount {UNIFIED} 2>/dev/null; mount -t tmpfs wbench-unified {UNIFIED}; exec \"$@\"",
                   "sh", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if runtime == "lxc":
            shutil.rmtree(state / cid, ignore_errors=True)
        problems.append(f"{runtime} container {cid} outlived its worker"
                        + ("" if done.returncode == 0 else f"; delete failed: {done.stderr.strip()[-300:]}"))
    problems += remove_cgroups(runtime)
    return problems


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
