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


def start_wshd(tmp):
    path = os.path.join(tmp, "wshd.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    r, w = os.pipe()
    proc = subprocess.Popen(
        [WSHD, "--serve", str(lsock.fileno()), str(w)],
        pass_fds=(lsock.fileno(), w),
        stderr=open(os.path.join(tmp, "wshd.err"), "wb"),
    )
    os.close(w)
    lsock.close()
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
    finally:
        proc.kill()
        proc.wait()
        with open(os.path.join(tmp, "wshd.err"), "rb") as f:
            log = f.read()
        if log:
            sys.stderr.write("wshd stderr:\n" + log.decode(errors="replace"))
        subprocess.run(["rm", "-rf", tmp])
    print("serve_test: %d checks passed" % checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
