"""Responses assembled from the cache's bytes, over real HTTP, against the dict path.

The store answers a consistent GET and an Exact LIST at an older revision from dicts
(`orjson.dumps` of the decoded objects, as the server always did); the watch cache
answers a GET at `resourceVersion=0`, a consistent LIST and a watch from its bytes. For
the same objects both must be byte for byte equal.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

CM = "/api/v1/namespaces/default/configmaps"
OTHER = "/api/v1/namespaces/other/configmaps"


def _base() -> str:
    return f"/projects/t-{uuid.uuid4().hex[:8]}/control-plane"


def _seed(http: httpx.Client, base: str) -> list[str]:
    names = []
    for i in range(7):
        name = f"cm-{i}"
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": {"tier": "a" if i % 2 else "b"}},
            "data": {"text": f'é\U0001f600 "q" \\ \n\t\u2028 {i}', "empty": ""},
        }
        if i % 3 == 0:
            body["metadata"]["annotations"] = {"x.io/n": str(i)}
        if i % 2 == 0:  # some bodies name their type, some leave it to the server
            body = {"apiVersion": "v1", "kind": "ConfigMap", **body}
        resp = http.post(base + CM, json=body)
        assert resp.status_code == 201, resp.text
        names.append(name)
    return names


def test_get_from_cache_equals_get_from_store(http: httpx.Client) -> None:
    base = _base()
    names = _seed(http, base)
    assert http.get(base + CM).status_code == 200  # consistent LIST: the cache caught up
    for name in names:
        from_store = http.get(f"{base}{CM}/{name}")
        from_cache = http.get(f"{base}{CM}/{name}", params={"resourceVersion": "0"})
        assert from_store.status_code == from_cache.status_code == 200
        assert from_cache.content == from_store.content
        assert from_cache.headers["content-type"] == from_store.headers["content-type"]


def test_list_pages_from_cache_equal_lists_from_store(http: httpx.Client) -> None:
    base = _base()
    _seed(http, base)
    at = http.get(base + CM).json()["metadata"]["resourceVersion"]
    # A write elsewhere moves the cache past `at`: an Exact list at `at` is the store's.
    namespace = {"metadata": {"name": "other"}}
    assert http.post(base + "/api/v1/namespaces", json=namespace).status_code == 201
    assert http.post(base + OTHER, json={"metadata": {"name": "x"}}).status_code == 201
    for params in ({}, {"labelSelector": "tier=a"}, {"fieldSelector": "metadata.name!=cm-3"}):
        for limit in (0, 3):
            cache_token = store_token = ""
            while True:
                page: dict[str, str] = {**params}
                if limit:
                    page["limit"] = str(limit)
                cached_params = {**page, "continue": cache_token} if cache_token else page
                from_cache = http.get(base + CM, params=cached_params)
                store_params = {**page, "resourceVersion": at, "resourceVersionMatch": "Exact"}
                if store_token:
                    store_params = {**page, "continue": store_token}
                from_store = http.get(base + CM, params=store_params)
                assert from_cache.status_code == from_store.status_code == 200, from_store.text
                cached = orjson.loads(from_cache.content)
                stored = orjson.loads(from_store.content)
                # The envelopes differ only in their revision (and tokens, which carry it).
                assert cached["items"] == stored["items"]
                stored["metadata"] = cached["metadata"]
                assert from_cache.content == orjson.dumps(stored)
                cache_token = cached["metadata"].get("continue", "")
                store_token = stored_token(from_store)
                assert bool(cache_token) == bool(store_token)
                if not cache_token:
                    break


def stored_token(resp: httpx.Response) -> str:
    token: str = orjson.loads(resp.content)["metadata"].get("continue", "")
    return token


def test_watch_lines_from_cache_equal_objects_from_store(http: httpx.Client) -> None:
    base = _base()
    names = _seed(http, base)
    assert http.get(base + CM).status_code == 200
    expected = {
        name: b'{"type":"ADDED","object":' + http.get(f"{base}{CM}/{name}").content + b"}"
        for name in names
    }
    params = {"watch": "1", "resourceVersion": "0", "timeoutSeconds": "5"}
    got: dict[str, bytes] = {}
    buffer = b""
    with http.stream("GET", base + CM, params=params) as resp:
        assert resp.status_code == 200
        # Split on b"\n" only: a str split would also break at the U+2028 in the values.
        for chunk in resp.iter_raw():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = orjson.loads(line)
                got[event["object"]["metadata"]["name"]] = line
            if len(got) == len(names):
                break
    assert got == expected
