"""``python -m bleeper`` and the ``bleeper`` command."""

import sys


def main() -> int:
    if sys.argv[1:2] == ["browse"]:
        # `bleeper browse --dump` runs in scripts and is measured against w3m: skip importing the server,
        # store and client modules that the full command line loads.
        from bleeper.browser.cli import main as browse

        return browse(sys.argv[2:])
    from bleeper.cli import main as everything

    return everything()


if __name__ == "__main__":
    raise SystemExit(main())
