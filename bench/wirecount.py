"""A counting proxy in front of the MongoDB server: which commands reach it, on what.

The services of a bench stack talk to this proxy (a loopback port) instead of the
server; it forwards every byte both ways and reads each OP_MSG request's command
document (its first key is the command, its value the collection, ``$db`` the
database). A window (``mark`` ... ``counts``) gives, per ``db.collection`` and command,
the number of requests and the server's time answering them (request → reply), so an
idle stack shows what still reads while nothing happens. Runs in a thread of the bench
process; costs the stack nothing but the extra loopback hop.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import defaultdict
from typing import Any

import bson

from deploy.embedded import LOCALHOST, free_port

OP_MSG = 2013
_HANDSHAKE = {"hello", "ismaster", "isMaster", "ping", "buildinfo", "buildInfo", "endSessions"}


def command_of(message: bytes) -> tuple[str, str] | None:
    """(command, "db.collection") of one OP_MSG request, or None for anything else."""
    if len(message) < 21 or struct.unpack_from("<i", message, 12)[0] != OP_MSG:
        return None
    if message[20] != 0:  # the first section is the command body (kind 0)
        return None
    (size,) = struct.unpack_from("<i", message, 21)
    try:
        doc = bson.decode(message[21 : 21 + size])
    except Exception:  # noqa: BLE001 - not ours to judge: forward it anyway
        return None
    if not doc:
        return None
    command, target = next(iter(doc.items()))
    db = doc.get("$db", "?")
    if command in _HANDSHAKE or not isinstance(target, str):
        return command, db
    return command, f"{db}.{target}"


class WireCounter:
    """``with WireCounter(upstream_port) as wc:`` — services use ``wc.url``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="wirecount")
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{LOCALHOST}:{self.port}"

    def mark(self) -> None:
        """Start a new counting window."""
        with self._lock:
            self._counts.clear()

    def counts(self) -> dict[str, dict[str, Any]]:
        """``{"db.coll": {"find": {"n": 12, "server_ms": 3.4}, ...}}`` since ``mark``."""
        with self._lock:
            items = list(self._counts.items())
        out: dict[str, dict[str, Any]] = {}
        for (command, target), (n, seconds) in sorted(items, key=lambda kv: kv[0][1]):
            out.setdefault(target, {})[command] = {
                "n": int(n),
                "server_ms": round(seconds * 1000, 1),
            }
        return out

    # -- the proxy

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, LOCALHOST, self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOCALHOST, self.upstream_port)
        except OSError:
            writer.close()
            return
        pending: dict[int, tuple[tuple[str, str], float]] = {}

        async def requests() -> None:
            while True:
                header = await reader.readexactly(16)
                length, request_id = struct.unpack_from("<ii", header)
                body = await reader.readexactly(length - 16)
                key = command_of(header + body)
                if key is not None:
                    pending[request_id] = (key, time.perf_counter())
                up_writer.write(header + body)
                await up_writer.drain()

        async def replies() -> None:
            while True:
                header = await up_reader.readexactly(16)
                length, _, response_to = struct.unpack_from("<iii", header)
                body = await up_reader.readexactly(length - 16)
                started = pending.pop(response_to, None)
                if started is not None:
                    key, t0 = started
                    with self._lock:
                        entry = self._counts[key]
                        entry[0] += 1
                        entry[1] += time.perf_counter() - t0
                writer.write(header + body)
                await writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    def __enter__(self) -> WireCounter:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.stop()

        self._loop.call_soon_threadsafe(_stop)
        self._thread.join(5)


def top(counts: dict[str, dict[str, Any]], n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` collections the server spent the most time on, with their commands."""
    rows = []
    for target, commands in counts.items():
        rows.append(
            {
                "collection": target,
                "requests": sum(c["n"] for c in commands.values()),
                "server_ms": round(sum(c["server_ms"] for c in commands.values()), 1),
                "commands": {k: v["n"] for k, v in commands.items()},
            }
        )
    rows.sort(key=lambda r: -r["server_ms"])
    return rows[:n]
