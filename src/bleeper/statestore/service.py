"""``bleeper store serve``: the state store over HTTP.

Two APIs over one store. The *compatible* one keeps the original exercise's URLs working
(``/?action=set&key=K&value=V``, ``get``, ``unset``, and ``/`` listing everything as a page). The REST one
adds what coordination needs: a version per value (its entity tag: ``ETag: "7"``), conditional writes
(``If-Match``, ``If-None-Match``) so two writers cannot both win a race, and long polling
(``?wait=30&after=V``) so a client waiting for a change asks once instead of spinning.
"""

import asyncio
import html
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from bleeper.statestore.db import MAX_VALUE, Conflict, Entry, KeyValueDB, key_problem, value_problem

SERVICE_NAME = "Bleeper state store"
MAX_WAIT = 60.0  # seconds a long poll may hold a request, by default
IF_MATCH = 'only if the value\'s ETag is one of these entity tags (such as "7", "8"), or * for any value; else 412'
IF_NONE_MATCH = "only if the value's ETag is none of these entity tags, or * for no value; else 412"


class Written(BaseModel):
    key: str
    version: int


class Item(BaseModel):
    key: str
    value: str
    version: int


class Listing(BaseModel):
    items: list[Item]
    count: int


class Changes:
    """Wakes long polls: one event per watched key, set and replaced on every write to it."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self.stopping = False

    def stop(self) -> None:
        """Answer every long poll now (503), so a stopping server need not wait out their waits."""
        self.stopping = True
        for event in self._events.values():
            event.set()
        self._events.clear()

    def event(self, key: str) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    def changed(self, key: str) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()


def _text(status: int, detail: str) -> PlainTextResponse:
    return PlainTextResponse(detail + "\n", status)


def _stopping() -> JSONResponse:
    return JSONResponse({"detail": "the state store is stopping; try again shortly"}, 503, headers={"Retry-After": "1"})


# One element of a list of entity tags, such as ``"7"`` or ``W/"7"``, or whatever else lies before the next comma.
_LIST_ELEMENT = re.compile(r'[ \t]*((?:W/)?"[^"]*"|[^,]*?)[ \t]*(?:,|\Z)')


def _etag(version: int) -> str:
    return f'"{version}"'


def _tagged(entry: Entry) -> dict[str, str]:
    return {"ETag": _etag(entry.version), "X-Version": str(entry.version)}


def _field(request: Request, name: str) -> str | None:
    """A list-valued header over all of its lines, joined with commas as RFC 9110 section 5.3 says."""
    lines = request.headers.getlist(name)
    return ", ".join(lines) if lines else None


def _entity_tags(field: str) -> frozenset[str] | None:
    """The entity tags of an ``If-Match`` or ``If-None-Match`` list, each as sent (``W/`` kept); None for ``*``.

    Entity tags are opaque strings (RFC 9110 section 8.8.3): an element that is none of this store's (``"abc"``,
    ``"07"``, even unquoted ``xyz``) is no error, just a tag that matches no version.
    """
    if field.strip() == "*":
        return None
    return frozenset(match[1] for match in _LIST_ELEMENT.finditer(field) if match[1])


def _precondition(if_match: str | None, if_none_match: str | None) -> Callable[[Entry | None], bool] | None:
    """RFC 9110 sections 13.1.1 and 13.1.2 as a test of the key's live entry (None: the key has no value).

    ``If-Match`` holds when the field is ``*`` and the key has a value, or one of its tags is the value's,
    compared strongly (a weak ``W/"7"`` never matches). ``If-None-Match`` holds unless the field is ``*`` and the
    key has a value, or one of its tags is the value's, compared weakly (``W/"7"`` matches ``"7"``).
    """
    if if_match is None and if_none_match is None:
        return None
    wanted = _entity_tags(if_match) if if_match is not None else frozenset()
    refused = _entity_tags(if_none_match) if if_none_match is not None else frozenset()
    refused_weakly = None if refused is None else frozenset(tag.removeprefix("W/") for tag in refused)

    def holds(entry: Entry | None) -> bool:
        tag = None if entry is None else _etag(entry.version)
        if if_match is not None and (tag is None or (wanted is not None and tag not in wanted)):
            return False
        return if_none_match is None or tag is None or (refused_weakly is not None and tag not in refused_weakly)

    return holds


def _check_key(key: str) -> None:
    problem = key_problem(key)
    if problem:
        raise HTTPException(400, f"{problem}: keys are 1-256 bytes of UTF-8 text")


async def _read_value(request: Request) -> str:
    """The request body as UTF-8 text, refusing more than 64 KiB before reading it all."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_VALUE:
            raise HTTPException(413, "the value is longer than 65536 bytes (64 KiB)")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the value is not valid UTF-8") from None


def create_app(db_path: str, name: str = SERVICE_NAME, max_wait: float = MAX_WAIT) -> FastAPI:
    changes = Changes()
    holder: dict[str, KeyValueDB] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["db"] = await run_in_threadpool(KeyValueDB, db_path)
        app.state.stop_waits = partial(asyncio.get_running_loop().call_soon_threadsafe, changes.stop)
        yield
        await run_in_threadpool(holder.pop("db").close)

    app = FastAPI(title=name, version="1", lifespan=lifespan,
                  description="A key/value store with versions, conditional writes and long polling.")  # fmt: skip

    def db() -> KeyValueDB:
        return holder["db"]

    async def write(key: str, value: str | None, **conditions: Any) -> tuple[Entry, bool]:
        written = await run_in_threadpool(lambda: db().put(key, value, **conditions))
        changes.changed(key)
        return written

    # -- the compatible API ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, summary="The original URL API, or a page listing every pair")
    async def compatible(
        action: Annotated[str | None, Query(description="set, get or unset; none for the page")] = None,
        key: Annotated[str | None, Query()] = None,
        value: Annotated[str | None, Query()] = None,
    ) -> Response:
        if action is None:
            entries = await run_in_threadpool(lambda: db().items(limit=10_000))
            return HTMLResponse(_page(name, entries))
        if action not in ("set", "get", "unset"):
            return _text(400, f"unknown action {action!r}: use set, get or unset")
        if key is None or (action == "set" and value is None):
            needs = "key and value" if action == "set" else "key"
            return _text(
                400, f"action={action} needs {needs}: /?action={action}&key=K" + ("&value=V" if action == "set" else "")
            )
        problem = key_problem(key)
        if problem:
            return _text(400, f"{problem}: keys are 1-256 bytes of UTF-8 text")
        problem = value_problem(value) if value is not None else None
        if problem:
            return _text(413 if "longer" in problem else 400, problem)
        if action == "set":
            await write(key, value)
            return _text(200, "OK")
        if action == "get":
            entry = db().get(key)
            if entry is None or entry.value is None:
                return _text(404, f"no value for key {key!r}")
            return PlainTextResponse(entry.value, headers=_tagged(entry))
        try:
            await write(key, None)
        except KeyError:
            return _text(404, f"no value for key {key!r}")
        return _text(200, "OK")

    # -- the REST API ---------------------------------------------------------------------------------

    @app.get("/keys", response_model=Listing, summary="Live keys with their values, in key order")
    async def list_keys(
        prefix: Annotated[str, Query(max_length=256)] = "",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Listing:
        entries = await run_in_threadpool(lambda: db().items(prefix, limit))
        items = [Item(key=e.key, value=e.value or "", version=e.version) for e in entries]
        return Listing(items=items, count=len(items))

    @app.get("/keys/{key:path}", response_class=PlainTextResponse, summary="A value (text); long-poll with wait",
             responses={404: {"description": "no value"}, 304: {"description": "unchanged after waiting"},
                        503: {"description": "the store stopped during the wait"}})  # fmt: skip
    async def get_key(
        key: Annotated[str, Path(description="1-256 bytes of UTF-8, no control characters")],
        wait: Annotated[float, Query(ge=0, le=max_wait, description="seconds to wait for a change")] = 0,
        after: Annotated[int | None, Query(ge=0, description="the version you have; wait for a newer one")] = None,
    ) -> Response:
        _check_key(key)
        entry = db().get(key)
        if wait and after is not None and (entry is None or entry.version <= after):
            event = changes.event(key)
            entry = db().get(key)  # a write may have landed meanwhile
            if entry is None or entry.version <= after:
                if changes.stopping:
                    return _stopping()
                try:
                    await asyncio.wait_for(event.wait(), wait)
                except TimeoutError:
                    headers = _tagged(entry) if entry is not None else {}
                    return Response(status_code=304, headers=headers)
                if changes.stopping:
                    return _stopping()
                entry = db().get(key)
        if entry is None or entry.value is None:
            headers = _tagged(entry) if entry is not None else {}
            return JSONResponse({"detail": f"no value for key {key!r}"}, 404, headers=headers)
        return PlainTextResponse(entry.value, headers=_tagged(entry))

    @app.put("/keys/{key:path}", response_model=Written, status_code=200,
             summary="Set a value; conditional with If-Match or If-None-Match",
             responses={201: {"model": Written, "description": "created"}, 412: {"description": "version conflict"},
                        413: {"description": "value too long"}},
             openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {
                 "type": "string", "maxLength": MAX_VALUE}}}}})  # fmt: skip
    async def put_key(
        request: Request,
        key: Annotated[str, Path(description="1-256 bytes of UTF-8, no control characters")],
        if_match: Annotated[str | None, Header(description=IF_MATCH)] = None,
        if_none_match: Annotated[str | None, Header(description=IF_NONE_MATCH)] = None,
    ) -> Response:
        _check_key(key)
        value = await _read_value(request)
        # if_match and if_none_match hold a header's first line only: they are there to put it in the schema
        when = _precondition(_field(request, "If-Match"), _field(request, "If-None-Match"))
        try:
            entry, created = await write(key, value, when=when)
        except Conflict as conflict:
            return _conflict(key, conflict)
        return JSONResponse({"key": key, "version": entry.version}, 201 if created else 200, headers=_tagged(entry))

    @app.delete("/keys/{key:path}", status_code=204,
                summary="Delete a value; conditional with If-Match or If-None-Match",
                responses={404: {"description": "no value"}, 412: {"description": "version conflict"}})  # fmt: skip
    async def delete_key(
        request: Request,
        key: Annotated[str, Path(description="1-256 bytes of UTF-8, no control characters")],
        if_match: Annotated[str | None, Header(description=IF_MATCH)] = None,
        if_none_match: Annotated[str | None, Header(description=IF_NONE_MATCH)] = None,
    ) -> Response:
        _check_key(key)
        # if_match and if_none_match hold a header's first line only: they are there to put it in the schema
        when = _precondition(_field(request, "If-Match"), _field(request, "If-None-Match"))
        try:
            entry, _ = await write(key, None, when=when)
        except KeyError:
            return JSONResponse({"detail": f"no value for key {key!r}"}, 404)
        except Conflict as conflict:
            return _conflict(key, conflict)
        return Response(status_code=204, headers=_tagged(entry))

    @app.get("/healthz", summary="OK when the store answers")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "keys": await run_in_threadpool(lambda: db().count())}

    return app


def _conflict(key: str, conflict: Conflict) -> JSONResponse:
    current = conflict.current
    if current is None or current.value is None:
        return JSONResponse({"detail": f"key {key!r} has no value", "version": None}, 412)
    detail = f"key {key!r} is at version {current.version}"
    return JSONResponse({"detail": detail, "version": current.version}, 412, headers=_tagged(current))


def _page(name: str, entries: list[Entry]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(e.key)}</td><td>{html.escape(e.value or '')}</td><td>{e.version}</td></tr>"
        for e in entries
    )
    title = html.escape(name)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>{len(entries)} key(s)</p>\n"
        f"<table><thead><tr><th>key</th><th>value</th><th>version</th></tr></thead>\n<tbody>\n{rows}\n</tbody></table>\n"
        "</body></html>\n"
    )
