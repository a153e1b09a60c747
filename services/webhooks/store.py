"""The webhooks service's MongoDB (the only module that touches it).

Collections:
- ``subscriptions``: one document per subscription (its secrets too: signing needs them).
- ``deliveries``: the delivery log, one document per (subscription, CloudEvent id) —
  ``_id`` is ``<subscription id>:<ce_id>``, so a redelivered record cannot add a second.
  The payload is kept as the JSON text that is sent (``data_json``). Sending is claim →
  POST → save: a claim takes a lease (``status: sending``), and a claim whose sender died
  is taken again once its lease has expired.
- ``processed_events``: the consumer's idempotency record (shared.consumer).

Writes follow docs/architecture.md: revision-checked ``$set`` with plain filters (a save
returns False when the revision moved on), times
as ISO strings (schedules as epoch seconds), ids as strings, arrays written whole.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.webhooks.domain import (
    Attempt,
    Delivery,
    DeliveryStatus,
    PersonalDataGrant,
    SigningSecret,
    Subscription,
)
from services.webhooks.ports import DELIVERIES
from shared.outbox import WriteSignal
from shared.timeutil import iso

SUBSCRIPTIONS = "subscriptions"
UNFINISHED = ["pending", "sending"]


def _iso(dt: datetime | None) -> str | None:
    return iso(dt) if dt is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# --------------------------------------------------------------------------- documents


class Cipher(Protocol):
    def encrypt(self, secret: str) -> str: ...
    def decrypt(self, token: str) -> str: ...


class Plain:
    """No encryption (tests of the store that look at the documents)."""

    def encrypt(self, secret: str) -> str:
        return secret

    def decrypt(self, token: str) -> str:
        return token


def subscription_fields(s: Subscription, cipher: Cipher) -> dict[str, Any]:
    grant = s.personal_data
    return {
        "url": s.url,
        "event_types": list(s.event_types),
        "label": s.label,
        "owner_email": s.owner_email,
        "secrets": [
            {
                "value_encrypted": cipher.encrypt(x.value),
                "created_at": iso(x.created_at),
                "expires_at": _iso(x.expires_at),
            }
            for x in s.secrets
        ],
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "created_by": s.created_by,
        "status": s.status,
        "paused_reason": s.paused_reason,
        "paused_at": _iso(s.paused_at),
        "personal_data": (
            {
                "purpose": grant.purpose,
                "granted_by": grant.granted_by,
                "granted_at": iso(grant.granted_at),
            }
            if grant
            else None
        ),
        "consecutive_failures": s.consecutive_failures,
        "failing_since": _iso(s.failing_since),
        "owner_notice_pending": s.owner_notice_pending,
        "owner_notified_at": _iso(s.owner_notified_at),
        "last_success_at": _iso(s.last_success_at),
        "last_failure_at": _iso(s.last_failure_at),
    }


def subscription_of(doc: dict[str, Any], cipher: Cipher) -> Subscription:
    grant = doc.get("personal_data")
    return Subscription(
        id=doc["_id"],
        rev=int(doc.get("rev", 1)),
        url=doc["url"],
        event_types=list(doc["event_types"]),
        label=doc.get("label", ""),
        owner_email=doc["owner_email"],
        secrets=[
            SigningSecret(
                cipher.decrypt(x["value_encrypted"]),
                _dt(x["created_at"]) or datetime.min,
                _dt(x.get("expires_at")),
            )
            for x in doc.get("secrets") or []
        ],
        created_at=_dt(doc["created_at"]),  # type: ignore[arg-type]
        updated_at=_dt(doc["updated_at"]),  # type: ignore[arg-type]
        created_by=doc.get("created_by", ""),
        status=doc.get("status", "active"),
        paused_reason=doc.get("paused_reason"),
        paused_at=_dt(doc.get("paused_at")),
        personal_data=(
            PersonalDataGrant(grant["purpose"], grant["granted_by"], _dt(grant["granted_at"]))  # type: ignore[arg-type]
            if grant
            else None
        ),
        consecutive_failures=int(doc.get("consecutive_failures", 0)),
        failing_since=_dt(doc.get("failing_since")),
        owner_notice_pending=bool(doc.get("owner_notice_pending", False)),
        owner_notified_at=_dt(doc.get("owner_notified_at")),
        last_success_at=_dt(doc.get("last_success_at")),
        last_failure_at=_dt(doc.get("last_failure_at")),
    )


def delivery_fields(d: Delivery) -> dict[str, Any]:
    return {
        "subscription_id": d.subscription_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "source": d.source,
        "event_time": _iso(d.event_time),
        "key": d.key,
        "data_json": json.dumps(d.data, separators=(",", ":"), ensure_ascii=False),
        "personal_data": d.personal_data,
        "recorded_at": d.recorded_at,
        "status": d.status,
        "held": d.held,
        "next_attempt_at": d.next_attempt_at,
        "attempts_count": d.attempts_count,
        "attempts": [
            {
                "number": a.number,
                "at": iso(a.at),
                "latency_ms": a.latency_ms,
                "status_code": a.status_code,
                "error": a.error,
            }
            for a in d.attempts
        ],
        "last_error": d.last_error,
        "delivered_at": _iso(d.delivered_at),
        "replays": d.replays,
        "replayed_after": d.replayed_after,
    }


def delivery_of(doc: dict[str, Any]) -> Delivery:
    return Delivery(
        id=doc["_id"],
        rev=int(doc.get("rev", 1)),
        subscription_id=doc["subscription_id"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        source=doc.get("source", ""),
        event_time=_dt(doc.get("event_time")),
        key=doc.get("key", ""),
        data=json.loads(doc.get("data_json") or "{}"),
        personal_data=bool(doc.get("personal_data")),
        recorded_at=float(doc.get("recorded_at", 0.0)),
        status=doc.get("status", "pending"),
        held=bool(doc.get("held", False)),
        next_attempt_at=float(doc.get("next_attempt_at") or 0.0),
        attempts_count=int(doc.get("attempts_count", 0)),
        attempts=[
            Attempt(
                number=int(a["number"]),
                at=_dt(a["at"]),  # type: ignore[arg-type]
                latency_ms=int(a.get("latency_ms", 0)),
                status_code=a.get("status_code"),
                error=a.get("error"),
            )
            for a in doc.get("attempts") or []
        ],
        last_error=doc.get("last_error"),
        delivered_at=_dt(doc.get("delivered_at")),
        replays=int(doc.get("replays", 0)),
        replayed_after=int(doc.get("replayed_after", 0)),
    )


# --------------------------------------------------------------------------- the store


class WebhooksStore:
    """Implements ``ports.WebhooksStore`` on MongoDB."""

    def __init__(
        self, db: AsyncDatabase, *, signal: WriteSignal, cipher: Cipher | None = None
    ) -> None:
        # Signing secrets are stored encrypted with it (adapters.SecretsCipher).
        self.cipher: Cipher = cipher or Plain()
        # Reported after each write that leaves a delivery due now (the senders listen).
        self.signal = signal
        self.db = db
        self.subscriptions = db[SUBSCRIPTIONS]
        self.deliveries = db[DELIVERIES]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        await self.deliveries.create_index(
            [("subscription_id", ASCENDING), ("key", ASCENDING), ("status", ASCENDING)]
        )
        await self.deliveries.create_index(
            [("subscription_id", ASCENDING), ("recorded_at", DESCENDING)]
        )
        await self.deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        await self.deliveries.create_index([("key", ASCENDING)])
        await self.subscriptions.create_index([("owner_notice_pending", ASCENDING)])

    # -- subscriptions -------------------------------------------------------------

    async def insert_subscription(self, subscription: Subscription) -> None:
        await self.subscriptions.insert_one(
            {"_id": subscription.id, **subscription_fields(subscription, self.cipher), "rev": 1}
        )
        subscription.rev = 1

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        doc = await self.subscriptions.find_one({"_id": subscription_id})
        return subscription_of(doc, self.cipher) if doc else None

    async def list_subscriptions(self) -> list[Subscription]:
        docs = await self.subscriptions.find({}, sort=[("created_at", ASCENDING)]).to_list()
        return [subscription_of(d, self.cipher) for d in docs]

    async def save_subscription(self, subscription: Subscription) -> bool:
        result = await self.subscriptions.update_one(
            {"_id": subscription.id, "rev": subscription.rev},
            {"$set": subscription_fields(subscription, self.cipher), "$inc": {"rev": 1}},
        )
        if result.matched_count != 1:
            return False
        subscription.rev += 1
        return True

    async def delete_subscription(self, subscription_id: str) -> bool:
        result = await self.subscriptions.delete_one({"_id": subscription_id})
        await self.deliveries.delete_many({"subscription_id": subscription_id})
        return result.deleted_count == 1

    async def subscriptions_to_notify(self) -> list[Subscription]:
        docs = await self.subscriptions.find({"owner_notice_pending": True}).to_list()
        return [subscription_of(d, self.cipher) for d in docs]

    # -- deliveries ----------------------------------------------------------------

    async def add_delivery(self, delivery: Delivery) -> bool:
        try:
            await self.deliveries.insert_one(
                {"_id": delivery.id, **delivery_fields(delivery), "lease_until": 0.0, "rev": 1}
            )
        except DuplicateKeyError:
            return False
        delivery.rev = 1
        self.signal.written(DELIVERIES, delivery.id)
        return True

    async def add_deliveries(self, deliveries: list[Delivery]) -> int:
        if not deliveries:
            return 0
        docs = [
            {"_id": d.id, **delivery_fields(d), "lease_until": 0.0, "rev": 1} for d in deliveries
        ]
        existing: set[int] = set()
        try:
            await self.deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors or any(e.get("code") != 11000 for e in errors):
                raise  # not only duplicates: the batch is applied again, one by one
            existing = {int(e["index"]) for e in errors}
        added = 0
        for index, delivery in enumerate(deliveries):
            if index in existing:
                continue
            delivery.rev = 1
            self.signal.written(DELIVERIES, delivery.id)
            added += 1
        return added

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        doc = await self.deliveries.find_one({"_id": delivery_id})
        return delivery_of(doc) if doc else None

    async def save_delivery(self, delivery: Delivery) -> bool:
        result = await self.deliveries.update_one(
            {"_id": delivery.id, "rev": delivery.rev},
            {"$set": {**delivery_fields(delivery), "lease_until": 0.0}, "$inc": {"rev": 1}},
        )
        if result.matched_count != 1:
            return False
        delivery.rev += 1
        if delivery.status == "pending" and not delivery.held:
            self.signal.written(DELIVERIES, delivery.id)
        return True

    async def claim_delivery(
        self, delivery_id: str, *, lease_s: float, now: float
    ) -> Delivery | None:
        # Read, decide, then write conditioned on the revision read (plain filter).
        doc = await self.deliveries.find_one({"_id": delivery_id})
        if doc is None:
            return None
        status = doc.get("status")
        due = status == "pending" and float(doc.get("next_attempt_at") or 0) <= now
        abandoned = status == "sending" and float(doc.get("lease_until") or 0) < now
        if not (due or abandoned):
            return None
        claimed = await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "rev": doc["rev"]},
            {"$set": {"status": "sending", "lease_until": now + lease_s}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return delivery_of(claimed) if claimed else None

    async def due_deliveries(self, *, now: float, limit: int) -> list[str]:
        # Two plain range queries (no $or): due ones, and claims whose lease expired.
        due = await self.deliveries.find(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
            limit=limit,
        ).to_list()
        abandoned = await self.deliveries.find(
            {"status": "sending", "lease_until": {"$lt": now}}, {"_id": 1}, limit=limit
        ).to_list()
        return [d["_id"] for d in abandoned + due][:limit]

    async def _unfinished_of_key(self, subscription_id: str, key: str) -> list[dict[str, Any]]:
        docs = await self.deliveries.find(
            {"subscription_id": subscription_id, "key": key, "status": {"$in": UNFINISHED}}
        ).to_list()
        return sorted(docs, key=lambda d: float(d.get("recorded_at", 0.0)))

    async def older_unfinished(self, delivery: Delivery) -> Delivery | None:
        for doc in await self._unfinished_of_key(delivery.subscription_id, delivery.key):
            if (
                doc["_id"] != delivery.id
                and float(doc.get("recorded_at", 0)) < delivery.recorded_at
            ):
                return delivery_of(doc)
        return None

    async def release_held(self, subscription_id: str, *, key: str | None = None) -> list[str]:
        if key is not None:
            unfinished = await self._unfinished_of_key(subscription_id, key)
            # Only the oldest may go; it releases the next when it is done.
            docs = [d for d in unfinished[:1] if d.get("held")]
        else:
            docs = await self.deliveries.find(
                {"subscription_id": subscription_id, "status": "pending", "held": True}
            ).to_list()
            docs.sort(key=lambda d: float(d.get("recorded_at", 0.0)))
        released = []
        for doc in docs:
            result = await self.deliveries.update_one(
                {"_id": doc["_id"], "rev": doc["rev"]},
                {"$set": {"next_attempt_at": 0.0, "held": False}, "$inc": {"rev": 1}},
            )
            if result.matched_count == 1:
                released.append(doc["_id"])
                self.signal.written(DELIVERIES, doc["_id"])
        return released

    async def deliveries_of_key(self, key: str) -> list[Delivery]:
        docs = await self.deliveries.find({"key": key}).to_list()
        return [delivery_of(d) for d in docs]

    async def list_deliveries(
        self,
        subscription_id: str,
        *,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        query: dict[str, Any] = {"subscription_id": subscription_id}
        if status is not None:
            query["status"] = status
        recorded: dict[str, float] = {}
        if since is not None:
            recorded["$gte"] = since.timestamp()
        if until is not None:
            recorded["$lte"] = until.timestamp()
        if recorded:
            query["recorded_at"] = recorded
        docs = await self.deliveries.find(
            query, sort=[("recorded_at", DESCENDING)], limit=limit
        ).to_list()
        return [delivery_of(d) for d in docs]
