"""HTTP routes of ``bleeper serve``: the web client, its WebSocket, health and metrics.

Security is on by default: every response forbids inline script and framing (Content-Security-Policy), the
page inserts everything it receives as text, and a WebSocket from another site's page is refused (a
browser sends its page's Origin; only this server's own, or ones listed with ``--http-origins``, may
connect). Non-browser WebSocket clients send no Origin and are allowed, as TCP clients are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from bleeper.framework.server import Server
from bleeper.framework.websocket import POLICY_VIOLATION, SERVICE_RESTART, serve_websocket

STATIC = Path(__file__).parent / "static"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SHUTTING_DOWN = "the server is shutting down; try again in a few seconds"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
]


@dataclass
class WebOptions:
    server: Server
    metrics: Callable[[], str]  # Prometheus text
    health: Callable[[], tuple[bool, dict[str, object]]]  # (healthy, details)
    origins: list[str] = field(default_factory=list)  # extra allowed origins, e.g. https://bleeper.ward7.nhs.uk
    notification_text: bool = False  # may the page's system notifications show message text (--web-notification-text)
    push_key: str | None = None  # the VAPID public key when Web Push is on (--push-vapid-key), else None

    def page_settings(self) -> dict[str, object]:
        """What the page needs to know of the server's settings (GET /config.json). ``pushKey`` is the
        applicationServerKey to subscribe with, or null: this server does not push."""
        return {"notificationText": self.notification_text, "pushKey": self.push_key}


class SecurityHeaders:
    """Adds the security headers to every HTTP response (plain ASGI: cheap, and it never buffers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def origin_allowed(origin: str | None, host: str | None, extra: list[str]) -> bool:
    """Same-origin pages, listed origins, and clients that are not browsers (no Origin header)."""
    if origin is None:
        return True
    if origin.rstrip("/") in (allowed.rstrip("/") for allowed in extra):
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and host is not None and parts.netloc.lower() == host.lower()


def create_app(options: WebOptions) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def service_worker(request: Request) -> Response:
        # At the root, so it may control every page (Service-Worker-Allowed says so); every response already
        # carries Cache-Control: no-cache, so browsers check for a new version each time.
        return FileResponse(STATIC / "sw.js", media_type="text/javascript; charset=utf-8",
                            headers={"Service-Worker-Allowed": "/"})  # fmt: skip

    async def manifest(request: Request) -> Response:
        return FileResponse(STATIC / "manifest.webmanifest", media_type="application/manifest+json")

    async def websocket(ws: WebSocket) -> None:
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), options.origins):
            await ws.close(POLICY_VIOLATION)  # before accept: the browser sees the handshake refused (403)
            return
        if options.server.stopping:  # as the TCP listener, closed by then: a page backs off and retries
            await ws.send_denial_response(PlainTextResponse(SHUTTING_DOWN, 503, headers={"Retry-After": "5"}))
            return
        await ws.accept()
        if options.server.stopping:  # it began to stop during the handshake
            await ws.close(SERVICE_RESTART, SHUTTING_DOWN)
            return
        await serve_websocket(options.server, ws)

    async def settings(request: Request) -> Response:
        return JSONResponse(options.page_settings())

    async def healthz(request: Request) -> Response:
        healthy, details = options.health()
        return JSONResponse({"status": "ok" if healthy else "unavailable", **details}, 200 if healthy else 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(options.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/config.json", settings),
            Route("/sw.js", service_worker),
            Route("/manifest.webmanifest", manifest),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            WebSocketRoute("/ws", websocket),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
    )
