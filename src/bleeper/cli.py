"""The ``bleeper`` command."""

from __future__ import annotations

import argparse
import errno
import logging
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = _DEFAULTS
    p.add_argument("--config", metavar="FILE", help="TOML settings file (default: ./bleeper.toml when present)")
    p.add_argument("--host", help=f"address to listen on [default: {d.host}]")
    p.add_argument("--port", type=int, help=f"TCP port to listen on; 0 picks a free one [default: {d.port}]")
    p.add_argument("--server-name", help=f"name shown in the greeting [default: {d.server_name}]")
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
        "--no-uvloop",
        dest="uvloop",
        action="store_const",
        const=False,
        help="use asyncio's own event loop instead of uvloop",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from bleeper.console import setup_logging
    from bleeper.framework.runner import run
    from bleeper.server import ChatServer

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config", "command")}
    try:
        config = load_serve_config(flags, args.config)
    except ConfigError as exc:
        print(f"bleeper serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_format, config.log_level)
    server = ChatServer(config)
    try:
        run(server.serve(), use_uvloop=config.uvloop)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = "another server is using it; stop that one or choose another with --port"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need privileges; choose a port above 1024"
        else:
            hint = "check --host and --port"
        logging.getLogger("bleeper.events").error(
            "cannot listen on %s:%s: %s; %s", config.host, config.port, exc.strerror, hint
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bleeper",
        description="Bleeper: robust, auditable real-time messaging for clinical teams.",
        epilog="Run 'bleeper COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"bleeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result
