"""How long the network scripts take (median of 10), with 20 other containers' rules
in place. Printed (run pytest with -s to see it); speed itself is judged by
`invoke bench`, so the test only checks that every step ran every round.

Times are taken inside the host namespace around each script, so they include
bash's start and every process the script runs, but not `ip netns exec`.
"""
from __future__ import annotations

import statistics

from .conftest import GLOBAL_NET, POOL, FakeContainer

ROUNDS = 10

TIMING_SCRIPT = r"""
set -euo pipefail
global=$1 dir=$2
shift 2
t() {
  local name=$1 start end
  shift
  start=${EPOCHREALTIME/./}
  "$@" >/dev/null
  end=${EPOCHREALTIME/./}
  echo "$name $((end - start))"
}
export POOL_NETWORK ALLOW_NETWORKS=10.254.251.2 ALLOW_HOST_ACCESS=false
for _ in $(seq "$ROUNDS"); do
  env -u POOL_NETWORK "$global" teardown
  t "global setup (fresh)" "$global" setup
  t "global setup (again, no-op)" "$global" setup
  for other in "$@"; do
    "$other/net.sh" setup
  done
  t "instance setup (new)" "$dir/net.sh" setup
  HOST_PORT=6100 CONTAINER_PORT=7000 t "in" "$dir/net.sh" in
  NETWORK=10.254.251.2 PORTS=80 PROTOCOL=tcp ICMP_TYPE= ICMP_CODE= LOG=false t "out" "$dir/net.sh" out
  t "instance setup (again, recovery)" "$dir/net.sh" setup
  HOST_PORT=6100 CONTAINER_PORT=7000 "$dir/net.sh" in
  NETWORK=10.254.251.2 PORTS=80 PROTOCOL=tcp ICMP_TYPE= ICMP_CODE= LOG=false "$dir/net.sh" out
  t "instance teardown" "$dir/net.sh" teardown
  t "instance teardown (again, nothing there)" "$dir/net.sh" teardown
  t "net_rate.sh" env RATE=8000000 BURST=10000 "$dir/net_rate.sh"
  t "get_ingress_info" "$dir/net.sh" get_ingress_info
done
env -u POOL_NETWORK "$global" teardown
"""


def test_timings(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    others = [FakeContainer(lab, i + 1).make_dir() for i in range(20)]
    res = lab.host.exec("bash", "-c", TIMING_SCRIPT, "timing", GLOBAL_NET, c.path,
                        *[o.path for o in others],
                        env={"POOL_NETWORK": POOL, "ROUNDS": ROUNDS}, timeout=300)
    samples: dict[str, list[int]] = {}
    for line in res.stdout.splitlines():
        name, us = line.rsplit(" ", 1)
        samples.setdefault(name, []).append(int(us))
    medians = {name: statistics.median(values) / 1000 for name, values in samples.items()}
    print(f"\nmedian of {ROUNDS}, ms:")
    for name, ms in medians.items():
        print(f"  {name:42s} {ms:7.1f}")
    assert lab.warden_lines() == []
    # Speed is judged by `invoke bench`; here every step must have run every round.
    assert all(len(values) == ROUNDS for values in samples.values()), samples
