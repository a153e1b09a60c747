"""Baseline for the registration API: the same web framework and server settings, one insert.

FastAPI under uvicorn with the settings of ``shared.runtime.ServiceRuntime.run``; the
route takes the same URL and body as the real registration endpoint and does only one
``insert_one`` into the same MongoDB server: no validation, no outbox, no capacity
logic. Run: ``python -m bench.baseline_app --port P --mongo-url URL --db NAME``.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient


def create_app(mongo_url: str, db_name: str) -> FastAPI:
    """The baseline app: ``POST /api/v1/events/{event_id}/registrations`` → one insert."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    collection = client[db_name]["registrations"]
    app = FastAPI(title="bench baseline")

    @app.post("/api/v1/events/{event_id}/registrations", status_code=201)
    async def register(event_id: str, request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        doc = {"_id": str(uuid.uuid4()), "event_id": event_id, **body}
        await collection.insert_one(doc)
        return JSONResponse({"id": doc["_id"]}, status_code=201)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        await client.admin.command("ping")
        return {"status": "ok"}

    return app


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="bench baseline: one insert per POST")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--db", default="bench_baseline")
    args = parser.parse_args()
    config = uvicorn.Config(
        create_app(args.mongo_url, args.db),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=True,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
