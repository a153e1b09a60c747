"""SMS gateway capture: a tiny HTTP gateway that keeps every SMS as a ``.json`` file.

The dev stack's and the tests' stand-in for the SMS gateway. Run:
``python -m deploy.smscapture --host 127.0.0.1 --port 1026 --dir .data/sms [--token T]``.

API:
- ``POST /sms`` with JSON ``{"to": "+2557...", "sender": "...", "text": "..."}`` →
  ``202 {"id": "<uuid>", "status": "accepted"}``; 400 on a malformed body; 401 when
  ``--token`` is set and the ``Authorization: Bearer <token>`` header does not match.
- ``GET /sms`` → the stored messages, oldest first (for people looking at the dev stack).
- ``GET /health`` → 200.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 64 * 1024


def write_sms(directory: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically as ``<timestamp>-<id>.json`` in ``directory``."""
    name = f"{time.time_ns()}-{record['id']}.json"
    tmp = directory / f".{name}.tmp"
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, directory / name)
    return directory / name


def read_all(directory: Path) -> list[dict[str, Any]]:
    """Every stored SMS in ``directory``, oldest first."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def make_handler(directory: Path, token: str | None) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``directory`` and ``token``."""

    class SmsGatewayHandler(BaseHTTPRequestHandler):
        server_version = "MkutanoSmsCapture/1.0"

        def _reply(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server hook name)
            if self.path == "/health":
                self._reply(HTTPStatus.OK, {"status": "ok"})
            elif self.path == "/sms":
                self._reply(HTTPStatus.OK, read_all(directory))
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
            if self.path != "/sms":
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    self._reply(HTTPStatus.UNAUTHORIZED, {"error": "invalid or missing token"})
                    return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
                return
            problems = _validate(payload)
            if problems:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "; ".join(problems)})
                return
            record = {
                "id": str(uuid.uuid4()),
                "received_at": datetime.now(UTC).isoformat(),
                "to": payload["to"],
                "sender": payload.get("sender"),
                "text": payload["text"],
            }
            write_sms(directory, record)
            self._reply(HTTPStatus.ACCEPTED, {"id": record["id"], "status": "accepted"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            sys.stdout.write(f"{self.address_string()} {format % args}\n")
            sys.stdout.flush()

    return SmsGatewayHandler


def _validate(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["body must be a JSON object"]
    problems = [
        f"{field!r} must be a non-empty string"
        for field in ("to", "text")
        if not isinstance(payload.get(field), str) or not payload[field]
    ]
    if "sender" in payload and not isinstance(payload["sender"], str | None):
        problems.append("'sender' must be a string")
    return problems


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1026)
    parser.add_argument("--dir", type=Path, default=Path(".data/sms"))
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.dir, args.token))
    server.daemon_threads = True

    def shutdown(signum: int, frame: object) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"SMS capture listening on http://{args.host}:{args.port}/sms, writing to {args.dir}",
          flush=True)  # fmt: skip
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
