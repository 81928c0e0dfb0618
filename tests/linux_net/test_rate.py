"""net_rate.sh and net.sh get_ingress_info / get_egress_info."""
from __future__ import annotations

import re
import time

import pytest

from .conftest import SINK_PORT, SOURCE_BYTES, SOURCE_PORT


def qdiscs(lab, iface: str) -> str:
    return lab.host.exec("tc", "qdisc", "show", "dev", iface).stdout


def filters(lab, c) -> str:
    """The ingress filters of w-<id>-0, without the action's instance index."""
    out = lab.host.exec("tc", "filter", "show", "dev", c.host_iface, "ingress").stdout
    return re.sub(r"index \d+ ref \d+ bind \d+", "", out)


def info(c) -> tuple[str, str]:
    return c.net("get_ingress_info").stdout.strip(), c.net("get_egress_info").stdout.strip()


def test_rate_applies_both_ways_and_is_idempotent(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    c.rate(8_000_000, 10_000)
    host = qdiscs(lab, c.host_iface)
    assert "qdisc tbf" in host and "root" in host and "rate 8Mbit burst 10000b" in host
    assert "qdisc ingress ffff:" in host
    assert "rate 8Mbit burst 10000b" in qdiscs(lab, c.ifb_iface)
    assert f"mirred (Egress Redirect to device {c.ifb_iface})" in filters(lab, c)
    assert filters(lab, c).count("mirred") == 1
    assert info(c) == ("rate=8000000 burst=10000", "rate=8000000 burst=10000")

    before = (qdiscs(lab, c.host_iface), qdiscs(lab, c.ifb_iface), filters(lab, c))
    c.rate(8_000_000, 10_000)
    assert (qdiscs(lab, c.host_iface), qdiscs(lab, c.ifb_iface), filters(lab, c)) == before

    # A new limit replaces the old one, still with a single filter.
    c.rate(16_000_000, 20_000)
    assert info(c) == ("rate=16000000 burst=20000", "rate=16000000 burst=20000")
    assert filters(lab, c).count("mirred") == 1


@pytest.mark.parametrize("rate,burst", [
    (800_000, 1024),
    (1_000_000_000, 1600),   # tc alone would read back 1500
    (98_765_432, 12_345),    # tc alone would read back 12344
    (40_000_000_000, 100_000),
    (8_000, 1500),
])
def test_info_reports_what_was_set(make_lab, rate, burst):
    lab = make_lab(1)
    c = lab.containers[0]
    c.rate(rate, burst)
    assert info(c) == (f"rate={rate} burst={burst}",) * 2


def test_info_reports_the_kernel_when_it_differs(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    c.rate(1_000_000_000, 1600)
    # Changed by hand: the kernel's values win over the record.
    lab.host.exec("tc", "qdisc", "replace", "dev", c.host_iface, "root", "tbf", "rate", "16mbit",
                  "burst", "20000", "latency", "25ms")
    assert info(c) == ("rate=16000000 burst=20000", "rate=1000000000 burst=1600")
    # Without the record: tc's view, exact where the kernel's rounding is.
    (c.path / "run" / "net_rate").unlink()
    assert info(c) == ("rate=16000000 burst=20000", "rate=1000000000 burst=1500")


def test_info_without_a_limit(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    assert info(c) == ("", "")
    # After the container stopped its veth is gone: still no error.
    lab.host.exec("ip", "link", "del", c.host_iface)
    c.rate(8_000_000, 10_000, check=False)
    assert info(c) == ("", "")


def test_rate_argument_errors(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    res = lab.host.exec(c.path / "net_rate.sh", env={"BURST": "10000"}, check=False)
    assert res.returncode == 1 and "Please specify RATE" in res.stderr
    res = lab.host.exec(c.path / "net_rate.sh", env={"RATE": "8000000"}, check=False)
    assert res.returncode == 1 and "Please specify BURST" in res.stderr
    for rate, burst in [("8mbit", "10000"), ("4", "10000"), ("8000000", "0"), ("8000000", "1k")]:
        res = c.rate(rate, burst, check=False)
        assert res.returncode == 1, (rate, burst)
    assert "tbf" not in qdiscs(lab, c.host_iface)


def transfer_seconds(lab, c) -> tuple[float, float]:
    """Seconds to send SOURCE_BYTES into the container, and to receive as many from it."""
    start = time.monotonic()
    res = lab.host.sh(f"head -c {SOURCE_BYTES} /dev/zero | nc -N -n -w 10 {c.container_ip} {SINK_PORT}")
    into = time.monotonic() - start
    assert res.stdout.strip() == str(SOURCE_BYTES)
    start = time.monotonic()
    res = lab.host.sh(f"nc -d -n -w 10 {c.container_ip} {SOURCE_PORT} | wc -c")
    out = time.monotonic() - start
    assert res.stdout.strip() == str(SOURCE_BYTES)
    return into, out


def test_rate_really_limits_traffic(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    c.serve()
    into, out = transfer_seconds(lab, c)
    assert into < 0.5 and out < 0.5, (into, out)
    # 100 kB/s: 150 kB take about 1.4 s each way (after a 10 kB burst).
    c.rate(800_000, 10_000)
    into, out = transfer_seconds(lab, c)
    assert 1.0 < into < 5 and 1.0 < out < 5, (into, out)
