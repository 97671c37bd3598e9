"""``bleeper browse``: the text web browser's command line."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("browse", help="a text web browser: read web pages in the terminal",
                       description="Fetch a web page and show it in the terminal: the title, headings, "
                       "paragraphs, emphasis, lists, tables and forms, with links numbered like [3]. Interactive "
                       "by default (type a link's number, or Tab to it, and press Enter); --dump prints the page "
                       "and its list of links instead.",
                       epilog="Addresses: http://, https://, file://, a path to a file, or a bare name such as "
                       "example.com (taken as http://example.com/).")  # fmt: skip
    p.add_argument("url", nargs="?", metavar="URL", help="the page to open")
    p.add_argument("--dump", action="store_true", help="print the rendered page and its links, then exit")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="ANSI styles in --dump output: auto (when stdout is a terminal and NO_COLOR is unset), "
                   "always or never [default: auto]")  # fmt: skip
    p.add_argument("--width", type=int, metavar="N",
                   help="wrap text to N columns [default: the terminal's width, or 80]")  # fmt: skip
    p.add_argument("--save", metavar="FILE", help="save the response body to FILE instead of showing it")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="give up on a server silent this long [default: 20]")  # fmt: skip
    p.set_defaults(func=browse)


def main(argv: list[str]) -> int:
    """``bleeper browse ARGS`` with only this command's parser."""
    parser = argparse.ArgumentParser(prog="bleeper")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["browse", *argv])
    result: int = args.func(args)
    return result


def browse(args: argparse.Namespace) -> int:
    if args.width is not None and args.width < 20:
        print("bleeper browse: --width must be at least 20", file=sys.stderr)
        return 2
    if args.dump or args.save:
        if not args.url:
            print("bleeper browse: give the URL of the page to " + ("save" if args.save else "dump"), file=sys.stderr)
            return 2
        return dump(args)
    from bleeper.browser.app import BrowserApp

    BrowserApp(args.url, timeout=args.timeout).run()
    return 0


def dump(args: argparse.Namespace) -> int:
    from bleeper.browser.fetch import FetchError, fetch, normalise_url, size_text

    url = normalise_url(args.url)
    try:
        document = fetch(url, timeout=args.timeout)
    except FetchError as exc:
        print(f"bleeper browse: {exc.title}. {exc.advice}", file=sys.stderr)
        return 1
    if args.save:
        with open(args.save, "wb") as file:
            file.write(document.body)
        print(f"saved {size_text(len(document.body))} of {document.media_type} to {args.save}", file=sys.stderr)
        return 0 if document.status < 400 else 1
    from bleeper.browser.output import page_to_text
    from bleeper.browser.view import page_for

    terminal = sys.stdout.isatty()
    color = args.color == "always" or (args.color == "auto" and terminal and not os.environ.get("NO_COLOR"))
    width = args.width or (_terminal_width() if terminal else 80)
    page = page_for(document, width, marks=not color)
    try:
        sys.stdout.write(page_to_text(page, color))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if document.status >= 400:
        print(f"bleeper browse: {document.url} answered {document.status} {document.reason}", file=sys.stderr)
        return 1
    return 0


def _terminal_width() -> int:
    try:
        return int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError):
        return 80
