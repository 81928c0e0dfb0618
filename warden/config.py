"""Server configuration: upstream warden's YAML keys and defaults, checked at start-up.

A bad value stops the server with a `ConfigError` whose text names the key, so an
operator never has to guess which line of the file is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .pool import parse_network
from .protocol.catalogue import catalogue

ROOT = Path(__file__).resolve().parents[1]

# The ResourceLimits struct of spec/protocol.yml (src/common/rlimit_table.h agrees).
RLIMIT_NAMES = tuple(catalogue().structs["ResourceLimits"])
LOG_LEVELS = ("off", "fatal", "error", "warn", "info", "debug", "debug1", "debug2", "all")
BACKENDS = {
    "linux": "linux",
    "insecure": "insecure",
    "Warden::Container::Linux": "linux",
    "Warden::Container::Insecure": "insecure",
}


class ConfigError(Exception):
    """An invalid configuration value; the message starts with the dotted key."""


@dataclass
class ServerConfig:
    unix_domain_path: str = "/tmp/warden.sock"
    unix_domain_permissions: int = 0o600
    unix_domain_group: str | int | None = None  # a group name or gid; None: the server's own group
    unix_domain_world_writable_i_understand_the_risk: bool = False
    max_connections: int = 1024
    backend: str = "insecure"
    container_grace_time: int | None = 300
    container_rootfs_path: str = ""
    container_depot_path: str = ""
    container_rlimits: dict[str, int] = field(default_factory=dict)
    job_output_limit: int = 10 * 1024 * 1024
    max_request_size: int = 16 * 1024 * 1024
    disk_quota_enabled: bool = False
    allow_nested_warden: bool = False
    container_pids_limit: int | None = 1024
    pidfile: str | None = None
    syslog_socket: str | None = None


@dataclass
class NetworkConfig:
    pool_network: str = "10.254.0.0/24"
    release_delay: float = 5.0
    mtu: int = 1500
    allow_networks: list[str] = field(default_factory=list)
    allow_host_access: bool = False
    dns_servers: list[str] = field(default_factory=list)


@dataclass
class PortConfig:
    pool_start_port: int = 0
    pool_size: int = 0


@dataclass
class UserConfig:
    pool_start_uid: int = 10000
    pool_size: int = 64


@dataclass
class LoggingConfig:
    level: str = "info"
    file: str | None = None


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    port: PortConfig = field(default_factory=PortConfig)
    user: UserConfig = field(default_factory=UserConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    health_check_port: int | None = 2345
    path: str | None = None

    @property
    def root_path(self) -> Path:
        """The backend's scripts: `root/linux` or `root/insecure`."""
        return ROOT / "root" / self.server.backend


def ephemeral_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    try:
        low, high = Path(path).read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# ---- typed getters: each names the key in its error -------------------------------


def _int(section: dict[str, Any], key: str, where: str, default: Any, *, low: int = 0, high: int | None = None,
         why_high: str = "", nullable: bool = False) -> Any:
    value = section.get(key, default)
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        kind = "an integer or null" if nullable else "an integer"
        raise ConfigError(f"{where}.{key}: must be {kind}, got {value!r}")
    if value < low:
        raise ConfigError(f"{where}.{key}: must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{where}.{key}: must be at most {high}{why_high}, got {value}")
    return value


def _bool(section: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false, got {value!r}")
    return value


def _str(section: dict[str, Any], key: str, where: str, default: str | None, *, nullable: bool = False) -> Any:
    value = section.get(key, default)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: must be a non-empty string, got {value!r}")
    return value


def _str_list(section: dict[str, Any], key: str, where: str) -> list[str]:
    value = section.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) or v is None for v in value):
        raise ConfigError(f"{where}.{key}: must be a list of strings, got {value!r}")
    return [v for v in value if v is not None]


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a mapping, got {value!r}")
    return value


# ---- sections ----------------------------------------------------------------------


def _server(raw: dict[str, Any]) -> ServerConfig:
    s = _section(raw, "server")
    where = "server"
    kind = s.get("backend", s.get("container_klass", "insecure"))
    key = "backend" if "backend" in s else "container_klass"
    if not isinstance(kind, str) or kind not in BACKENDS:
        raise ConfigError(
            f"server.{key}: unknown backend {kind!r} (use linux, insecure, "
            "Warden::Container::Linux or Warden::Container::Insecure)"
        )
    backend = BACKENDS[kind]
    rlimits = s.get("container_rlimits") or {}
    if not isinstance(rlimits, dict):
        raise ConfigError(f"server.container_rlimits: must be a mapping, got {rlimits!r}")
    for name in rlimits:
        if name not in RLIMIT_NAMES:
            raise ConfigError(f"server.container_rlimits.{name}: unknown rlimit (known: {', '.join(RLIMIT_NAMES)})")
        _int(rlimits, name, "server.container_rlimits", None)
    quota = s.get("quota") or {}
    if not isinstance(quota, dict):
        raise ConfigError(f"server.quota: must be a mapping, got {quota!r}")
    permissions = s.get("unix_domain_permissions", 0o600)
    if isinstance(permissions, str):
        try:
            permissions = int(permissions, 8)
        except ValueError:
            raise ConfigError(f"server.unix_domain_permissions: must be an octal mode, got {permissions!r}") from None
    if not isinstance(permissions, int) or isinstance(permissions, bool) or not 0 <= permissions <= 0o7777:
        raise ConfigError(f"server.unix_domain_permissions: must be a file mode, got {permissions!r}")
    risk = _bool(s, "unix_domain_world_writable_i_understand_the_risk", where, False)
    _check_socket_mode(permissions, risk)
    base = Path(__file__).resolve().parents[1] / "root" / backend
    return ServerConfig(
        unix_domain_path=_str(s, "unix_domain_path", where, "/tmp/warden.sock"),
        unix_domain_permissions=permissions,
        unix_domain_group=_group(s),
        unix_domain_world_writable_i_understand_the_risk=risk,
        max_connections=_int(s, "max_connections", where, 1024, low=1),
        backend=backend,
        container_grace_time=_int(s, "container_grace_time", where, 300, nullable=True),
        container_rootfs_path=_str(s, "container_rootfs_path", where, str(base / "base" / "rootfs")),
        container_depot_path=_str(s, "container_depot_path", where, str(base / "instances")),
        container_rlimits={k: int(v) for k, v in rlimits.items()},
        job_output_limit=_int(s, "job_output_limit", where, 10 * 1024 * 1024, low=1, high=2**32 - 1,
                              why_high=" (Link and Run answer with the output as one msgpack bin)"),
        max_request_size=_int(s, "max_request_size", where, 16 * 1024 * 1024, low=1024),
        disk_quota_enabled=_bool(quota, "disk_quota_enabled", "server.quota", False),
        allow_nested_warden=_bool(s, "allow_nested_warden", where, False),
        container_pids_limit=_int(s, "container_pids_limit", where, 1024, nullable=True) or None,
        pidfile=_str(s, "pidfile", where, None, nullable=True),
        syslog_socket=_str(s, "syslog_socket", where, None, nullable=True),
    )


def _check_socket_mode(mode: int, risk_accepted: bool) -> None:
    """Whoever can write to the socket can run jobs as root: "other" may only
    when the config says, in so many words, that this is meant."""
    if mode & 0o002 and not risk_accepted:
        raise ConfigError(
            f"server.unix_domain_permissions: {mode:04o} lets every local user write to the socket, and "
            "a client can run commands as root; use 0660 with server.unix_domain_group, or set "
            "server.unix_domain_world_writable_i_understand_the_risk: true"
        )


def _group(s: dict[str, Any]) -> str | int | None:
    """A group name or a gid (resolved at start-up, when the socket is made)."""
    value = s.get("unix_domain_group")
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"server.unix_domain_group: must be a group name or a gid, got {value!r}")


def _network(raw: dict[str, Any]) -> NetworkConfig:
    n = _section(raw, "network")
    where = "network"
    pool = n.get("pool_network", "10.254.0.0/24")
    key = "pool_network"
    if n.get("pool_start_address") is not None and n.get("pool_size") is not None:
        size = _int(n, "pool_size", where, None, low=1)
        start = _str(n, "pool_start_address", where, None)
        prefix = 32 - (math.ceil(math.log2(size)) + 2)
        pool, key = f"{start}/{prefix}", "pool_start_address"
    if not isinstance(pool, str):
        raise ConfigError(f"network.{key}: must be a network like 10.254.0.0/24, got {pool!r}")
    try:
        parse_network(pool)
    except ValueError as exc:
        raise ConfigError(f"network.{key}: {exc}") from None
    delay = n.get("release_delay", 5.0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise ConfigError(f"network.release_delay: must be a number of seconds, got {delay!r}")
    return NetworkConfig(
        pool_network=pool,
        release_delay=float(delay),
        mtu=_int(n, "mtu", where, 1500, low=68),
        allow_networks=_str_list(n, "allow_networks", where),
        allow_host_access=_bool(n, "allow_host_access", where, False),
        dns_servers=_str_list(n, "dns_servers", where),
    )


def _port(raw: dict[str, Any]) -> PortConfig:
    p = _section(raw, "port")
    start = _int(p, "pool_start_port", "port", ephemeral_port_range()[1] + 1, low=1)
    size = _int(p, "pool_size", "port", max(0, 65001 - start), low=0)
    if size < 1000:
        raise ConfigError(f"port.pool_size: insufficient non-ephemeral ports available (expected >= 1000, got: {size})")
    if start + size - 1 > 65535:
        raise ConfigError(f"port.pool_size: pool {start}..{start + size - 1} runs past port 65535")
    return PortConfig(pool_start_port=start, pool_size=size)


def _user(raw: dict[str, Any]) -> UserConfig:
    u = _section(raw, "user")
    return UserConfig(
        pool_start_uid=_int(u, "pool_start_uid", "user", 10000, low=1),
        pool_size=_int(u, "pool_size", "user", 64, low=1),
    )


def _logging(raw: dict[str, Any]) -> LoggingConfig:
    lg = _section(raw, "logging")
    level = lg.get("level", "info")
    if level not in LOG_LEVELS:
        raise ConfigError(f"logging.level: unknown level {level!r} (use one of {', '.join(LOG_LEVELS)})")
    return LoggingConfig(level=level, file=_str(lg, "file", "logging", None, nullable=True))


def from_dict(raw: dict[str, Any] | None, path: str | None = None) -> Config:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"top level: must be a mapping, got {type(raw).__name__}")
    health = _section(raw, "health_check_server")
    port = _int(health, "port", "health_check_server", 2345, nullable=True)
    if port is not None and port > 65535:
        raise ConfigError(f"health_check_server.port: must be a TCP port, got {port}")
    return Config(
        server=_server(raw),
        network=_network(raw),
        port=_port(raw),
        user=_user(raw),
        logging=_logging(raw),
        health_check_port=port,
        path=path,
    )


def load(path: str | Path) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return from_dict(raw, str(path))
