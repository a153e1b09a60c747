"""The webhooks HTTP adapter against a real server on 127.0.0.1: no redirect followed,
an answer read only up to the limit, a slow receiver cut off at the time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.embedded import free_port
from services.webhooks.adapters import HttpTransport
from services.webhooks.settings import WebhooksSettings


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        Handler.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("content-length", str(10 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(160):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass  # the client stopped reading: as it should
        elif self.path == "/slow":
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            self.send_response(204)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
async def transport() -> HttpTransport:
    t = HttpTransport(
        WebhooksSettings(request_timeout_s=0.5, max_response_bytes=1024, max_connections=4)
    )
    yield t
    await t.close()


async def test_a_2xx_is_success(server, transport) -> None:
    outcome = await transport.post(f"{server}/ok", b"{}", {"content-type": "application/json"})
    assert outcome.status_code == 204 and outcome.error is None and outcome.latency_ms >= 0


async def test_a_redirect_is_not_followed(server, transport) -> None:
    Handler.hits.clear()
    outcome = await transport.post(f"{server}/redirect", b"{}", {})
    assert outcome.status_code == 307 and "not followed" in (outcome.error or "")
    assert Handler.hits == ["/redirect"]


async def test_a_huge_answer_is_read_only_up_to_the_limit(server, transport) -> None:
    started = time.monotonic()
    outcome = await transport.post(f"{server}/big", b"{}", {})
    assert outcome.status_code == 200 and outcome.error is None
    assert time.monotonic() - started < 2


async def test_a_slow_receiver_is_cut_off_at_the_time_limit(server, transport) -> None:
    outcome = await transport.post(f"{server}/slow", b"{}", {})
    assert outcome.status_code is None and outcome.error == "timeout"
    assert outcome.latency_ms < 1400


async def test_nobody_listening_is_a_connection_failure(transport) -> None:
    outcome = await transport.post(f"http://127.0.0.1:{free_port()}/x", b"{}", {})
    assert outcome.status_code is None and outcome.error.startswith("connection failed")
