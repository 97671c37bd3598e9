"""``bleeper push keygen``: the server's VAPID key for the optional Web Push (see docs/operations.md).

Apart from :mod:`bleeper.web.push` so that building the command line does not import the web package.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "push",
        help="Web Push keys (optional push to locked phones)",
        description="Web Push lets the server alert phones whose screen is locked. It is optional; see "
        "docs/operations.md, 'Web Push (optional)'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    keygen = actions.add_parser(
        "keygen",
        help="make the server's VAPID key",
        description="Write a new VAPID private key (PEM, EC P-256) to FILE, readable by you only, and print its "
        "public key. An existing FILE is never overwritten: browsers subscribed with its key would stop "
        "receiving pushes. Needs the optional push packages: pip install 'bleeper[push]' (the development "
        "environment of make serve has them).",
        epilog="Then: bleeper serve --push-vapid-key FILE --push-contact mailto:you@hospital.example",
    )
    keygen.add_argument("file", metavar="FILE", help="where to write the private key, e.g. /etc/bleeper/vapid.pem")
    keygen.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    path = args.file
    from bleeper.config import ConfigError
    from bleeper.web.push import generate_key  # cryptography and the web package: only for this command

    try:
        public = generate_key(path)
    except FileExistsError:
        print(f"bleeper push keygen: {path} exists and was not overwritten (browsers subscribed with its key "
              "would stop receiving pushes); choose another file, or delete it first to replace the key",
              file=sys.stderr)  # fmt: skip
        return 1
    except (OSError, ConfigError) as exc:
        print(f"bleeper push keygen: cannot write {path}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    print(f"wrote a VAPID private key to {path} (readable by you only): keep it secret and backed up; a new key "
          "means every browser must subscribe again")  # fmt: skip
    print(f"public key (the page's applicationServerKey; the server serves it as pushKey in /config.json):\n{public}")
    print(f"next: bleeper serve --push-vapid-key {path} --push-contact mailto:you@hospital.example")
    return 0
