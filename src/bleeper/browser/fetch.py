"""Fetching a page: addresses as people type them, HTTP with httpx (redirects, compression, timeouts),
``file://`` URLs, the character set, and errors that say what went wrong and what to try.

Blocking on purpose: ``--dump`` needs nothing more, and the interactive app runs it in a worker thread.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urljoin, urlsplit

from bleeper import __version__

if TYPE_CHECKING:  # imported when first needed: file:// pages (and --help) start faster without it
    import ssl

    import httpx

USER_AGENT = f"bleeper-browse/{__version__} (text mode)"
MAX_BODY = 32 * 1024 * 1024  # larger responses are refused rather than read into memory
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
KNOWN_TYPES = {".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml", ".txt": "text/plain"}
ACCEPT = "text/html,application/xhtml+xml,text/*;q=0.9,*/*;q=0.5"
HTML_TYPES = ("text/html", "application/xhtml+xml")
# WHATWG: these labels mean windows-1252 in browsers, which is what pages labelled so are really written in.
WINDOWS_1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819", "ibm819"}


class Document:
    """What a URL gave: the final URL (after redirects), status, media type and the body."""

    __slots__ = ("body", "charset", "media_type", "reason", "status", "url")

    def __init__(self, url: str, status: int, reason: str, media_type: str, charset: str | None, body: bytes) -> None:
        self.url, self.status, self.reason, self.media_type = url, status, reason, media_type
        self.charset, self.body = charset, body

    @property
    def is_html(self) -> bool:
        return self.media_type in HTML_TYPES

    @property
    def is_text(self) -> bool:
        return self.media_type.startswith("text/") or self.media_type in ("application/json", "application/xml")

    def text(self) -> str:
        """The body decoded: the HTTP header's charset, else a BOM or the page's meta tag, else UTF-8, else
        windows-1252 (what unlabelled non-UTF-8 pages nearly always are)."""
        for name in (self.charset, _bom(self.body), _meta_charset(self.body) if self.is_html else None):
            codec = _codec(name)
            if codec:
                return self.body.decode(codec, errors="replace").removeprefix("\ufeff")
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body.decode("windows-1252", errors="replace")


class FetchError(Exception):
    """The page could not be fetched: *title* names what happened, *advice* says what to try."""

    def __init__(self, url: str, title: str, advice: str) -> None:
        super().__init__(f"{title}: {advice}")
        self.url, self.title, self.advice = url, title, advice

    def as_html(self) -> str:
        import html

        return (f"<title>{html.escape(self.title)}</title><h1>{html.escape(self.title)}</h1>"
                f"<p>{html.escape(self.advice)}</p><p>Address: <code>{html.escape(self.url)}</code></p>")  # fmt: skip


def normalise_url(text: str, base: str | None = None) -> str:
    """What a person typed, as a URL: ``example.com`` -> ``http://example.com/``, a path to a file that
    exists -> ``file://``, anything with a scheme unchanged."""
    text = text.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) or text.startswith(("about:", "mailto:")):
        return text
    if text.startswith(("/", "./", "../", "~")) or (not base and os.path.exists(text)):
        return "file://" + quote(os.path.realpath(os.path.expanduser(text)))
    if base:
        return urljoin(base, text)
    host, _, rest = text.partition("/")
    return f"http://{host}/{rest}"


def fetch(url: str, client: httpx.Client | None = None, *, timeout: float = 20.0) -> Document:
    """Fetch *url* (``http``, ``https`` or ``file``); raises FetchError with advice when it cannot."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return _read_file(url)
    if scheme not in ("http", "https"):
        raise FetchError(url, f"Cannot open {scheme}: addresses",
                         "This browser opens http, https and file addresses only.")  # fmt: skip
    own = client is None
    client = client or make_client(timeout)
    import httpx  # (loaded by now)

    try:
        with client.stream("GET", url) as response:
            size = int(response.headers.get("content-length") or 0)
            if size > MAX_BODY:
                raise FetchError(url, "Too large", f"The response is {size:,} bytes; the limit is {MAX_BODY:,}.")
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > MAX_BODY:
                    raise FetchError(url, "Too large", f"The response is over {MAX_BODY:,} bytes.")
                chunks.append(chunk)
            media_type, charset = _content_type(response.headers.get("content-type", ""))
            return Document(str(response.url), response.status_code, response.reason_phrase or "",
                            media_type or "application/octet-stream", charset, b"".join(chunks))  # fmt: skip
    except httpx.TooManyRedirects:
        raise FetchError(
            url, "Too many redirects", "The server keeps redirecting; the page cannot be reached."
        ) from None
    except httpx.ConnectTimeout:
        raise FetchError(url, "Connection timed out", f"{_host(url)} did not accept a connection within "
                         f"{timeout:g} s. Check the address, or try again later.") from None  # fmt: skip
    except httpx.TimeoutException:
        raise FetchError(url, "The server stopped answering", f"{_host(url)} accepted the connection but sent "
                         f"nothing for {timeout:g} s. Try again later.") from None  # fmt: skip
    except httpx.ConnectError as exc:
        raise _connect_error(url, exc) from None
    except httpx.TransportError as exc:
        raise FetchError(url, "The connection failed", f"{_host(url)}: {exc or type(exc).__name__}.") from None
    except httpx.InvalidURL as exc:
        raise FetchError(url, "Not a valid address", str(exc)) from None
    finally:
        if own:
            client.close()


def make_client(timeout: float = 20.0) -> httpx.Client:
    # httpx's package imports its command-line tool, and with it rich and click when they are installed
    # (Textual brings rich): tens of milliseconds a browser started once per page has no use for.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx.Client(follow_redirects=True, max_redirects=20, timeout=timeout, verify=_tls_context(),
                        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT})  # fmt: skip


def _tls_context() -> ssl.SSLContext | bool:
    """The system's certificate store when it has one (loading it is several times faster than certifi's
    bundle, which matters for a command that starts, fetches one page and exits); else httpx's default."""
    import ssl

    paths = ssl.get_default_verify_paths()
    if (paths.cafile and os.path.isfile(paths.cafile)) or (paths.capath and os.path.isdir(paths.capath)):
        return ssl.create_default_context()
    return True


def describe(document: Document) -> str:
    """A page about something that is not text: its type and size, and how to save it."""
    import html

    name = os.path.basename(unquote(urlsplit(document.url).path)) or "download"
    return (f"<title>{html.escape(name)}</title><h1>{html.escape(name)}</h1>"
            f"<p>This is <strong>{html.escape(document.media_type)}</strong>, {size_text(len(document.body))}: "
            "not something a text browser can show.</p>"
            f"<p>Save it with <code>s</code> here, or <code>bleeper browse --save {html.escape(name)} URL</code>.</p>")  # fmt: skip


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _content_type(value: str) -> tuple[str, str | None]:
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, found = param.partition("=")
        if key.strip().lower() == "charset":
            charset = found.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().lower()
    if name in WINDOWS_1252:
        return "windows-1252"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _bom(body: bytes) -> str | None:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _meta_charset(body: bytes) -> str | None:
    found = META_CHARSET.search(body[:4096])
    return found.group(1).decode("ascii") if found else None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _connect_error(url: str, exc: Exception) -> FetchError:
    import socket

    host = urlsplit(url).hostname or url
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return FetchError(url, "Server not found", f"The name {host} does not resolve to any address. "
                          "Check it for typing mistakes.")  # fmt: skip
    reason = str(exc)
    if "refused" in reason.lower():
        return FetchError(url, "Connection refused", f"Nothing at {_host(url)} is accepting connections. Is "
                          "the address right, and is the server running?")  # fmt: skip
    return FetchError(url, "Cannot connect", f"{_host(url)}: {reason or 'the connection failed'}.")


def _read_file(url: str) -> Document:
    path = unquote(urlsplit(url).path)
    try:
        if os.path.isdir(path):
            url = url if url.endswith("/") else url + "/"  # so the entries' relative links stay inside it
            return Document(url, 200, "OK", "text/html", "utf-8", _listing(path).encode("utf-8"))
        with open(path, "rb") as file:
            body = file.read()
    except FileNotFoundError:
        raise FetchError(url, "File not found", f"There is no file {path}.") from None
    except OSError as exc:
        raise FetchError(url, "Cannot read the file", f"{path}: {exc.strerror or exc}.") from None
    suffix = os.path.splitext(path)[1].lower()
    media_type = KNOWN_TYPES.get(suffix) or _guess_type(path) or (
        "text/plain" if _looks_like_text(body) else "application/octet-stream")  # fmt: skip
    return Document(url, 200, "OK", media_type, None, body)


def _guess_type(name: str) -> str | None:
    import mimetypes  # reads the system's type tables: only when the suffix is not a common one

    return mimetypes.guess_type(name)[0]


def _looks_like_text(body: bytes) -> bool:
    return b"\x00" not in body[:4096]


def _listing(path: str) -> str:
    import html

    entries = sorted(os.scandir(path), key=lambda entry: (not entry.is_dir(), entry.name.lower()))
    items = "".join(
        f'<li><a href="{quote(entry.name)}{"/" if entry.is_dir() else ""}">{html.escape(entry.name)}'
        f"{os.sep if entry.is_dir() else ''}</a></li>"
        for entry in entries
    )
    return f"<title>{html.escape(path)}</title><h1>{html.escape(path)}</h1><ul>{items}</ul>"
