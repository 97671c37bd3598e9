"""``bleeper store serve`` and ``bleeper relay``: command-line entry points of the state store."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
from pathlib import Path
from types import FrameType
from typing import Any

# Room for a request line carrying a 64 KiB value percent-encoded (up to 3 bytes each), so the compatible
# API answers an over-long value with its own 413 rather than the HTTP parser's bare 400.
URL_ROOM = 256 * 1024
DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 8000, "db": "data/statestore.db", "max_wait": 60.0}
RELAY_DEFAULTS: dict[str, Any] = {
    "store": "http://127.0.0.1:8000",
    "room": "lobby",
    "name": "",
    "mode": "free",
    "lease": 10.0,
    "history": 10,
}


def load_settings(args: argparse.Namespace, section: str, defaults: dict[str, Any],
                  environ: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Defaults, then ``[section]`` in the TOML file, then ``BLEEPER_<SECTION>_*``, then flags; numbers
    converted to the type of their default."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = dict(defaults)
    path = args.config or env.get("BLEEPER_CONFIG") or ("bleeper.toml" if Path("bleeper.toml").is_file() else None)
    if path:
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get(section, {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read config file {path}: {exc}") from None
        settings.update({key: table[key] for key in defaults if key in table})
    for key in defaults:
        if f"BLEEPER_{section.upper()}_{key.upper()}" in env:
            settings[key] = env[f"BLEEPER_{section.upper()}_{key.upper()}"]
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    for key, default in defaults.items():
        if isinstance(default, int | float) and not isinstance(default, bool):
            try:
                settings[key] = type(default)(settings[key])
            except ValueError:
                raise ValueError(f"{key} {settings[key]!r} is not a number") from None
    return settings


def store_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, Any]:
    return load_settings(args, "store", DEFAULTS, environ)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    class _StoreServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            stop_waits = getattr(app.state, "stop_waits", None)
            if stop_waits is not None:  # long polls answer now instead of holding up the stop
                stop_waits()

    from bleeper.console import setup_logging
    from bleeper.statestore.service import create_app

    try:
        settings = store_settings(args)
    except ValueError as exc:
        print(f"bleeper store serve: {exc}", file=sys.stderr)
        return 2
    setup_logging("text", "info")
    log = logging.getLogger("bleeper.events")
    log.info("state store on http://%s:%d/ (data in %s)", settings["host"], settings["port"], settings["db"])
    app = create_app(settings["db"], max_wait=settings["max_wait"])
    config = uvicorn.Config(app, host=settings["host"], port=settings["port"],
                            log_config=None, access_log=False, server_header=False, http="h11",
                            h11_max_incomplete_event_size=URL_ROOM)  # fmt: skip
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server = _StoreServer(config)
    try:
        server.run()
    except KeyboardInterrupt:
        return 0
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        pass
    if not server.started:
        log.error("the state store could not listen on %s:%d: is the port in use? choose another with --port",
                  settings["host"], settings["port"])  # fmt: skip
        return 1
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser("store", help="the state store: an HTTP key/value service",
                           description="The state store: keys and text values over HTTP, with versions, "
                           "conditional writes and long polling.")  # fmt: skip
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = actions.add_parser("serve", help="run the state store service",
                           description="Serve the state store. The original URLs work "
                           "(/?action=set&key=K&value=V, get, unset; / lists everything); the REST API is under "
                           "/keys and described at /openapi.json and /docs.",
                           epilog="Settings: flags, then BLEEPER_STORE_HOST/PORT/DB, then [store] in the TOML file.")  # fmt: skip
    p.add_argument("--config", metavar="FILE", help="TOML file with a [store] section [env BLEEPER_CONFIG]")
    p.add_argument("--host", help=f"address to listen on [default: {DEFAULTS['host']}]")
    p.add_argument("--port", type=int, help=f"port [default: {DEFAULTS['port']}]")
    p.add_argument("--db", metavar="PATH", help=f"SQLite file for the data [default: {DEFAULTS['db']}]")
    p.add_argument("--max-wait", type=float, metavar="SECONDS",
                   help=f"longest long poll (?wait=) [default: {DEFAULTS['max_wait']:g}]")  # fmt: skip
    p.set_defaults(func=serve)

    relay_parser = sub.add_parser("relay", help="chat through a state store (free-for-all or taking turns)",
                                  description="Chat through a running state store (bleeper store serve). In free "
                                  "mode any number of people write whenever they like; in turns mode two people "
                                  "alternate, one message each. On a terminal, type and press Enter; in a pipe, each "
                                  "line of input is a message.",
                                  epilog="Settings: flags, then BLEEPER_RELAY_STORE/ROOM/NAME/MODE/LEASE/HISTORY, "
                                  "then [relay] in the TOML file.")  # fmt: skip
    relay_parser.add_argument("--config", metavar="FILE", help="TOML file with a [relay] section [env BLEEPER_CONFIG]")
    relay_parser.add_argument("--store", metavar="URL", help=f"the state store [default: {RELAY_DEFAULTS['store']}]")
    relay_parser.add_argument("--name", help="your name in the chat [default: your login name]")
    relay_parser.add_argument("--room", help=f"room to talk in [default: {RELAY_DEFAULTS['room']}]")
    relay_parser.add_argument("--mode", choices=("free", "turns"),
                              help="free: anyone writes any time; turns: two people alternate [default: free]")  # fmt: skip
    relay_parser.add_argument("--lease", type=float, metavar="SECONDS",
                              help="turns mode: a partner silent (no heartbeat) this long is gone [default: 10]")  # fmt: skip
    relay_parser.add_argument("--history", type=int, metavar="N",
                              help="free mode: earlier messages shown on joining [default: 10]")  # fmt: skip
    relay_parser.set_defaults(func=relay)


def relay(args: argparse.Namespace) -> int:
    import asyncio
    import getpass

    from bleeper.statestore.terminal import run_relay

    try:
        settings = load_settings(args, "relay", RELAY_DEFAULTS)
    except ValueError as exc:
        print(f"bleeper relay: {exc}", file=sys.stderr)
        return 2
    if settings["mode"] not in ("free", "turns"):
        print(f"bleeper relay: mode {settings['mode']!r}: choose free or turns", file=sys.stderr)
        return 2
    name = settings["name"] or getpass.getuser()
    try:
        return asyncio.run(run_relay(settings["store"], settings["room"], name, settings["mode"],
                                     lease=settings["lease"], history=settings["history"]))  # fmt: skip
    except KeyboardInterrupt:
        return 130
