"""Configuration: upstream's keys and defaults, and a ConfigError naming the key for every bad value."""

from __future__ import annotations

import pytest

from warden import config
from warden.config import ROOT, ConfigError, ephemeral_port_range, from_dict, load


def test_defaults_match_upstream():
    cfg = from_dict({})
    s = cfg.server
    assert s.unix_domain_path == "/tmp/warden.sock"
    assert s.unix_domain_permissions == 0o600  # not upstream's: only the server's user (issue 11)
    assert s.unix_domain_group is None
    assert s.max_connections == 1024
    assert s.backend == "insecure"  # upstream container_klass default: Warden::Container::Insecure
    assert s.container_grace_time == 300
    assert s.job_output_limit == 10 * 1024 * 1024
    assert s.max_request_size == 16 * 1024 * 1024
    assert s.container_rlimits == {}
    assert s.allow_nested_warden is False
    assert s.pidfile is None and s.syslog_socket is None
    assert s.container_rootfs_path == str(ROOT / "root" / "insecure" / "base" / "rootfs")
    assert s.container_depot_path == str(ROOT / "root" / "insecure" / "instances")
    assert cfg.network.pool_network == "10.254.0.0/24"
    assert cfg.network.release_delay == 5.0
    assert cfg.network.mtu == 1500
    assert cfg.network.allow_networks == [] and cfg.network.dns_servers == []
    assert cfg.network.allow_host_access is False
    assert cfg.user.pool_start_uid == 10000
    assert cfg.user.pool_size == 64
    assert cfg.health_check_port == 2345
    assert cfg.root_path == ROOT / "root" / "insecure"


def test_none_and_empty_document_give_defaults():
    assert from_dict(None) == from_dict({})
    assert from_dict({"server": None, "network": None, "user": {}}) == from_dict({})


def test_default_port_pool_sits_just_above_the_ephemeral_range():
    _low, high = ephemeral_port_range()
    port = from_dict({}).port
    assert port.pool_start_port == high + 1
    assert port.pool_size >= 1000
    assert port.pool_start_port + port.pool_size - 1 <= 65535
    assert port.pool_size == 65001 - port.pool_start_port


def test_ephemeral_port_range_reads_the_file(tmp_path):
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_port_range(str(f)) == (40000, 50000)


@pytest.mark.parametrize("content", [None, "garbage", "1 2 3", ""])
def test_ephemeral_port_range_falls_back_when_missing_or_bad(tmp_path, content):
    f = tmp_path / "range"
    if content is not None:
        f.write_text(content)
    low, high = ephemeral_port_range(str(f))
    assert low == 32768
    assert high in (60999, 61000)


def test_port_pool_follows_a_narrow_ephemeral_range(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "ephemeral_port_range", lambda: (1024, 50000))
    port = from_dict({}).port
    assert (port.pool_start_port, port.pool_size) == (50001, 65001 - 50001)


def test_port_pool_too_small_after_a_wide_ephemeral_range(monkeypatch):
    monkeypatch.setattr(config, "ephemeral_port_range", lambda: (1024, 64500))
    with pytest.raises(ConfigError, match=r"^port\.pool_size: insufficient non-ephemeral ports available \(expected >= 1000, got: 500\)"):
        from_dict({})


def test_explicit_port_pool():
    port = from_dict({"port": {"pool_start_port": 20000, "pool_size": 1000}}).port
    assert (port.pool_start_port, port.pool_size) == (20000, 1000)


@pytest.mark.parametrize("klass,backend", [
    ("Warden::Container::Linux", "linux"),
    ("Warden::Container::Insecure", "insecure"),
    ("linux", "linux"),
    ("insecure", "insecure"),
])
def test_container_klass_and_backend(klass, backend):
    for key in ("container_klass", "backend"):
        cfg = from_dict({"server": {key: klass}})
        assert cfg.server.backend == backend
        assert cfg.root_path == ROOT / "root" / backend
        assert cfg.server.container_depot_path == str(ROOT / "root" / backend / "instances")


@pytest.mark.parametrize("size,prefix", [(256, 22), (64, 24), (100, 23), (1, 30), (2, 29), (128, 23), (129, 22)])
def test_legacy_pool_start_address_and_size(size, prefix):
    cfg = from_dict({"network": {"pool_start_address": "10.254.0.0", "pool_size": size}})
    assert cfg.network.pool_network == f"10.254.0.0/{prefix}"


@pytest.mark.parametrize("network", [
    {"pool_start_address": "10.1.0.0"},
    {"pool_size": 256},
    {"pool_start_address": "10.1.0.0", "pool_size": None},
])
def test_legacy_form_needs_both_keys(network):
    assert from_dict({"network": network}).network.pool_network == "10.254.0.0/24"


def test_legacy_form_wins_over_pool_network():
    cfg = from_dict({"network": {"pool_network": "10.9.0.0/24", "pool_start_address": "10.1.0.0", "pool_size": 64}})
    assert cfg.network.pool_network == "10.1.0.0/24"


def test_container_grace_time_null_disables():
    assert from_dict({"server": {"container_grace_time": None}}).server.container_grace_time is None
    assert from_dict({"server": {"container_grace_time": 0}}).server.container_grace_time == 0


def test_container_grace_time_invalid_is_rejected():
    # The stale comment in upstream's linux.yml suggests `invalid`; upstream's schema rejects it.
    with pytest.raises(ConfigError, match=r"^server\.container_grace_time: "):
        from_dict({"server": {"container_grace_time": "invalid"}})


def test_valid_values_are_kept():
    cfg = from_dict({
        "server": {
            "unix_domain_path": "/run/w.sock",
            "unix_domain_permissions": "0700",
            "container_rlimits": {"nofile": 8192, "as": 4294967296},
            "job_output_limit": 1,
            "max_request_size": 1024,
            "quota": {"disk_quota_enabled": True},
            "allow_nested_warden": True,
            "pidfile": "/run/w.pid",
            "syslog_socket": "/dev/log",
        },
        "network": {"release_delay": 0, "mtu": 1454, "allow_networks": ["10.0.0.0/8", None],
                    "allow_host_access": True, "dns_servers": ["8.8.8.8"]},
        "user": {"pool_start_uid": 20000, "pool_size": 256},
        "logging": {"level": "debug2", "file": "/tmp/w.log"},
        "health_check_server": {"port": None},
    })
    s = cfg.server
    assert s.unix_domain_path == "/run/w.sock"
    assert s.unix_domain_permissions == 0o700
    assert s.container_rlimits == {"nofile": 8192, "as": 4294967296}
    assert s.job_output_limit == 1 and s.max_request_size == 1024
    assert s.disk_quota_enabled is True and s.allow_nested_warden is True
    assert (s.pidfile, s.syslog_socket) == ("/run/w.pid", "/dev/log")
    assert cfg.network.release_delay == 0.0
    assert cfg.network.mtu == 1454
    assert cfg.network.allow_networks == ["10.0.0.0/8"]  # nil entries removed, as upstream's compact
    assert cfg.network.allow_host_access is True
    assert cfg.network.dns_servers == ["8.8.8.8"]
    assert (cfg.user.pool_start_uid, cfg.user.pool_size) == (20000, 256)
    assert (cfg.logging.level, cfg.logging.file) == ("debug2", "/tmp/w.log")
    assert cfg.health_check_port is None


@pytest.mark.parametrize("level", ["off", "fatal", "error", "warn", "info", "debug", "debug1", "debug2", "all"])
def test_steno_log_levels(level):
    assert from_dict({"logging": {"level": level}}).logging.level == level


def test_unknown_keys_are_accepted():
    # Upstream's schemas are not strict.
    assert from_dict({"server": {"no_such_key": 1}, "other_section": {}}).server.backend == "insecure"


# ---- every bad value names its key ------------------------------------------------------

BUG_BOOL_MODE = ()  # fixed; kept as the table marks the rows that were bugs
BUG_UNHASHABLE = ()  # fixed; kept as the table marks the rows that were bugs
BUG_INT_NETWORK = ()  # fixed; kept as the table marks the rows that were bugs
BUG_LEGACY_KEY = ()  # fixed; kept as the table marks the rows that were bugs

BAD = [
    ("top level", [1]),
    ("server", {"server": "x"}),
    ("server", {"server": [1]}),
    ("server.backend", {"server": {"backend": "docker"}}),
    ("server.container_klass", {"server": {"container_klass": "Warden::Container::Docker"}}),
    ("server.container_klass", {"server": {"container_klass": None}}),
    pytest.param("server.backend", {"server": {"backend": ["linux"]}}, marks=BUG_UNHASHABLE, id="server.backend-list"),
    pytest.param("server.container_klass", {"server": {"container_klass": {"x": 1}}}, marks=BUG_UNHASHABLE, id="server.container_klass-map"),
    ("server.container_grace_time", {"server": {"container_grace_time": "invalid"}}),
    ("server.container_grace_time", {"server": {"container_grace_time": -1}}),
    ("server.container_grace_time", {"server": {"container_grace_time": True}}),
    ("server.container_grace_time", {"server": {"container_grace_time": 1.5}}),
    ("server.unix_domain_path", {"server": {"unix_domain_path": ""}}),
    ("server.unix_domain_path", {"server": {"unix_domain_path": 5}}),
    ("server.unix_domain_path", {"server": {"unix_domain_path": None}}),
    ("server.unix_domain_permissions", {"server": {"unix_domain_permissions": "rwx"}}),
    ("server.unix_domain_permissions", {"server": {"unix_domain_permissions": "0999"}}),
    ("server.unix_domain_permissions", {"server": {"unix_domain_permissions": 0o10000}}),
    ("server.unix_domain_permissions", {"server": {"unix_domain_permissions": -1}}),
    ("server.unix_domain_permissions", {"server": {"unix_domain_permissions": 7.5}}),
    pytest.param("server.unix_domain_permissions", {"server": {"unix_domain_permissions": True}}, marks=BUG_BOOL_MODE, id="server.unix_domain_permissions-bool"),
    ("server.container_rootfs_path", {"server": {"container_rootfs_path": ""}}),
    ("server.container_depot_path", {"server": {"container_depot_path": 7}}),
    ("server.container_rlimits", {"server": {"container_rlimits": "nofile=1"}}),
    ("server.container_rlimits.files", {"server": {"container_rlimits": {"files": 1}}}),
    ("server.container_rlimits.nofile", {"server": {"container_rlimits": {"nofile": "many"}}}),
    ("server.container_rlimits.nofile", {"server": {"container_rlimits": {"nofile": -1}}}),
    ("server.container_rlimits.as", {"server": {"container_rlimits": {"as": True}}}),
    ("server.container_rlimits.nproc", {"server": {"container_rlimits": {"nproc": None}}}),
    ("server.job_output_limit", {"server": {"job_output_limit": 0}}),
    ("server.job_output_limit", {"server": {"job_output_limit": "10M"}}),
    ("server.job_output_limit", {"server": {"job_output_limit": 2**32}}),
    ("server.max_request_size", {"server": {"max_request_size": 100}}),
    ("server.quota", {"server": {"quota": "on"}}),
    ("server.quota.disk_quota_enabled", {"server": {"quota": {"disk_quota_enabled": "yes"}}}),
    ("server.allow_nested_warden", {"server": {"allow_nested_warden": "no"}}),
    ("server.allow_nested_warden", {"server": {"allow_nested_warden": 0}}),
    ("server.pidfile", {"server": {"pidfile": 5}}),
    ("server.pidfile", {"server": {"pidfile": ""}}),
    ("server.syslog_socket", {"server": {"syslog_socket": ["/dev/log"]}}),
    ("health_check_server", {"health_check_server": 2345}),
    ("health_check_server.port", {"health_check_server": {"port": 70000}}),
    ("health_check_server.port", {"health_check_server": {"port": "2345"}}),
    ("health_check_server.port", {"health_check_server": {"port": -1}}),
    ("logging", {"logging": ["info"]}),
    ("logging.level", {"logging": {"level": "verbose"}}),
    ("logging.level", {"logging": {"level": "INFO"}}),
    ("logging.level", {"logging": {"level": None}}),
    ("logging.file", {"logging": {"file": 5}}),
    ("network", {"network": "10.254.0.0/24"}),
    ("network.pool_network", {"network": {"pool_network": "10.254.0.0/33"}}),
    ("network.pool_network", {"network": {"pool_network": "not-a-network"}}),
    ("network.pool_network", {"network": {"pool_network": None}}),
    ("network.pool_network", {"network": {"pool_network": "fd00::/64"}}),
    pytest.param("network.pool_network", {"network": {"pool_network": 5}}, marks=BUG_INT_NETWORK, id="network.pool_network-int"),
    pytest.param("network.pool_start_address", {"network": {"pool_start_address": "bogus", "pool_size": 64}}, marks=BUG_LEGACY_KEY, id="network.pool_start_address-bogus"),
    ("network.pool_start_address", {"network": {"pool_start_address": 5, "pool_size": 64}}),
    ("network.pool_size", {"network": {"pool_start_address": "10.0.0.0", "pool_size": 0}}),
    ("network.pool_size", {"network": {"pool_start_address": "10.0.0.0", "pool_size": "64"}}),
    ("network.release_delay", {"network": {"release_delay": -1}}),
    ("network.release_delay", {"network": {"release_delay": "5"}}),
    ("network.release_delay", {"network": {"release_delay": True}}),
    ("network.mtu", {"network": {"mtu": 10}}),
    ("network.mtu", {"network": {"mtu": "1500"}}),
    ("network.allow_networks", {"network": {"allow_networks": "10.0.0.0/8"}}),
    ("network.allow_networks", {"network": {"allow_networks": [1]}}),
    ("network.allow_host_access", {"network": {"allow_host_access": "yes"}}),
    ("network.dns_servers", {"network": {"dns_servers": [8]}}),
    ("port", {"port": "x"}),
    ("port.pool_start_port", {"port": {"pool_start_port": 0}}),
    ("port.pool_start_port", {"port": {"pool_start_port": "61000"}}),
    ("port.pool_size", {"port": {"pool_start_port": 20000, "pool_size": 999}}),
    ("port.pool_size", {"port": {"pool_start_port": 61000, "pool_size": 5000}}),
    ("port.pool_size", {"port": {"pool_start_port": 20000, "pool_size": -5}}),
    ("user", {"user": 1}),
    ("user.pool_start_uid", {"user": {"pool_start_uid": 0}}),
    ("user.pool_start_uid", {"user": {"pool_start_uid": "10000"}}),
    ("user.pool_size", {"user": {"pool_size": 0}}),
    ("user.pool_size", {"user": {"pool_size": 1.5}}),
]



@pytest.mark.parametrize("key,raw", BAD)
def test_bad_value_names_its_key(key, raw):
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    message = str(info.value)
    assert message.startswith(f"{key}:"), message


def test_bad_value_in_a_file_names_its_key(tmp_path):
    f = tmp_path / "w.yml"
    f.write_text("server:\n  container_grace_time: invalid\n")
    with pytest.raises(ConfigError, match=r"^server\.container_grace_time: "):
        load(f)


# ---- files -----------------------------------------------------------------------------


def test_unreadable_file(tmp_path):
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert str(info.value).startswith(f"{missing}: cannot read config")
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path)  # a directory


def test_invalid_yaml(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load(f)
    assert str(info.value).startswith(f"{f}: not valid YAML")


def test_empty_file_gives_defaults(tmp_path):
    f = tmp_path / "empty.yml"
    f.write_text("")
    cfg = load(f)
    assert cfg.path == str(f)
    assert cfg.server.container_grace_time == 300


def test_yaml_octal_permissions(tmp_path):
    f = tmp_path / "w.yml"
    f.write_text("server:\n  unix_domain_permissions: 0770\n")
    assert load(f).server.unix_domain_permissions == 0o770


def test_shipped_linux_config_loads():
    cfg = load(ROOT / "config" / "linux.yml")
    assert cfg.server.backend == "linux"
    assert cfg.server.unix_domain_permissions == 0o660
    assert cfg.server.unix_domain_group == "warden"
    assert cfg.server.container_grace_time == 300
    assert cfg.server.container_rlimits == {"as": 4294967296, "nofile": 8192, "nproc": 512}
    assert cfg.server.job_output_limit == 2 * 1024**3  # on disk; a 1 GiB stream fits
    assert cfg.network.pool_network == "10.254.0.0/22"  # upstream: pool_start_address + pool_size 256
    assert cfg.user.pool_size == 256
    assert cfg.health_check_port == 2345
    assert cfg.path == str(ROOT / "config" / "linux.yml")


def test_shipped_insecure_config_loads():
    cfg = load(ROOT / "config" / "insecure.yml")
    assert cfg.server.backend == "insecure"
    assert cfg.root_path == ROOT / "root" / "insecure"
    assert cfg.network.pool_network == "10.254.0.0/24"
    assert cfg.server.container_grace_time == 300


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, None), (64, 64), (100000, 100000)])
def test_container_pids_limit(value, expected):
    assert from_dict({}).server.container_pids_limit == 1024
    assert from_dict({"server": {"container_pids_limit": value}}).server.container_pids_limit == expected


@pytest.mark.parametrize("value", ["many", -1, True, 1.5])
def test_container_pids_limit_errors_name_the_key(value):
    with pytest.raises(ConfigError, match=r"^server\.container_pids_limit: must be"):
        from_dict({"server": {"container_pids_limit": value}})


# ---- the socket: who may talk to warden (issue 11) ---------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o666, 0o662, 0o002, "0777", "0622"])
def test_a_socket_mode_that_lets_other_users_write_is_refused(mode):
    with pytest.raises(ConfigError) as info:
        from_dict({"server": {"unix_domain_permissions": mode}})
    message = str(info.value)
    assert message.startswith("server.unix_domain_permissions:")
    assert "unix_domain_world_writable_i_understand_the_risk" in message and "root" in message


def test_a_world_writable_socket_is_allowed_when_the_risk_is_named():
    s = from_dict({"server": {"unix_domain_permissions": 0o777,
                              "unix_domain_world_writable_i_understand_the_risk": True}}).server
    assert s.unix_domain_permissions == 0o777


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o664, 0o755, 0o700])
def test_socket_modes_closed_to_other_users_are_fine(mode):
    assert from_dict({"server": {"unix_domain_permissions": mode}}).server.unix_domain_permissions == mode


@pytest.mark.parametrize("group", ["warden", 0, 1234])
def test_socket_group_is_a_name_or_a_gid(group):
    assert from_dict({"server": {"unix_domain_group": group}}).server.unix_domain_group == group


@pytest.mark.parametrize("raw", [
    {"unix_domain_group": ""},
    {"unix_domain_group": -1},
    {"unix_domain_group": True},
    {"unix_domain_group": ["warden"]},
    {"unix_domain_world_writable_i_understand_the_risk": "yes"},
    {"max_connections": 0},
    {"max_connections": "many"},
])
def test_bad_socket_and_connection_keys_are_named(raw):
    with pytest.raises(ConfigError) as info:
        from_dict({"server": raw})
    assert str(info.value).startswith(f"server.{next(iter(raw))}:")
