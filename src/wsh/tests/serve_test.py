#!/usr/bin/env python3
"""Exercise wshd's serving loop and wsh on the host, without namespaces.

wshd is started directly in its internal "--serve" mode on a temporary
socket, so this needs no rootfs, but it does need root (jobs switch user).
Run by `make test`; prints a summary and exits 1 on the first failure.
"""
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WSHD = os.path.join(HERE, "..", "wshd")
WSH = os.path.join(HERE, "..", "wsh")


def start_wshd(tmp, jobs_dir=None):
    name = "wshd-jobs" if jobs_dir else "wshd"
    path = os.path.join(tmp, name + ".sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    r, w = os.pipe()
    argv = [WSHD, "--serve", str(lsock.fileno()), str(w)]
    fds = [lsock.fileno(), w]
    if jobs_dir:
        jobs_fd = os.open(jobs_dir, os.O_RDONLY | os.O_DIRECTORY)
        argv += [str(jobs_fd), "4242"]
        fds.append(jobs_fd)
    proc = subprocess.Popen(argv, pass_fds=fds, stderr=open(os.path.join(tmp, name + ".err"), "wb"))
    os.close(w)
    lsock.close()
    if jobs_dir:
        os.close(jobs_fd)
    ready = os.read(r, 1)
    os.close(r)
    assert ready == b"R", "wshd did not report ready"
    return proc, path


def wsh(sock, *args, user=None, stdin=b"", env=None, timeout=20):
    cmd = [WSH, "--socket", sock]
    if user:
        cmd += ["--user", user]
    cmd += list(args)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full_env.update(env or {})
    return subprocess.run(cmd, input=stdin, capture_output=True, env=full_env, timeout=timeout)


def job_request(job, args=("/bin/sh",), user="root", output_limit=0, discard=False, version=2):
    """A job-mode request (proto.h, version 2)."""
    def rec(t, v):
        return struct.pack("<BI", t, len(v)) + v
    body = b"".join(rec(1, a.encode()) for a in args) + rec(2, user.encode()) + rec(6, job.encode())
    if output_limit:
        body += rec(7, struct.pack("<Q", output_limit))
    if discard:
        body += rec(8, b"")
    return b"WSHq" + struct.pack("<HHI", version, 2, len(body)) + body


def ask(sock, request):
    """(status, pid or message) of one request."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status, length = struct.unpack("<HI", data[6:12])
    body = data[12:12 + length]
    return (0, struct.unpack("<I", body[:4])[0]) if status == 0 else (status, body.decode())


def wait_status(jobdir, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(jobdir, "status")) as f:
                return f.read()
        except FileNotFoundError:
            time.sleep(0.01)
    return None


def records(jobdir):
    with open(os.path.join(jobdir, "output"), "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        stream, length = struct.unpack(">BI", data[off:off + 5])
        out.append((stream, data[off + 5:off + 5 + length]))
        off += 5 + length
    return out


def job_mode_checks(tmp, plain_sock, check):
    jobs = os.path.join(tmp, "jobs")
    os.mkdir(jobs)
    proc, sock = start_wshd(tmp, jobs)

    def new_job(name, script):
        os.mkdir(os.path.join(jobs, name))
        with open(os.path.join(jobs, name, "script"), "w") as f:
            f.write(script)
        return os.path.join(jobs, name)

    try:
        d = new_job("1", "echo out; sleep 0.05; echo err >&2; sleep 0.05; echo out2; exit 3\n")
        status, pid = ask(sock, job_request("1"))
        check(status == 0 and pid > 0, "job mode: started (%r)" % ((status, pid),))
        check(wait_status(d) == "3\n", "job mode: exit status")
        check(records(d) == [(1, b"out\n"), (2, b"err\n"), (1, b"out2\n")], "job mode: records in order")
        with open(os.path.join(d, "pid")) as f1, open(os.path.join(d, "child_pid")) as f2:
            check(f1.read() == "4242\n" and f2.read() == "%d\n" % pid, "job mode: pid files")
        check(not os.path.exists(os.path.join(d, "notify.sock")), "job mode: notify.sock removed")

        d = new_job("2", "head -c 100000 /dev/zero; sleep 30\n")
        check(ask(sock, job_request("2", output_limit=1000))[0] == 0, "job mode: limit job started")
        check(wait_status(d) == "255\noutput limit exceeded\n", "job mode: output limit status")
        check(sum(len(data) for _, data in records(d)) == 1000, "job mode: output cut at the limit")

        d = new_job("3", "echo hidden; kill -9 $$\n")
        check(ask(sock, job_request("3", discard=True))[0] == 0, "job mode: discard job started")
        check(wait_status(d) == "255\n" and records(d) == [], "job mode: discard, killed -> 255")

        d = new_job("4", "sleep 1\n")
        check(ask(sock, job_request("4"))[0] == 0, "job mode: long job started")
        t0 = time.monotonic()
        r = wsh(sock, "echo", "hi", timeout=5)
        check(r.stdout == b"hi\n" and time.monotonic() - t0 < 0.5, "job mode: exec while a job runs", r)
        check(wait_status(d) == "0\n", "job mode: long job finished")

        status, msg = ask(sock, job_request("missing"))
        check(status == 1 and "open the job directory" in msg, "job mode: missing directory (%r)" % msg)
        os.mkdir(os.path.join(jobs, "noscript"))
        status, msg = ask(sock, job_request("noscript"))
        check(status == 1 and "open script" in msg, "job mode: missing script (%r)" % msg)
        check(not os.path.exists(os.path.join(jobs, "noscript", "notify.sock")), "job mode: no socket left")
        status, msg = ask(sock, job_request(".."))
        check(status == 1 and "invalid job directory name" in msg, "job mode: bad name (%r)" % msg)
        status, msg = ask(sock, job_request("1", version=1))
        check(status == 1 and "unknown request flags" in msg, "job mode: refused in version 1 (%r)" % msg)
        new_job("5", "true\n")
        status, msg = ask(plain_sock, job_request("5"))
        check(status == 1 and "holds no jobs" in msg, "job mode: refused without a jobs directory (%r)" % msg)
    finally:
        proc.kill()
        proc.wait()
        for name in os.listdir(jobs):  # jobs a failed check left running
            if not os.path.exists(os.path.join(jobs, name, "status")):
                try:
                    with open(os.path.join(jobs, name, "child_pid")) as f:
                        os.killpg(int(f.read()), signal.SIGKILL)
                except (OSError, ValueError):
                    pass


def main():
    if os.geteuid() != 0:
        print("serve_test: skipped (needs root)")
        return 0
    tmp = tempfile.mkdtemp(prefix="wshd-serve-test-")
    proc, sock = start_wshd(tmp)
    checks = 0

    def check(cond, what, res=None):
        nonlocal checks
        checks += 1
        if not cond:
            detail = ""
            if res is not None:
                detail = " (rc=%r stdout=%r stderr=%r)" % (res.returncode, res.stdout[:300], res.stderr[:300])
            raise AssertionError(what + detail)

    try:
        r = wsh(sock, "sh", "-c", "echo out; echo err >&2; exit 42")
        check(r.returncode == 42 and r.stdout == b"out\n" and r.stderr == b"err\n", "exit status and streams", r)

        r = wsh(sock, "sh", "-c", "kill -9 $$")
        check(r.returncode == 255, "killed by a signal -> 255", r)

        data = os.urandom(3 * 1024 * 1024)
        r = wsh(sock, "cat", stdin=data)
        check(r.returncode == 0 and r.stdout == data, "3 MiB through cat both ways", r)

        r = wsh(sock, "sh", "-c", "head -c 10 >/dev/null; echo done", stdin=os.urandom(1 << 20))
        check(r.returncode == 0 and r.stdout == b"done\n", "job that stops reading stdin", r)

        r = wsh(sock, "sh", "-c", 'echo "$LANG|$HOME|$USER|$PATH|$FOO"', env={"LANG": "C.UTF-8"})
        check(r.stdout == b"C.UTF-8|/root|root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|\n",
              "root environment", r)
        r = wsh(sock, "--env", "FOO=bar", "--env", "PATH=/bin", "sh", "-c", 'echo "$FOO $PATH"')
        check(r.stdout == b"bar /bin\n", "--env entries", r)

        r = wsh(sock, "sh", "-c", "id -u; id -G; echo $PATH; pwd", user="nobody")
        lines = r.stdout.decode().split("\n")
        check(r.returncode == 0 and lines[0] == "65534" and lines[1] == "65534"
              and lines[2] == "/usr/local/bin:/usr/bin:/bin", "non-root user, no extra groups", r)

        r = wsh(sock, "--dir", "/tmp", "pwd")
        check(r.stdout == b"/tmp\n", "--dir", r)
        r = wsh(sock, "--dir", "/nonexistent", "pwd")
        check(r.returncode == 255 and b"chdir" in r.stderr, "bad --dir", r)

        r = wsh(sock, "bash", "-c", "ulimit -n; ulimit -Hn; ulimit -c; ulimit -u",
                env={"RLIMIT_NOFILE": "77 88"})
        check(r.stdout == b"77\n88\n0\n1024\n", "rlimits and defaults", r)
        r = wsh(sock, "true", env={"RLIMIT_NOFILE": "lots"})
        check(r.returncode == 255 and b"RLIMIT_NOFILE" in r.stderr, "bad rlimit value", r)

        r = wsh(sock, "true", user="no-such-user")
        check(r.returncode == 255 and b"unknown user" in r.stderr, "unknown user", r)
        r = wsh(sock, "no-such-program-xyz")
        check(r.returncode == 255 and b"exec" in r.stderr, "missing program", r)

        r = subprocess.run([WSH, "--socket", os.path.join(tmp, "nope.sock"), "true"], capture_output=True)
        check(r.returncode == 255 and r.stderr.startswith(b"wsh: connect "), "connect failure", r)

        # A silent client and a half-sent request must not block anybody.
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(sock)
        half = socket.socket(socket.AF_UNIX)
        half.connect(sock)
        half.sendall(b"WSHq\x01\x00\x00\x00\x40\x00\x00\x00\x01")
        t0 = time.monotonic()
        r = wsh(sock, "echo", "hi", timeout=5)
        check(r.stdout == b"hi\n" and time.monotonic() - t0 < 2, "silent clients do not block", r)
        silent.close()
        half.close()

        # Garbage gets an error response.
        bad = socket.socket(socket.AF_UNIX)
        bad.connect(sock)
        bad.sendall(b"GET / HTTP/1.0\r\n\r\n")
        bad.settimeout(5)
        reply = bad.recv(4096)
        check(reply[:4] == b"WSHr" and struct.unpack("<H", reply[6:8])[0] == 1 and b"bad magic" in reply,
              "garbage is answered with an error")
        bad.close()

        # Orphans are reaped and do not hold up the exit status.
        r = wsh(sock, "sh", "-c", "(sleep 0.2 >/dev/null 2>&1 </dev/null &); exit 3")
        check(r.returncode == 3, "backgrounded orphan", r)

        # tty mode: stdin is a pty.
        master, slave = pty.openpty()
        p = subprocess.Popen([WSH, "--socket", sock, "sh", "-c", "tty; stty size; exit 7"],
                             stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(slave)
        out, err = p.communicate(timeout=10)
        os.close(master)
        check(p.returncode == 7 and b"/dev/pts/" in out, "tty mode (rc=%r out=%r err=%r)" % (p.returncode, out, err))

        # Many jobs in parallel.
        procs = [subprocess.Popen([WSH, "--socket", sock, "sh", "-c", "exit %d" % i],
                                  stdout=subprocess.DEVNULL) for i in range(40)]
        check([p.wait(timeout=20) for p in procs] == list(range(40)), "40 parallel jobs")

        job_mode_checks(tmp, sock, check)
    finally:
        proc.kill()
        proc.wait()
        for name in ("wshd.err", "wshd-jobs.err"):
            try:
                with open(os.path.join(tmp, name), "rb") as f:
                    log = f.read()
            except FileNotFoundError:
                continue
            if log:
                sys.stderr.write(name + ":\n" + log.decode(errors="replace"))
        subprocess.run(["rm", "-rf", tmp])
    print("serve_test: %d checks passed" % checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
