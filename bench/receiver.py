"""A webhook receiver for the bench: a bare ASGI app under uvicorn, in its own process.

Every POST is answered 204 and counted by path (``/hook`` the service's deliveries,
``/baseline`` the plain loop's), with the time of the first and the last and the number
of distinct ``webhook-id`` headers. ``GET /stats`` answers them as JSON (``?reset=1``: and starts counting afresh). Run:
``python -m bench.receiver --port P``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn

STATS: dict[str, dict[str, Any]] = {}
IDS: dict[str, set[str]] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    more = True
    while more:  # drain the body
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        now = time.time()
        entry = STATS.setdefault(path, {"count": 0, "first": now, "last": now})
        entry["count"] += 1
        entry["last"] = now
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                IDS.setdefault(path, set()).add(value.decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope.get("query_string") == b"reset=1":
        STATS.clear()
        IDS.clear()
    body = json.dumps(
        {p: {**s, "distinct_ids": len(IDS.get(p, ()))} for p, s in STATS.items()}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
