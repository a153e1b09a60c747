"""The transactional outbox, kept inside the aggregate's own document.

An aggregate document carries ``outbox`` (pending events, in order), ``outbox_pending``
and ``rev`` (a revision bumped by every write). A business change and the events it
causes are one atomic single-document write — real MongoDB needs no replica set for
that, and it does not lean on multi-document transactions (not isolated on the
embedded server). A relay then publishes each document's pending events in order,
removes them with a revision-checked write and backs off while the broker is down.

Several relays (several instances of a service) never publish one document's events
concurrently: a relay first takes a short lease on the document. If a relay dies
between publishing and removing, the lease expires and the events are published
again: delivery is at-least-once, and consumers deduplicate on ``ce_id``.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.envelope import OutboxMessage
from shared.logging import get_logger
from shared.timeutil import epoch
from shared.waiting import ScanSchedule, sleep_or_stop, wait_any

Publish = Callable[[OutboxMessage], Awaitable[None]]
log = get_logger("outbox")


WriteListener = Callable[[str, Any], None]

# What a write left behind, by default: events in the document's outbox (the relay's work).
EVENTS = "events"


class WriteSignal:
    """The one wake signal of a service process: its store reports each write here.

    A store calls ``written(collection, doc_id)`` after a write that left work behind
    (events in the outbox, a message queued to send). Whoever does that work listens:
    the outbox relay publishes the document's events at once by ``_id`` instead of
    finding them with a scan over the whole collection; notification's senders claim a
    queued message. The relay's periodic scan remains the safety net for what no signal
    named (another instance's writes, a crash). It is built by the runtime and handed
    to the store and to the listeners explicitly: no module-level registry.

    ``work`` says what the write left behind: ``EVENTS`` (the default, which the relay
    listens for) or a kind a service names for its own workers (notification: a message
    to send). A listener hears the one kind it listens for, so the relay is not woken to
    look for events in a document that has none, nor the senders by an outcome's events.
    """

    def __init__(self) -> None:
        self._listeners: list[tuple[str, WriteListener]] = []

    def listen(self, listener: WriteListener, *, work: str = EVENTS) -> None:
        self._listeners.append((work, listener))

    def unlisten(self, listener: WriteListener) -> None:
        self._listeners = [(w, fn) for w, fn in self._listeners if fn != listener]

    def written(self, collection: str, doc_id: Any, *, work: str = EVENTS) -> None:
        for kind, listener in list(self._listeners):
            if kind == work:
                listener(collection, doc_id)


class ConcurrentUpdate(Exception):
    """The document changed since it was read (its ``rev`` moved on)."""


def new_document(fields: dict[str, Any], messages: Iterable[OutboxMessage] = ()) -> dict[str, Any]:
    """A fresh aggregate document with its first events in the outbox."""
    outbox = [m.to_document() for m in messages]
    return {
        **fields,
        "rev": 1,
        "outbox": outbox,
        "outbox_pending": bool(outbox),
        "outbox_lease_until": 0.0,
    }


def update_spec(
    doc: dict[str, Any], changes: dict[str, Any], messages: Iterable[OutboxMessage] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update for a revision-checked write of ``changes`` plus new events."""
    added = [m.to_document() for m in messages]
    update: dict[str, Any] = {"$set": dict(changes), "$inc": {"rev": 1}}
    if added:
        update["$set"]["outbox"] = list(doc.get("outbox") or []) + added
        update["$set"]["outbox_pending"] = True
    return {"_id": doc["_id"], "rev": doc["rev"]}, update


async def save(
    collection: AsyncCollection,
    doc: dict[str, Any],
    changes: dict[str, Any],
    messages: Iterable[OutboxMessage] = (),
    *,
    signal: WriteSignal,
) -> dict[str, Any]:
    """Write ``changes`` and append ``messages`` to the outbox in one atomic write.

    Raises ``ConcurrentUpdate`` if the document's revision moved since ``doc`` was read.
    Returns the document as written.
    """
    messages = list(messages)
    flt, update = update_spec(doc, changes, messages)
    result = await collection.update_one(flt, update)
    if result.matched_count != 1:
        raise ConcurrentUpdate(str(doc["_id"]))
    written = {**doc, **update["$set"], "rev": doc["rev"] + 1}
    if messages:
        signal.written(collection.name, doc["_id"])
    return written


async def insert(collection: AsyncCollection, doc: dict[str, Any], *, signal: WriteSignal) -> None:
    """Insert a document made with ``new_document`` and report it to the signal."""
    await collection.insert_one(doc)
    if doc.get("outbox"):
        signal.written(collection.name, doc["_id"])


async def mutate(
    collection: AsyncCollection,
    doc_id: str,
    decide: Callable[[dict[str, Any]], tuple[dict[str, Any], list[OutboxMessage]] | None],
    *,
    signal: WriteSignal,
    attempts: int = 20,
) -> dict[str, Any] | None:
    """Read-decide-write with optimistic concurrency, retried on a concurrent update.

    ``decide`` gets the current document and returns ``(changes, events)``, or None to
    leave it unchanged. Returns the written document, or None if not found / unchanged.
    """
    for _ in range(attempts):
        doc = await collection.find_one({"_id": doc_id})
        if doc is None:
            return None
        decision = decide(doc)
        if decision is None:
            return None
        changes, messages = decision
        try:
            return await save(collection, doc, changes, messages, signal=signal)
        except ConcurrentUpdate:
            await asyncio.sleep(random.uniform(0, 0.01))
    raise ConcurrentUpdate(doc_id)


async def ensure_outbox_indexes(collection: AsyncCollection) -> None:
    await collection.create_index(
        [("outbox_pending", ASCENDING), ("outbox_lease_until", ASCENDING)]
    )


class OutboxRelay:
    """Publishes pending outbox events of some collections, in order per document."""

    def __init__(
        self,
        database: AsyncDatabase,
        collections: Sequence[str],
        publish: Publish,
        *,
        poll_interval_s: float = 0.2,
        scan_interval_s: float = 2.0,
        max_scan_interval_s: float = 8.0,
        lease_s: float = 30.0,
        batch_size: int = 200,
        max_backoff_s: float = 5.0,
        on_published: Callable[[OutboxMessage], None] | None = None,
    ) -> None:
        self._db = database
        self._collections = list(collections)
        self._publish = publish
        self._poll = poll_interval_s
        self._lease = lease_s
        self._batch = batch_size
        self._max_backoff = max_backoff_s
        self._on_published = on_published
        self._wake = asyncio.Event()
        self._failures = 0
        # The scan is the safety net (another process's leftovers, an expired lease); on
        # the embedded server it reads the whole collection. While it finds nothing the
        # hints have not, it runs less often, up to ``max_scan_interval_s``.
        self._scans = ScanSchedule(scan_interval_s, max_scan_interval_s)
        self._hints: dict[str, set[Any]] = {name: set() for name in self._collections}
        self.healthy = True

    def wake(self) -> None:
        """Ask the relay to look now (after a local write) rather than at the next poll."""
        self._wake.set()

    def hint(self, collection: str, doc_id: Any) -> None:
        """A document of ``collection`` has new events: publish them by ``_id``."""
        hints = self._hints.get(collection)
        if hints is not None:
            hints.add(doc_id)
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, backing off while the broker or MongoDB is down."""
        while not stop.is_set():
            try:
                published = await self.drain_hinted()
                if self._scans.due():
                    found = await self.drain_once()
                    published += found
                    self._scans.scanned(found > 0)
                self._failures = 0
                self.healthy = True
            except Exception as exc:  # broker or database down: back off and retry
                self._failures += 1
                self.healthy = False
                self._scans.reset()  # after an outage, look closely again
                delay = min(self._max_backoff, 0.1 * 2 ** min(self._failures, 10))
                log.warning(
                    "outbox_relay_backoff",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    retry_in_s=round(delay, 2),
                )
                await sleep_or_stop(stop, delay)
                continue
            if published == 0 and not any(self._hints.values()):
                self._wake.clear()
                await wait_any(stop, self._wake, self._poll)

    async def drain_hinted(self) -> int:
        """Publish the events of the documents named by hints (no collection scan)."""
        total = 0
        for name, hints in self._hints.items():
            if not hints:
                continue
            ids = list(hints)[: self._batch]
            hints.difference_update(ids)
            collection = self._db[name]
            try:
                total += await self._relay_hinted(collection, ids)
            except Exception:
                hints.update(ids)  # try again after the backoff; the scan is the safety net
                raise
        return total

    async def drain_once(self, *, skip_hinted: bool = True) -> int:
        """Publish what is pending now; returns how many events were published.

        Documents hinted already are left to ``drain_hinted`` (unless ``skip_hinted`` is
        false), so what the scan counts is only what nothing else would have published."""
        total = 0
        for name in self._collections:
            skip = self._hints[name] if skip_hinted else frozenset()
            total += await self._drain_collection(self._db[name], skip=skip)
        return total

    async def flush(self, timeout_s: float) -> int:
        """Publish everything pending, within a bound (used at shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        total = 0
        while loop.time() < deadline:
            try:
                n = await asyncio.wait_for(
                    self.drain_once(skip_hinted=False), max(0.1, deadline - loop.time())
                )
            except (TimeoutError, PyMongoError, OSError):
                break
            except Exception:  # broker unreachable: what is left stays in the outbox
                break
            total += n
            if n == 0:
                break
        return total

    async def backlog(self) -> tuple[int, float | None]:
        """Number of pending events and the age in seconds of the oldest one."""
        count = 0
        oldest: str | None = None
        for name in self._collections:
            cursor = self._db[name].find({"outbox_pending": True}, {"outbox": 1})
            async for doc in cursor:
                for item in doc.get("outbox") or []:
                    count += 1
                    if oldest is None or item["time"] < oldest:
                        oldest = item["time"]
        if oldest is None:
            return count, None
        from datetime import datetime

        age = epoch() - datetime.fromisoformat(oldest.replace("Z", "+00:00")).timestamp()
        return count, max(0.0, age)

    async def _drain_collection(
        self, collection: AsyncCollection, skip: set[Any] | frozenset = frozenset()
    ) -> int:
        now = epoch()
        candidates = await collection.find(
            {"outbox_pending": True, "outbox_lease_until": {"$lt": now}},
            {"_id": 1, "outbox_lease_until": 1},
            limit=self._batch,
        ).to_list()
        candidates = [c for c in candidates if c["_id"] not in skip]
        return await self._relay_candidates(collection, candidates)

    async def _relay_candidates(
        self, collection: AsyncCollection, candidates: list[dict[str, Any]]
    ) -> int:
        now = epoch()
        ids = [c["_id"] for c in candidates if float(c.get("outbox_lease_until") or 0) < now]
        return await self._relay_batch(collection, *await self._claim_many(collection, ids, now))

    async def _relay_hinted(self, collection: AsyncCollection, ids: list[Any]) -> int:
        """Claim hinted documents by ``_id``, all in one write, then relay them."""
        return await self._relay_batch(collection, *await self._claim_many(collection, ids))

    async def _claim_many(
        self, collection: AsyncCollection, ids: list[Any], now: float | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Lease these documents (those with events and no live lease) in one write, and
        read the ones this claim got: two round trips for the whole batch (one for a
        batch of one).

        Each claim writes its own token (``outbox_claim``) beside the lease, so the read
        finds exactly what this claim took, not a document another relay leased in the
        same instant (a float lease is no key: the embedded server rounds it)."""
        token = secrets.token_hex(8)
        if not ids:
            return [], token
        now = epoch() if now is None else now
        claim = {"$set": {"outbox_lease_until": now + self._lease, "outbox_claim": token}}
        if len(ids) == 1:  # one document: the claim returns it (one round trip)
            doc = await collection.find_one_and_update(
                {"_id": ids[0], "outbox_pending": True, "outbox_lease_until": {"$lt": now}},
                claim,
                return_document=ReturnDocument.AFTER,
            )
            return ([doc] if doc is not None else []), token
        await collection.update_many(
            {"_id": {"$in": ids}, "outbox_pending": True, "outbox_lease_until": {"$lt": now}},
            claim,
        )
        claimed = await collection.find({"_id": {"$in": ids}, "outbox_claim": token}).to_list()
        return claimed, token

    async def _relay_batch(
        self, collection: AsyncCollection, docs: list[dict[str, Any]], token: str
    ) -> int:
        """Publish the claimed documents' events (each document's in order, the documents
        side by side: the producer sends them together), then remove what went out and
        release the leases, all in one bulk write."""
        if not docs:
            return 0
        sent: list[list[str]] = [[] for _ in docs]
        results = await asyncio.gather(
            *(self._publish_document(d, out) for d, out in zip(docs, sent, strict=True)),
            return_exceptions=True,
        )
        await self._remove_many(collection, docs, sent, token)
        return _count_or_raise(results)

    async def _publish_document(self, doc: dict[str, Any], sent: list[str]) -> int:
        for item in doc.get("outbox") or []:
            message = OutboxMessage.from_document(item)
            await self._publish(message)
            sent.append(message.id)
            if self._on_published:
                self._on_published(message)
        return len(sent)

    async def _remove_many(
        self,
        collection: AsyncCollection,
        docs: list[dict[str, Any]],
        sent: list[list[str]],
        token: str,
    ) -> None:
        """``_remove`` for a batch: one bulk write of revision-checked updates, each as
        claimed (the claim does not move ``rev``); a document written meanwhile (its
        ``rev`` moved) is re-read and done alone."""
        ops = [
            UpdateOne({"_id": doc["_id"], "rev": doc["rev"]}, _removal(doc, set(out)))
            for doc, out in zip(docs, sent, strict=True)
        ]
        result = await collection.bulk_write(ops, ordered=False)
        if result.matched_count == len(ops):
            return
        # Which ones missed, the result does not say: those still leased by this claim
        # (a removal releases the lease; another claim writes another token).
        missed = {
            d["_id"]
            async for d in collection.find(
                {
                    "_id": {"$in": [doc["_id"] for doc in docs]},
                    "outbox_claim": token,
                    "outbox_lease_until": {"$gt": 0},
                },
                {"_id": 1},
            )
        }
        for doc, out in zip(docs, sent, strict=True):
            if doc["_id"] in missed:
                await self._remove(collection, doc, out, reread=True)

    async def _remove(
        self,
        collection: AsyncCollection,
        claimed: dict[str, Any],
        sent: list[str],
        *,
        reread: bool = False,
    ) -> None:
        """Drop published events and release the lease, re-reading on a concurrent write.

        The first try uses the document as claimed (the claim does not move ``rev``), so
        the usual case is one round trip.
        """
        done = set(sent)
        doc_id = claimed["_id"]
        doc: dict[str, Any] | None = claimed
        for attempt in range(50):
            if attempt or reread:
                doc = await collection.find_one({"_id": doc_id})
            if doc is None:
                return
            result = await collection.update_one(
                {"_id": doc_id, "rev": doc["rev"]}, _removal(doc, done)
            )
            if result.matched_count == 1:
                return
            await asyncio.sleep(random.uniform(0, 0.01))
        log.warning("outbox_remove_contended", doc=str(doc_id))


def _removal(doc: dict[str, Any], done: set[str]) -> dict[str, Any]:
    """The update that drops the published events of ``doc`` and releases its lease."""
    remaining = [m for m in doc.get("outbox") or [] if m["id"] not in done]
    return {
        "$set": {
            "outbox": remaining,
            "outbox_pending": bool(remaining),
            "outbox_lease_until": 0.0,
        },
        "$inc": {"rev": 1},
    }


def _count_or_raise(results: list[Any]) -> int:
    """Events published by a batch; re-raise only if nothing went out (to back off)."""
    published = 0
    error: BaseException | None = None
    for r in results:
        if isinstance(r, BaseException):
            error = r
        else:
            published += r
    if error is not None and published == 0:
        raise error
    return published
