"""The ``bleeper`` command."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import ssl
import sys
from collections.abc import Sequence

from bleeper import __version__
from bleeper.config import ConfigError, ServeConfig, load_serve_config

_DEFAULTS = ServeConfig()


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the messaging server",
        description="Run the Bleeper messaging server. Try it with: telnet HOST PORT, then type HELP.",
        epilog="Every option can also be set with an environment variable BLEEPER_<OPTION> (for example "
        "BLEEPER_PORT=9000) or in a TOML file (--config, BLEEPER_CONFIG, or ./bleeper.toml) under [serve]. "
        "Flags win over variables, which win over the file.",
    )
    d = _DEFAULTS
    p.add_argument("--config", metavar="FILE", help="TOML settings file (default: ./bleeper.toml when present)")
    p.add_argument("--host", help=f"address to listen on [default: {d.host}]")
    p.add_argument("--port", type=int, help=f"TCP port to listen on; 0 picks a free one [default: {d.port}]")
    p.add_argument(
        "--server-name",
        help="name the server gives itself, in the greeting and to IRC clients [default: this machine's host name]",
    )
    p.add_argument("--max-line", type=int, metavar="BYTES", help=f"longest line accepted [default: {d.max_line}]")
    p.add_argument(
        "--send-buffer",
        type=int,
        metavar="BYTES",
        help=f"per-client output buffer; a client that falls this far behind is disconnected "
        f"[default: {d.send_buffer}]",
    )
    p.add_argument(
        "--rate",
        type=float,
        metavar="N",
        help=f"commands per second each client may sustain; 0 = no limit [default: {d.rate}]",
    )
    p.add_argument(
        "--burst", type=int, metavar="N", help=f"commands a client may send at once before 429 [default: {d.burst}]"
    )
    p.add_argument(
        "--max-per-ip",
        type=int,
        metavar="N",
        help=f"connections allowed from one address; 0 = no limit [default: {d.max_per_ip}]",
    )
    p.add_argument(
        "--max-clients",
        type=int,
        metavar="N",
        help=f"connections allowed in all; 0 = no limit [default: {d.max_clients}]",
    )
    p.add_argument(
        "--ping-interval",
        type=float,
        metavar="SECONDS",
        help=f"silence before the server sends PING; 0 = never [default: {d.ping_interval}]",
    )
    p.add_argument(
        "--ping-timeout",
        type=float,
        metavar="SECONDS",
        help=f"time to answer a PING before being disconnected [default: {d.ping_timeout}]",
    )
    p.add_argument(
        "--log-messages",
        action="store_const",
        const=True,
        help="show message text on the event console (it is patient data: off by default)",
    )
    p.add_argument("--log-format", choices=["text", "json"], help="event console format [default: text]")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[default: info]")
    p.add_argument(
        "--db",
        metavar="PATH|URL",
        help=f"where messages, accounts and groups are kept: a SQLite file, or postgresql://user@host/db "
        f"[default: {d.db}]",
    )
    p.add_argument(
        "--db-writer",
        choices=["process", "thread"],
        help="SQLite only: commit messages in a process of their own, so the server uses a second core, or on "
        "a thread of the server's process (for a one-core machine) [default: process]",
    )
    p.add_argument("--cluster", metavar="URL[,URL]",
                   help="run as one node of a cluster: the NATS servers (nats://host:4222,...); needs --db "
                   "postgresql://... shared by every node (env BLEEPER_CLUSTER)")  # fmt: skip
    p.add_argument("--node", metavar="NAME",
                   help="this node's name in the cluster, unique and the same across restarts [default: the host "
                   "name] (env BLEEPER_NODE)")  # fmt: skip
    p.add_argument("--cluster-lease", type=float, metavar="SECONDS",
                   help=f"a node silent this long is taken for dead: its names and people are released "
                   f"[default: {d.cluster_lease:g}]")  # fmt: skip
    p.add_argument(
        "--cluster-replicas",
        type=int,
        metavar="N",
        help="JetStream copies of the cluster's buckets [default: 3, or the number of NATS URLs if fewer]",
    )
    p.add_argument(
        "--auth",
        choices=["open", "required"],
        help="open: anyone may take a free name (account names need LOGIN); required: LOGIN first [default: open]",
    )
    p.add_argument(
        "--urgent-interval",
        type=float,
        metavar="SECONDS",
        help=f"time between alerts for an unacknowledged URGENT message [default: {d.urgent_interval:g}]",
    )
    p.add_argument(
        "--urgent-attempts",
        type=int,
        metavar="N",
        help=f"alerts (the delivery included) before it escalates to the recipient's BACKUP "
        f"[default: {d.urgent_attempts}]",
    )
    p.add_argument(
        "--retention-days",
        type=float,
        metavar="DAYS",
        help="remove message text older than this, hourly (the audit log keeps its hash); 0 keeps it [default: 0]",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: turns on a TLS listener on --tls-port")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert (may be the same file)")
    p.add_argument("--tls-port", type=int, metavar="PORT", help=f"TLS listener's port [default: {d.tls_port}]")
    p.add_argument("--irc-port", type=int, metavar="PORT",
                   help="also speak IRC on this port, for irssi, WeeChat, HexChat and bots [default: off]")  # fmt: skip
    p.add_argument("--irc-motd", metavar="FILE", help="a text file IRC clients are shown as the message of the day")
    p.add_argument("--irc-tls-port", type=int, metavar="PORT",
                   help="IRC over TLS on this port, with --tls-cert's certificate [default: off]")  # fmt: skip
    p.add_argument(
        "--plain-host",
        metavar="ADDRESS",
        help="where the plain (unencrypted) listener binds, when it should differ from --host: 127.0.0.1 keeps "
        "it to this machine while TLS listens on --host",
    )
    p.add_argument("--http-port", type=int, metavar="PORT",
                   help=f"web client, /ws, /healthz and /metrics [default: {d.http_port}]")  # fmt: skip
    p.add_argument("--http-host", metavar="ADDRESS",
                   help=f"where the web listener binds [default: {d.http_host}, this machine only]")  # fmt: skip
    p.add_argument("--http-origins", metavar="URL[,URL]",
                   help="other origins whose pages may open /ws, such as a reverse proxy's https://bleeper.example")  # fmt: skip
    p.add_argument("--no-http", dest="http", action="store_const", const=False, help="no web listener")
    p.add_argument("--web-notification-text", action="store_const", const=True,
                   help="let the web client's system notifications show message text (by default they show who "
                   "and what kind only, as lock screens display them)")  # fmt: skip
    p.add_argument("--push-vapid-key", metavar="FILE",
                   help="Web Push to locked phones (optional): the PEM EC P-256 private key made by 'bleeper push "
                   "keygen'; setting it turns push on (see docs/operations.md)")  # fmt: skip
    p.add_argument("--push-contact", metavar="URL",
                   help="for Web Push: mailto:address or https://site where push services can reach this "
                   "server's operator (required with --push-vapid-key)")  # fmt: skip
    p.add_argument("--push-services", metavar="HOST[,HOST]",
                   help="for Web Push: the push services pages may subscribe with (host names, subdomains "
                   "included) [default: the browsers' own services]")  # fmt: skip
    p.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_const",
        const=False,
        help="use asyncio's own event loop instead of uvloop",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from bleeper.cluster import ClusterError
    from bleeper.console import setup_logging
    from bleeper.framework.runner import run
    from bleeper.server import ChatServer, HttpPortError
    from bleeper.store import StoreError

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config", "command")}
    try:
        config = load_serve_config(flags, args.config)
    except ConfigError as exc:
        print(f"bleeper serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_format, config.log_level)
    try:
        server = ChatServer(config)
    except ConfigError as exc:
        print(f"bleeper serve: {exc}", file=sys.stderr)
        return 2
    try:
        run(server.serve(), use_uvloop=config.uvloop)
    except StoreError as exc:
        logging.getLogger("bleeper.events").error("cannot open the store: %s", exc)
        return 1
    except ClusterError as exc:
        logging.getLogger("bleeper.events").error("cannot join the cluster: %s", exc)
        return 1
    except HttpPortError as exc:
        logging.getLogger("bleeper.events").error("%s", exc.strerror)
        return 1
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = "another server is using it; stop that one or choose another with --port"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need privileges; choose a port above 1024"
        else:
            hint = "check --host and --port"
        ports = f"{config.port} or TLS port {config.tls_port}" if config.tls_cert else str(config.port)
        logging.getLogger("bleeper.events").error("cannot listen on %s:%s: %s; %s", config.host, ports,
                                                  exc.strerror or exc, hint)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("BLEEPER_HOST", "127.0.0.1"),
                   help="server address [env BLEEPER_HOST, default 127.0.0.1]")  # fmt: skip
    p.add_argument("--port", type=int, help="server port [env BLEEPER_PORT, default 8090, 8091 with --tls]")  # fmt: skip
    p.add_argument("--server", metavar="HOST:PORT[,HOST:PORT]", default=os.environ.get("BLEEPER_SERVERS"),
                   help="the servers of a cluster, tried in turn (on failure, the next): replaces --host and "
                   "--port [env BLEEPER_SERVERS]")  # fmt: skip
    p.add_argument("--tls", action="store_true", default=os.environ.get("BLEEPER_TLS", "") not in ("", "0"),
                   help="connect with TLS, checking the server's certificate [env BLEEPER_TLS=1]")  # fmt: skip
    p.add_argument("--ca", metavar="FILE", default=os.environ.get("BLEEPER_CA"),
                   help="trust this CA (PEM) instead of the system's; implies --tls [env BLEEPER_CA]")  # fmt: skip


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context for --tls/--ca, or None for plain. ConfigError when the CA file cannot be used."""
    if not args.tls and not args.ca:
        return None
    from bleeper.tls import client_context

    try:
        return client_context(args.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use --ca {args.ca}: {exc}; give a PEM file of CA certificates") from None


def _client_setup(args: argparse.Namespace, command: str) -> tuple[list[tuple[str, int]], ssl.SSLContext | None] | None:
    """The servers (--server, else --host and --port) and TLS context for a client command; None after saying
    on stderr what is wrong."""
    port = _client_port(args, command)
    if port is None:
        return None
    from bleeper.client.library import parse_servers

    try:
        servers = parse_servers(args.server, port) if args.server else [(args.host, port)]
        return servers, _client_tls(args)
    except ValueError as exc:
        print(f"bleeper {command}: --server: {exc}", file=sys.stderr)
        return None
    except ConfigError as exc:
        print(f"bleeper {command}: {exc}", file=sys.stderr)
        return None


def _chat_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chat",
        help="chat in the terminal",
        description="Chat in a full-screen terminal app, or line by line with --plain. Lines you type go to the "
        "current conversation (everyone, a person or a #group); lines starting with / are commands: "
        "/tell bob hi, /join #icu, /switch #icu, /who, /help, /quit.",
    )
    _client_options(p)
    p.add_argument("--name", default=os.environ.get("BLEEPER_NAME"),
                   help="screen name (asked for when missing) [env BLEEPER_NAME]")  # fmt: skip
    p.add_argument(
        "--login",
        action="store_true",
        help="log in to an account (the name is --name, or asked for); the password is asked for without echo "
        "(line mode in scripts: BLEEPER_PASSWORD)",
    )
    p.add_argument("--plain", action="store_true",
                   help="line mode instead of the full-screen app; reads standard input when it is not a terminal")  # fmt: skip
    p.set_defaults(func=_chat)


def _client_port(args: argparse.Namespace, command: str) -> int | None:
    """--port, else BLEEPER_PORT, else 8090 (8091 with TLS); None (after saying why) when the variable is not
    a number."""
    if args.port is not None:
        return int(args.port)
    raw = os.environ.get("BLEEPER_PORT", "8091" if args.tls or args.ca else "8090")
    if raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    print(f"bleeper {command}: BLEEPER_PORT={raw!r} is not a port number; fix it or pass --port", file=sys.stderr)
    return None


def _chat(args: argparse.Namespace) -> int:
    from bleeper.framework.runner import run

    setup = _client_setup(args, "chat")
    if setup is None:
        return 2
    servers, tls = setup
    (host, port), *_ = servers
    if args.plain or not sys.stdin.isatty() or not sys.stdout.isatty():
        from bleeper.client.plain import run_plain

        return run(run_plain(host, port, args.name, login=args.login, ssl=tls, servers=servers))
    from bleeper.client.tui import ChatApp

    app = ChatApp(host, port, args.name, login=args.login, ssl=tls, servers=servers)
    app.run()
    return app.return_code or 0


def _send_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="send one message and exit",
        description="Send one message, for scripts and alerts. Exit status 0 once the server accepted it.",
        epilog="Example: bleeper send --to '#icu' 'bed 4 alarm'",
    )
    _client_options(p)
    p.add_argument("--to", required=True, metavar="NAME|#GROUP|*", help="a person, a #group, or * for everyone")
    p.add_argument("--name", default=os.environ.get("BLEEPER_NAME"),
                   help="screen name to send as [env BLEEPER_NAME, default USER-send]")  # fmt: skip
    p.add_argument("text", nargs="+", help="the message")
    p.set_defaults(func=_send)


def _send(args: argparse.Namespace) -> int:
    from bleeper.client.send import send_once
    from bleeper.framework.runner import run

    setup = _client_setup(args, "send")
    if setup is None:
        return 2
    servers, tls = setup
    (host, port), *_ = servers
    return run(send_once(host, port, args.to, " ".join(args.text), args.name, ssl=tls, servers=servers))


def _health_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="print a running server's vital signs",
        description="Log in with an administrator's account and print the server's HEALTH report: uptime, "
        "connections, urgent messages waiting and the oldest one's age, send buffers, store latency. Exit "
        "status 0 when it answered, for monitoring.",
        epilog="Example: BLEEPER_PASSWORD=... bleeper health --name chief",
    )
    _client_options(p)
    p.add_argument("--name", default=os.environ.get("BLEEPER_NAME"), required=os.environ.get("BLEEPER_NAME") is None,
                   help="an administrator's account [env BLEEPER_NAME]; the password from BLEEPER_PASSWORD or asked")  # fmt: skip
    p.set_defaults(func=_health)


def _health(args: argparse.Namespace) -> int:
    from bleeper.client.health import check_health
    from bleeper.framework.runner import run

    setup = _client_setup(args, "health")
    if setup is None:
        return 2
    servers, tls = setup
    (host, port), *_ = servers
    return run(check_health(host, port, args.name, ssl=tls, servers=servers))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bleeper",
        description="Bleeper: robust, auditable real-time messaging for clinical teams.",
        epilog="Run 'bleeper COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"bleeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    _chat_parser(sub)
    _send_parser(sub)
    _health_parser(sub)
    from bleeper.admin import add_parser as user_parser

    user_parser(sub)
    from bleeper.backup import add_parsers as backup_parsers

    backup_parsers(sub)
    from bleeper.audit import add_parser as audit_parser
    from bleeper.statestore.cli import add_parsers as statestore_parsers

    audit_parser(sub)
    statestore_parsers(sub)
    from bleeper.browser.cli import add_parser as browser_parser
    from bleeper.push_keys import add_parser as push_parser

    browser_parser(sub)
    push_parser(sub)
    from bleeper.cluster.status import add_parser as cluster_parser

    cluster_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result
