"""``bleeper store serve`` and ``bleeper relay``: command-line entry points of the state store."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

# Room for a request line carrying a 64 KiB value percent-encoded (up to 3 bytes each), so the compatible
# API answers an over-long value with its own 413 rather than the HTTP parser's bare 400.
URL_ROOM = 256 * 1024
DEFAULTS = {"host": "127.0.0.1", "port": 8000, "db": "data/statestore.db", "max_wait": 60.0}


def store_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then ``[store]`` in the TOML file, then ``BLEEPER_STORE_*``, then flags."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = dict(DEFAULTS)
    path = args.config or env.get("BLEEPER_CONFIG") or ("bleeper.toml" if Path("bleeper.toml").is_file() else None)
    if path:
        try:
            section = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("store", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read config file {path}: {exc}") from None
        settings.update({key: section[key] for key in DEFAULTS if key in section})
    for key in DEFAULTS:
        if f"BLEEPER_STORE_{key.upper()}" in env:
            settings[key] = env[f"BLEEPER_STORE_{key.upper()}"]
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for key, kind in (("port", int), ("max_wait", float)):
        try:
            settings[key] = kind(settings[key])
        except ValueError:
            raise ValueError(f"{key} {settings[key]!r} is not a number") from None
    return settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

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
    config = uvicorn.Config(create_app(settings["db"], max_wait=settings["max_wait"]), host=settings["host"], port=settings["port"],
                            log_config=None, access_log=False, server_header=False, http="h11",
                            h11_max_incomplete_event_size=URL_ROOM)  # fmt: skip
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server = uvicorn.Server(config)
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
