"""The state store against a real ``bleeper store serve`` process: the compatible and REST APIs (bad
requests included), versions and conditional writes under concurrency, long polling, the dictionary proxy,
and a schemathesis run against the OpenAPI schema."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bleeper.statestore import ABSENT, StateStore, StateStoreError
from tests.helpers import free_port, running_store


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_store(tmp_path_factory.mktemp("statestore"), "--max-wait", "12") as url:
        yield url


@pytest.fixture
def http(store_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=store_url, timeout=10) as client:
        yield client


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def test_the_original_url_api(http: httpx.Client) -> None:
    key = unique("greeting")
    assert http.get("/", params={"action": "set", "key": key, "value": "hello <b>world</b> & co"}).text == "OK\n"
    got = http.get("/", params={"action": "get", "key": key})
    assert got.status_code == 200 and got.text == "hello <b>world</b> & co"
    page = http.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Bleeper state store</h1>" in page.text and "hello &lt;b&gt;world&lt;/b&gt; &amp; co" in page.text
    assert "<b>world</b>" not in page.text
    assert http.get("/", params={"action": "unset", "key": key}).status_code == 200
    missing = http.get("/", params={"action": "get", "key": key})
    assert missing.status_code == 404 and key in missing.text
    assert http.get("/", params={"action": "unset", "key": key}).status_code == 404


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"action": "fetch", "key": "k"}, 400, "unknown action 'fetch'"),
        ({"action": "set", "key": "k"}, 400, "needs key and value"),
        ({"action": "get"}, 400, "needs key"),
        ({"action": "set", "key": "k" * 257, "value": "v"}, 400, "longer than 256 bytes"),
        ({"action": "set", "key": "bell\x07", "value": "v"}, 400, "control characters"),
    ],
)
def test_bad_original_requests_say_what_is_wrong(http: httpx.Client, params: dict[str, str], status: int,
                                                 says: str) -> None:  # fmt: skip
    response = http.get("/", params=params)
    assert response.status_code == status and says in response.text


def test_a_value_over_64_kib_in_the_url_is_refused(store_url: str) -> None:
    host, port = store_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # beyond what httpx lets a URL be
        sock.sendall(
            f"GET /?action=set&key=k&value={'v' * 65537} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"64 KiB" in answer


def test_versions_and_conditional_writes(http: httpx.Client) -> None:
    key = unique("bed/4")
    created = http.put(f"/keys/{key}", content="admitted", headers={"If-None-Match": "*"})
    assert created.status_code == 201
    version = created.json()["version"]
    assert http.put(f"/keys/{key}", content="again", headers={"If-None-Match": "*"}).status_code == 412
    got = http.get(f"/keys/{key}")
    assert got.text == "admitted" and got.headers["ETag"] == f'"{version}"'
    updated = http.put(f"/keys/{key}", content="in theatre", headers={"If-Match": f'"{version}"'})
    assert updated.status_code == 200 and updated.json()["version"] > version
    stale = http.put(f"/keys/{key}", content="lost update", headers={"If-Match": f'"{version}"'})
    assert stale.status_code == 412 and stale.json()["version"] == updated.json()["version"]
    assert http.delete(f"/keys/{key}", headers={"If-Match": f'"{version}"'}).status_code == 412
    assert http.delete(f"/keys/{key}").status_code == 204
    assert http.get(f"/keys/{key}").status_code == 404
    recreated = http.put(f"/keys/{key}", content="readmitted")
    assert recreated.status_code == 201 and recreated.json()["version"] > updated.json()["version"]  # never reused
    listed = http.get("/keys", params={"prefix": key[:8]}).json()
    assert {"key": key, "value": "readmitted", "version": recreated.json()["version"]} in listed["items"]


def test_bad_rest_requests(http: httpx.Client) -> None:
    assert http.put("/keys/" + "k" * 257, content="v").status_code == 400
    assert http.put("/keys/big", content="v" * 65537).status_code == 413
    assert http.put("/keys/latin", content=b"caf\xe9").status_code == 400
    assert http.get("/keys/x", params={"wait": "soon"}).status_code == 422
    assert http.get("/keys/x", params={"wait": 13, "after": 1}).status_code == 422  # over --max-wait
    assert http.delete("/keys/never-there").status_code == 404


FOREIGN_TAGS = ['"abc"', 'W/"{v}"', "xyz", "{v}", '"0{v}"', '"{v}, x"', '"{w}", "banana"', 'W/"{v}", "{w}"',
                '"", *', '""', ""]  # fmt: skip


@pytest.mark.parametrize("tag", FOREIGN_TAGS)
def test_if_match_with_a_foreign_entity_tag_is_a_failed_precondition(http: httpx.Client, tag: str) -> None:
    # RFC 9110 13.1.1: entity tags are opaque, compared strongly (a weak tag never matches), and a list
    # matches when one of its tags does; whatever a tag looks like, not matching is 412, not 400
    key = unique("tagged")
    version = http.put(f"/keys/{key}", content="kept").json()["version"]
    foreign = tag.format(v=version, w=version + 1000)
    for response in (http.put(f"/keys/{key}", content="lost", headers={"If-Match": foreign}),
                     http.delete(f"/keys/{key}", headers={"If-Match": foreign})):  # fmt: skip
        assert response.status_code == 412, (foreign, response.status_code, response.text)
        assert response.json()["version"] == version and response.headers["ETag"] == f'"{version}"'
    assert http.get(f"/keys/{key}").text == "kept"
    missing = unique("never-written")
    for response in (http.put(f"/keys/{missing}", content="lost", headers={"If-Match": foreign}),
                     http.delete(f"/keys/{missing}", headers={"If-Match": foreign})):  # fmt: skip
        assert response.status_code == 412, (foreign, response.status_code, response.text)
        assert response.json()["version"] is None
    assert http.get(f"/keys/{missing}").status_code == 404


def test_if_match_takes_a_list_of_entity_tags_or_a_star(http: httpx.Client) -> None:
    key = unique("listed")
    first = http.put(f"/keys/{key}", content="one").json()["version"]
    second = http.put(f"/keys/{key}", content="two", headers={"If-Match": f'"banana", W/"x", "{first}"'})
    assert second.status_code == 200 and second.json()["version"] > first
    version = second.json()["version"]
    split = [("If-Match", '"banana"'), ("If-Match", f'"{first}", "{version}"')]  # one list over two lines
    third = http.put(f"/keys/{key}", content="three", headers=split)
    assert third.status_code == 200 and http.get(f"/keys/{key}").text == "three"
    fourth = http.put(f"/keys/{key}", content="four", headers={"If-Match": "*"})
    assert fourth.status_code == 200
    assert http.put(f"/keys/{unique('absent')}", content="x", headers={"If-Match": "*"}).status_code == 412
    deleted = http.delete(f"/keys/{key}", headers={"If-Match": f'"{first}" ,"{fourth.json()["version"]}",'})
    assert deleted.status_code == 204 and http.get(f"/keys/{key}").status_code == 404


def test_if_none_match_with_entity_tags(http: httpx.Client) -> None:
    # RFC 9110 13.1.2: weak comparison; a tag that matches fails the condition (412 for a write), any other
    # tag, foreign or not, lets the request proceed
    key = unique("unless")
    version = http.put(f"/keys/{key}", content="one", headers={"If-None-Match": '"abc"'}).json()["version"]
    for matching in (f'"{version}"', f'W/"{version}"', f'"banana", "{version}"', "*"):
        refused = http.put(f"/keys/{key}", content="lost", headers={"If-None-Match": matching})
        assert refused.status_code == 412 and refused.json()["version"] == version, matching
        refused = http.delete(f"/keys/{key}", headers={"If-None-Match": matching})
        assert refused.status_code == 412 and refused.json()["version"] == version, matching
    for other in ('"abc"', f'"{version + 1000}"', "xyz", f'"0{version}"'):
        written = http.put(f"/keys/{key}", content=other, headers={"If-None-Match": other})
        assert written.status_code == 200 and http.get(f"/keys/{key}").text == other
    assert http.delete(f"/keys/{key}", headers={"If-None-Match": f'"{version}"'}).status_code == 204


def test_long_polling_waits_for_a_change_without_polling(http: httpx.Client, store_url: str) -> None:
    key = unique("watched")
    version = http.put(f"/keys/{key}", content="one").json()["version"]
    started = time.monotonic()
    unchanged = http.get(f"/keys/{key}", params={"wait": 0.5, "after": version})
    assert unchanged.status_code == 304 and time.monotonic() - started >= 0.45
    timer = threading.Timer(0.5, lambda: httpx.put(f"{store_url}/keys/{key}", content="two"))
    timer.start()
    changed = http.get(f"/keys/{key}", params={"wait": 10, "after": version})
    assert changed.status_code == 200 and changed.text == "two" and time.monotonic() - started < 5
    already = http.get(f"/keys/{key}", params={"wait": 10, "after": version})  # newer already: at once
    assert already.text == "two"


def test_concurrent_compare_and_set_has_exactly_one_winner(store_url: str) -> None:
    key = unique("turn")
    with StateStore(store_url) as store:
        store[key] = "nobody"
        version = store.version(key)

        def claim(number: int) -> int | None:
            with StateStore(store_url) as own:
                return own.compare_and_set(key, f"player{number}", version)

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(claim, range(20)))
        winners = [n for n, result in enumerate(results) if result is not None]
        assert len(winners) == 1 and store[key] == f"player{winners[0]}"
        assert sum(1 for _ in range(20) if store.compare_and_set(unique("fresh"), "x", ABSENT)) == 20


def test_the_proxy_is_a_mutable_mapping(store_url: str) -> None:
    prefix = unique("proxy")
    with StateStore(store_url) as store:
        store[f"{prefix}/a"] = "1"
        store[f"{prefix}/b"] = "ünïcødé ✓"
        assert store[f"{prefix}/b"] == "ünïcødé ✓" and f"{prefix}/a" in store and f"{prefix}/zz" not in store
        assert [k for k in store if k.startswith(prefix)] == [f"{prefix}/a", f"{prefix}/b"]
        assert len(store) >= 2
        del store[f"{prefix}/a"]
        with pytest.raises(KeyError):
            store[f"{prefix}/a"]
        with pytest.raises(KeyError):
            del store[f"{prefix}/a"]
        assert store.get(f"{prefix}/a", "default") == "default"
        with pytest.raises(StateStoreError) as too_big:
            store[f"{prefix}/big"] = "x" * 70_000
        assert too_big.value.status == 413 and "64 KiB" in too_big.value.detail
        version = store.version(f"{prefix}/b")
        assert store.watch(f"{prefix}/b", version, timeout=0.3) is None
        store[f"{prefix}/b"] = "changed"
        assert store.watch(f"{prefix}/b", version, timeout=5) == ("changed", store.version(f"{prefix}/b"))
        latest = store.version(f"{prefix}/b")
        del store[f"{prefix}/b"]
        deleted = store.watch(f"{prefix}/b", latest, timeout=5)
        assert deleted is not None and deleted[0] is None and deleted[1] > latest


def test_an_unreachable_store_says_which_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with StateStore(url, timeout=2) as store, pytest.raises(StateStoreError) as failed:
        store["k"]
    assert failed.value.status == 0 and url in str(failed.value) and "bleeper store serve" in str(failed.value)


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    with running_store(tmp_path, "--max-wait", "0.2") as url:  # generated long polls must not stall the run
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json", "--checks",
             "not_a_server_error", "--max-examples", "40", "--phases", "examples,coverage,fuzzing",
             "--suppress-health-check", "all"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Fuzzing" in result.stdout and "passed" in result.stdout
