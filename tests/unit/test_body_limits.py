"""shared/http.py: every body bounded, declared or chunked; 422s bounded too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict

from shared.http import (
    MAX_FIELD_PROBLEMS,
    BodyLimitMiddleware,
    KiB,
    body_limit,
    install_error_handlers,
)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def _app(max_bytes: int) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes, non_json_paths=[r"/upload$"])
    install_error_handlers(app)

    @app.post("/api/things")
    async def create(thing: Thing) -> dict[str, str]:
        return {"name": thing.name}

    @app.post("/api/upload", openapi_extra=body_limit(4 * KiB))
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


async def _chunks(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _client(max_bytes: int = 1 * KiB) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(max_bytes))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def _too_large(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {
        "code": "payload_too_large",
        "message": f"The body is larger than {limit} bytes.",
        "fields": [{"field": "body", "reason": f"at most {limit} bytes"}],
    }


async def test_a_declared_body_over_the_bound_is_413() -> None:
    async with _client() as c:
        body = b'{"name": "' + b"x" * 2 * KiB + b'"}'
        r = await c.post("/api/things", content=body, headers={"Content-Type": "application/json"})
        _too_large(r, 1 * KiB)


async def test_a_chunked_body_over_the_bound_is_413_not_a_parse_error() -> None:
    async with _client() as c:
        body = b'{"name": "' + b"x" * 2 * KiB + b'"}'
        r = await c.post(
            "/api/things", content=_chunks(body), headers={"Content-Type": "application/json"}
        )
        assert r.request.headers["transfer-encoding"] == "chunked"
        _too_large(r, 1 * KiB)


async def test_a_chunked_body_within_the_bound_reaches_the_route_whole() -> None:
    async with _client() as c:
        r = await c.post(
            "/api/things",
            content=_chunks(b'{"name": "' + b"y" * 500 + b'"}', size=7),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 200 and r.json() == {"name": "y" * 500}


async def test_a_route_declares_its_own_bound_and_the_others_keep_the_service_one() -> None:
    async with _client() as c:
        headers = {"Content-Type": "text/csv"}
        r = await c.post("/api/upload", content=b"a" * 3 * KiB, headers=headers)
        assert r.json() == {"bytes": 3 * KiB}
        _too_large(await c.post("/api/upload", content=b"a" * 5 * KiB, headers=headers), 4 * KiB)
        r = await c.post("/api/upload", content=_chunks(b"a" * 5 * KiB), headers=headers)
        _too_large(r, 4 * KiB)
        r = await c.post("/api/things", content=b"a" * 3 * KiB, headers=headers)
        assert r.status_code == 413  # the size first, whatever the type
        r = await c.post("/api/things", content=b"a", headers=headers)
        assert r.status_code == 415


async def test_a_422_lists_a_bounded_number_of_fields_with_bounded_names() -> None:
    async with _client(max_bytes=64 * KiB) as c:
        many = "{" + ",".join(f'"k{n}": 1' for n in range(120)) + "}"
        r = await c.post("/api/things", content=many, headers={"Content-Type": "application/json"})
        error = r.json()["error"]
        assert r.status_code == 422
        assert len(error["fields"]) == MAX_FIELD_PROBLEMS
        assert f"The first {MAX_FIELD_PROBLEMS} of 121 are listed." in error["message"]
        long_key = '{"name": "a", "' + "k" * 900 + '": 1}'
        r = await c.post(
            "/api/things", content=long_key, headers={"Content-Type": "application/json"}
        )
        (field,) = r.json()["error"]["fields"]
        assert len(field["field"]) == 200 and field["field"].endswith("\u2026")
        assert field["reason"] == "unknown field"
