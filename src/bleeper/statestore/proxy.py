"""``StateStore(url)``: the state store as a Python dictionary, over its REST API.

``store['k'] = 'v'``, ``store['k']``, ``del store['k']``, ``'k' in store``, ``len(store)`` and iteration work
as on a dict. Coordination needs more than a dict: :meth:`StateStore.version`,
:meth:`StateStore.compare_and_set` and :meth:`StateStore.watch` expose the versions, conditional writes and
long polling that let several programs share keys without races or busy waiting.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from urllib.parse import quote

import httpx

ABSENT = 0  # compare_and_set(key, value, ABSENT): create the key only if it has no value


class StateStoreError(Exception):
    """The store refused or failed a request: ``status`` is the HTTP status (0: it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


class StateStore(MutableMapping[str, str]):
    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise StateStoreError(0, f"cannot reach the state store at {self.url}: {exc or type(exc).__name__}; "
                                  "is `bleeper store serve` running there?") from exc  # fmt: skip

    @staticmethod
    def _path(key: str) -> str:
        return "/keys/" + quote(key, safe="")

    @staticmethod
    def _fail(response: httpx.Response) -> StateStoreError:
        try:
            detail = str(response.json().get("detail", response.text))
        except ValueError:
            detail = response.text.strip() or response.reason_phrase
        return StateStoreError(response.status_code, detail)

    # -- the dict -----------------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        return self.get_with_version(key)[0]

    def __setitem__(self, key: str, value: str) -> None:
        response = self._request("PUT", self._path(key), content=value.encode("utf-8"),
                                 headers={"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
        if response.status_code not in (200, 201):
            raise self._fail(response)

    def __delitem__(self, key: str) -> None:
        response = self._request("DELETE", self._path(key))
        if response.status_code == 404:
            raise KeyError(key)
        if response.status_code != 204:
            raise self._fail(response)

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
        response = self._request("GET", "/keys", params={"prefix": prefix, "limit": 10_000})
        if response.status_code != 200:
            raise self._fail(response)
        return [(item["key"], item["value"], item["version"]) for item in response.json()["items"]]

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _, _ in self.items_with_prefix()])

    def __len__(self) -> int:
        return len(self.items_with_prefix())

    # -- coordination -------------------------------------------------------------------------------------

    def get_with_version(self, key: str) -> tuple[str, int]:
        response = self._request("GET", self._path(key))
        if response.status_code == 404:
            raise KeyError(key)
        if response.status_code != 200:
            raise self._fail(response)
        return response.text, int(response.headers["X-Version"])

    def version(self, key: str) -> int:
        """The key's current version; KeyError when it has no value."""
        return self.get_with_version(key)[1]

    def compare_and_set(self, key: str, value: str, version: int) -> int | None:
        """Set *key* only if it is still at *version* (``ABSENT``: only if it has no value). Returns the new
        version, or None when someone else got there first."""
        condition = {"If-None-Match": "*"} if version == ABSENT else {"If-Match": f'"{version}"'}
        response = self._request("PUT", self._path(key), content=value.encode("utf-8"),
                                 headers={"Content-Type": "text/plain; charset=utf-8", **condition})  # fmt: skip
        if response.status_code == 412:
            return None
        if response.status_code not in (200, 201):
            raise self._fail(response)
        return int(response.json()["version"])

    def compare_and_delete(self, key: str, version: int) -> bool:
        """Delete *key* only if it is still at *version*; False when it changed or is gone."""
        response = self._request("DELETE", self._path(key), headers={"If-Match": f'"{version}"'})
        if response.status_code in (404, 412):
            return False
        if response.status_code != 204:
            raise self._fail(response)
        return True

    def watch(self, key: str, after: int, timeout: float = 30.0) -> tuple[str | None, int] | None:
        """Wait (one long-poll request, no busy waiting) until *key* changes from version *after*: returns
        ``(value, version)``, value None if it was deleted; None when *timeout* passed with no change."""
        wait = min(max(timeout, 0.0), 60.0)  # the server's --max-wait may be lower: a 422 says so
        response = self._request("GET", self._path(key), params={"wait": wait, "after": after},
                                 timeout=wait + 10.0)  # fmt: skip
        if response.status_code == 304:
            return None
        if response.status_code == 404:
            version = response.headers.get("X-Version")
            return (None, int(version)) if version is not None and int(version) > after else None
        if response.status_code != 200:
            raise self._fail(response)
        return response.text, int(response.headers["X-Version"])
