"""``StateStore(url)``: the state store as a Python dictionary, over its REST API; ``AsyncStateStore`` for
asyncio programs.

``store['k'] = 'v'``, ``store['k']``, ``del store['k']``, ``'k' in store``, ``len(store)`` and iteration work
as on a dict. Coordination needs more than a dict: :meth:`StateStore.version`,
:meth:`StateStore.compare_and_set` and :meth:`StateStore.watch` expose the versions, conditional writes and
long polling that let several programs share keys without races or busy waiting.

Each operation is written once, sans-I/O style, as a generator that yields the HTTP request it needs and is
sent the response; the two classes only differ in how they carry requests (blocking or awaiting).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

ABSENT = 0  # compare_and_set(key, value, ABSENT): create the key only if it has no value
MAX_WATCH = 60.0  # the service's default --max-wait; a lower one answers a longer watch with a 422

T = TypeVar("T")


class StateStoreError(Exception):
    """The store refused or failed a request: ``status`` is the HTTP status (0: it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request an operation needs."""

    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # None: the client's own


Operation = Generator[Call, httpx.Response, T]
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _path(key: str) -> str:
    return "/keys/" + quote(key, safe="")


def _fail(response: httpx.Response) -> StateStoreError:
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text.strip() or response.reason_phrase
    return StateStoreError(response.status_code, detail)


def get_with_version(key: str) -> Operation[tuple[str, int]]:
    response = yield Call("GET", _path(key))
    if response.status_code == 404:
        raise KeyError(key)
    if response.status_code != 200:
        raise _fail(response)
    return response.text, int(response.headers["X-Version"])


def set_value(key: str, value: str) -> Operation[int]:
    response = yield Call("PUT", _path(key), value.encode("utf-8"), TEXT)
    if response.status_code not in (200, 201):
        raise _fail(response)
    return int(response.json()["version"])


def delete(key: str) -> Operation[None]:
    response = yield Call("DELETE", _path(key))
    if response.status_code == 404:
        raise KeyError(key)
    if response.status_code != 204:
        raise _fail(response)


def items_with_prefix(prefix: str) -> Operation[list[tuple[str, str, int]]]:
    response = yield Call("GET", "/keys", params={"prefix": prefix, "limit": 10_000})
    if response.status_code != 200:
        raise _fail(response)
    return [(item["key"], item["value"], item["version"]) for item in response.json()["items"]]


def compare_and_set(key: str, value: str, version: int) -> Operation[int | None]:
    condition = {"If-None-Match": "*"} if version == ABSENT else {"If-Match": f'"{version}"'}
    response = yield Call("PUT", _path(key), value.encode("utf-8"), {**TEXT, **condition})
    if response.status_code == 412:
        return None
    if response.status_code not in (200, 201):
        raise _fail(response)
    return int(response.json()["version"])


def compare_and_delete(key: str, version: int) -> Operation[bool]:
    response = yield Call("DELETE", _path(key), headers={"If-Match": f'"{version}"'})
    if response.status_code in (404, 412):
        return False
    if response.status_code != 204:
        raise _fail(response)
    return True


def watch(key: str, after: int, timeout: float) -> Operation[tuple[str | None, int] | None]:
    wait = min(max(timeout, 0.0), MAX_WATCH)
    response = yield Call("GET", _path(key), params={"wait": wait, "after": after}, timeout=wait + 10.0)
    if response.status_code == 304:
        return None
    if response.status_code == 404:
        version = response.headers.get("X-Version")
        return (None, int(version)) if version is not None and int(version) > after else None
    if response.status_code != 200:
        raise _fail(response)
    return response.text, int(response.headers["X-Version"])


def _unreachable(url: str, exc: httpx.TransportError) -> StateStoreError:
    return StateStoreError(0, f"cannot reach the state store at {url}: {exc or type(exc).__name__}; "
                           "is `bleeper store serve` running there?")  # fmt: skip


def _options(call: Call) -> dict[str, Any]:
    options: dict[str, Any] = {"content": call.content, "headers": call.headers, "params": call.params}
    if call.timeout is not None:
        options["timeout"] = call.timeout
    return options


class StateStore(MutableMapping[str, str]):
    """The store as a dict, with blocking requests; one instance may be shared between threads."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, operation: Operation[T]) -> T:
        call = next(operation)
        while True:
            try:
                response = self._http.request(call.method, call.path, **_options(call))
            except httpx.TransportError as exc:
                raise _unreachable(self.url, exc) from exc
            try:
                call = operation.send(response)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    # -- the dict -----------------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        return self.get_with_version(key)[0]

    def __setitem__(self, key: str, value: str) -> None:
        self._run(set_value(key, value))

    def __delitem__(self, key: str) -> None:
        self._run(delete(key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self.get_with_version(key)
        except KeyError:
            return False
        return True

    def items_with_prefix(self, prefix: str = "") -> list[tuple[str, str, int]]:
        """(key, value, version) of every live key starting with *prefix*, in key order."""
        return self._run(items_with_prefix(prefix))

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _, _ in self.items_with_prefix()])

    def __len__(self) -> int:
        return len(self.items_with_prefix())

    # -- coordination -------------------------------------------------------------------------------------

    def get_with_version(self, key: str) -> tuple[str, int]:
        """The value and its version; KeyError when the key has no value."""
        return self._run(get_with_version(key))

    def version(self, key: str) -> int:
        """The key's current version; KeyError when it has no value."""
        return self.get_with_version(key)[1]

    def compare_and_set(self, key: str, value: str, version: int) -> int | None:
        """Set *key* only if it is still at *version* (``ABSENT``: only if it has no value). Returns the new
        version, or None when someone else got there first."""
        return self._run(compare_and_set(key, value, version))

    def compare_and_delete(self, key: str, version: int) -> bool:
        """Delete *key* only if it is still at *version*; False when it changed or is gone."""
        return self._run(compare_and_delete(key, version))

    def watch(self, key: str, after: int, timeout: float = 30.0) -> tuple[str | None, int] | None:
        """Wait (one long-poll request, no busy waiting) until *key* changes from version *after*: returns
        ``(value, version)``, value None if it was deleted; None when *timeout* passed with no change."""
        return self._run(watch(key, after, timeout))


class AsyncStateStore:
    """The same operations for asyncio programs; a pending :meth:`watch` is cancelled like any await."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncStateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, operation: Operation[T]) -> T:
        call = next(operation)
        while True:
            try:
                response = await self._http.request(call.method, call.path, **_options(call))
            except httpx.TransportError as exc:
                raise _unreachable(self.url, exc) from exc
            try:
                call = operation.send(response)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def get(self, key: str) -> tuple[str, int] | None:
        """``(value, version)``, or None when the key has no value."""
        try:
            return await self._run(get_with_version(key))
        except KeyError:
            return None

    async def set(self, key: str, value: str) -> int:
        return await self._run(set_value(key, value))

    async def delete(self, key: str) -> None:
        await self._run(delete(key))

    async def items_with_prefix(self, prefix: str = "") -> list[tuple[str, str, int]]:
        return await self._run(items_with_prefix(prefix))

    async def compare_and_set(self, key: str, value: str, version: int) -> int | None:
        return await self._run(compare_and_set(key, value, version))

    async def compare_and_delete(self, key: str, version: int) -> bool:
        return await self._run(compare_and_delete(key, version))

    async def watch(self, key: str, after: int, timeout: float = 30.0) -> tuple[str | None, int] | None:
        return await self._run(watch(key, after, timeout))
