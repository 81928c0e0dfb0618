"""warden-py's benchmark suite: `invoke bench [--json FILE] [--quick]` or `python -m bench`.

Each benchmark runs warden (Linux backend, a server of its own) side by side with a
peer measured in the same run on the same machine, so that the noise of a shared
2-core VM hits both alike and the ratios mean something:

    run_true   Run of /bin/true              vs crun exec / runc exec       (run_true.py)
    lifecycle  Create + Destroy              vs bench/reference.sh, crun run, runc run (lifecycle.py)
    scale      250 containers, 8 clients     failures, seconds, server RSS  (scale.py)
    stream     1 GiB of job output streamed  vs dd | cat                    (stream.py)
    ping       Ping round trips per second                                  (ping.py)

Everything a benchmark makes in the kernel is removed in `finally` blocks, and the
run compares `warden.leaks` (plus the bench's own objects) before and after.

`python -m bench.profile [lifecycle] [run] [stream]` says where the time goes
(per-line costs of the scripts, process starts, CPU split, py-spy frames).
"""
