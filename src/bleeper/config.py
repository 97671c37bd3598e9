"""Server settings from, in rising priority: defaults, a TOML file, ``BLEEPER_*`` variables, flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_PUSH_SERVICES = "fcm.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com"


class ConfigError(Exception):
    """A setting is wrong; the message says which and how to fix it."""


@dataclass(slots=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    server_name: str = field(default_factory=socket.gethostname)  # in the greeting, and IRC's server name
    max_line: int = 4096
    send_buffer: int = 512 * 1024
    rate: float = 20.0
    burst: int = 60
    max_per_ip: int = 100
    max_clients: int = 0
    ping_interval: float = 90.0
    ping_timeout: float = 60.0
    log_messages: bool = False
    log_format: str = "text"
    log_level: str = "info"
    uvloop: bool = True
    db: str = "data/bleeper.db"
    db_writer: str = "process"  # SQLite: commit messages in a process of their own, or on the store's thread
    auth: str = "open"
    urgent_interval: float = 120.0
    retention_days: float = 0.0  # 0 keeps message text forever
    urgent_attempts: int = 3
    tls_port: int = 8091
    irc_port: int = 0  # the IRC listener's port; 0: no IRC listener
    irc_tls_port: int = 0  # IRC over TLS, with the server's certificate (tls_cert); 0: none
    irc_motd: str = ""  # a text file whose lines IRC clients are shown as the message of the day
    tls_cert: str = ""  # a PEM certificate chain: setting it turns the TLS listener on
    tls_key: str = ""  # its private key (PEM); may be the same file as the certificate
    plain_host: str = ""  # where the plain listener binds, when not --host (127.0.0.1 keeps it local)
    http: bool = True  # the web client, /ws, /healthz and /metrics
    http_host: str = "127.0.0.1"  # loopback by default: put it behind TLS (--tls-cert) or a proxy to share it
    http_port: int = 8080
    http_origins: str = ""  # comma-separated extra origins whose pages may open /ws (a proxy's public URL)
    # The web client's system notifications carry who and what kind, never the text (lock screens show them),
    # unless a site decides its devices are safe for it.
    web_notification_text: bool = False
    # Web Push to phones whose screen is locked (optional; see docs/operations.md). The key (a PEM EC P-256
    # private key, made by 'bleeper push keygen') turns it on; push services want a contact for its owner.
    push_vapid_key: str = ""
    push_contact: str = ""  # mailto:someone@example.org or https://example.org: the VAPID "sub" claim
    # The push services the server will post to (host names; each also covers its subdomains). A PUSH ADD is
    # a URL the server will later POST to: without a list, any account could aim it at the hospital's own
    # network. The default names the browsers' services (Chrome/Android, Firefox, Edge/Windows, Safari).
    push_services: str = DEFAULT_PUSH_SERVICES
    # Cluster mode (see docs/operations.md): NATS URLs, comma-separated; empty runs one server on its own.
    cluster: str = ""
    node: str = ""  # this node's name in the cluster: unique, stable across restarts [default: the host name]
    cluster_lease: float = 10.0  # seconds after which a silent node's names and people are released
    cluster_replicas: int = 0  # JetStream copies of the cluster's buckets; 0: 3, or fewer NATS servers listed

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range: use 1-65535 (or 0 for any free port)")
        if not re.fullmatch(r"[^\s:,!@*?]{1,255}", self.server_name):
            raise ConfigError(f"server_name {self.server_name!r}: use 1-255 characters without spaces, ':', ',', '!', "
                              "'@', '*' or '?' (it is the IRC server's name too), e.g. its host name")  # fmt: skip
        if self.max_line < 64:
            raise ConfigError(f"max_line {self.max_line} is too small: use at least 64 bytes")
        if self.send_buffer < self.max_line * 4:
            raise ConfigError("send_buffer must be at least four times max_line")
        if self.auth not in ("open", "required"):
            raise ConfigError(f'auth "{self.auth}" is unknown: use "open" or "required"')
        if not 0 <= self.tls_port <= 65535:
            raise ConfigError(f"tls_port {self.tls_port} is out of range: use 1-65535 (or 0 for any free port)")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"http_port {self.http_port} is out of range: use 1-65535 (or 0 for any free port)")
        for origin in self.origin_list():
            if not origin.startswith(("http://", "https://")):
                raise ConfigError(f"http_origins: {origin!r} is not an origin: write it as https://host[:port]")
        for name in ("irc_port", "irc_tls_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} {getattr(self, name)} is out of range: use 1-65535 (0 turns it off)")
        if self.irc_motd and not Path(self.irc_motd).is_file():
            raise ConfigError(f"irc_motd {self.irc_motd!r} is not a file: give a text file of the message of the day")
        if self.irc_tls_port and not self.tls_cert:
            raise ConfigError("irc_tls_port needs the server's certificate: give --tls-cert and --tls-key")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both tls_cert and tls_key (they may name the same PEM file)")
        if self.push_vapid_key:
            problem = contact_problem(self.push_contact)
            if problem:
                raise ConfigError(f"Web Push (push_vapid_key is set): {problem}")
        if self.urgent_interval <= 0 or self.urgent_attempts < 1:
            raise ConfigError("urgent_interval must be above 0 seconds and urgent_attempts at least 1")
        if not self.db:
            raise ConfigError("db is empty: give a file path or a postgresql:// URL")
        if self.db_writer not in ("process", "thread"):
            raise ConfigError(f'db_writer "{self.db_writer}" is unknown: use "process" or "thread"')
        if self.log_format not in ("text", "json"):
            raise ConfigError(f'log_format "{self.log_format}" is unknown: use "text" or "json"')
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f'log_level "{self.log_level}" is unknown: use debug, info, warning or error')
        if self.cluster:
            self._validate_cluster()
        for name in ("rate", "burst", "max_per_ip", "max_clients", "ping_interval", "ping_timeout", "retention_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} cannot be negative (0 turns the limit off)")

    def _validate_cluster(self) -> None:
        if not self.db.startswith(("postgresql://", "postgres://")):
            raise ConfigError("cluster mode needs a database every node shares: --db postgresql://user@host/db "
                              "(SQLite is for one server on its own)")  # fmt: skip
        for url in self.cluster_list():
            if not re.fullmatch(r"(nats|tls)://[^\s,/]+", url):
                raise ConfigError(f"cluster: {url!r} is not a NATS URL: write nats://host:4222[,nats://host2:4222]")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.node_name()):
            raise ConfigError(f"node {self.node_name()!r}: use 1-64 letters, digits, '_' or '-' (--node)")
        if self.cluster_lease < 2:
            raise ConfigError("cluster_lease must be at least 2 seconds (it is renewed every fifth of it)")
        if not 0 <= self.cluster_replicas <= 5:
            raise ConfigError("cluster_replicas must be 1-5 (or 0 for as many NATS servers as are listed, up to 3)")

    def cluster_list(self) -> list[str]:
        return [url.strip() for url in self.cluster.split(",") if url.strip()]

    def node_name(self) -> str:
        """--node, else the host name made safe (a node's name must stay the same across its restarts)."""
        if self.node:
            return self.node
        return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64] or "bleeper"

    def push_service_list(self) -> list[str]:
        return [host.strip().lower().strip(".") for host in self.push_services.split(",") if host.strip()]

    def origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.http_origins.split(",") if origin.strip()]


def contact_problem(contact: str) -> str | None:
    """What is wrong with a VAPID contact, or None. Push services write to it when this server misbehaves, so
    it must be an address someone reads: ``mailto:`` with an address at a domain, or an ``https://`` site."""
    example = "for example --push-contact mailto:bleeper-admin@hospital.example (env BLEEPER_PUSH_CONTACT)"
    if not contact:
        return f"push_contact is required: a mailto: address or https: URL push services can reach you at, {example}"
    domain = r"[\w-]+(\.[\w-]+)+"
    if re.fullmatch(rf"mailto:[^@\s/]+@{domain}", contact) or re.fullmatch(rf"https://{domain}", contact):
        return None
    return f"push_contact {contact!r} is neither mailto:user@domain nor https://host (no path); {example}"


def _convert(name: str, kind: type, raw: Any, origin: str) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {name} = {raw!r} is not a valid {kind.__name__}") from None


def load_serve_config(
    flags: dict[str, Any], config_file: str | None = None, environ: dict[str, str] | None = None, *, check: bool = True
) -> ServeConfig:
    """Merge the layers. *flags* holds only options given on the command line (others are None). A tool that
    reads one setting (``bleeper cluster status``: the NATS URLs) need not *check* the server's others."""
    env = os.environ if environ is None else environ
    config = ServeConfig()
    types = {f.name: type(getattr(config, f.name)) for f in fields(config)}
    path = config_file or env.get("BLEEPER_CONFIG")
    if path is None and Path("bleeper.toml").is_file():
        path = "bleeper.toml"
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} not found: check the path given by --config or BLEEPER_CONFIG"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        section = data.get("serve", data)
        for key, value in section.items():
            name = key.replace("-", "_")
            if name not in types:
                if isinstance(value, dict):
                    continue  # another command's section
                raise ConfigError(f"{path}: unknown setting {key!r}; see 'bleeper serve --help'")
            setattr(config, name, _convert(name, types[name], value, path))
    for name, kind in types.items():
        raw = env.get("BLEEPER_" + name.upper())
        if raw is not None:
            setattr(config, name, _convert(name, kind, raw, f"BLEEPER_{name.upper()}"))
    for name, value in flags.items():
        if value is not None and name in types:
            setattr(config, name, _convert(name, types[name], value, f"--{name.replace('_', '-')}"))
    if check:
        config.validate()
    return config


def as_dict(config: ServeConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def store_location(db: str | None, config_file: str | None, command: str) -> str | None:
    """The store the server would use (--db, BLEEPER_DB, the TOML file), for the admin tools; None after
    saying on stderr what is wrong."""
    try:
        return load_serve_config({"db": db}, config_file).db
    except ConfigError as exc:
        print(f"bleeper {command}: {exc}", file=sys.stderr)
        return None


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db`` and ``--config``, as every admin tool takes them: the same store as ``bleeper serve``."""
    parser.add_argument("--db", metavar="PATH|URL", help="the store (as for 'bleeper serve'; env BLEEPER_DB)")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file, as for 'bleeper serve'")
