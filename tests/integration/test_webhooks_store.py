"""The webhooks store on the session's MongoDB (nx-27017 or MongoDB): what the fake
promises, the real one keeps — uniqueness, revision checks, claims and leases, holds."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient

from services.webhooks.adapters import SecretsCipher
from services.webhooks.domain import Delivery, Subscription, delivery_id, new_secret
from services.webhooks.ports import DELIVERIES
from services.webhooks.store import WebhooksStore
from shared.contracts.registration import ParticipantRegistered
from shared.outbox import WriteSignal
from tests.unit.test_webhooks_domain import registered

T0 = datetime(2026, 2, 11, 6, 0, tzinfo=UTC)


@pytest.fixture
async def store(mongo) -> AsyncIterator[WebhooksStore]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    db = client[f"webhooks_store_{secrets.token_hex(4)}"]
    s = WebhooksStore(db, signal=WriteSignal(), cipher=SecretsCipher(Fernet.generate_key()))
    await s.ensure_indexes()
    yield s
    await client.drop_database(db.name)
    await client.close()


def subscription(**overrides) -> Subscription:
    fields = {
        "id": f"sub{secrets.token_hex(3)}",
        "url": "https://hooks.example.go.tz/x",
        "event_types": ["tz.go.ega.registration.*"],
        "label": "TSMS",
        "owner_email": "ict@example.go.tz",
        "secret": new_secret(b"s" * 24),
        "personal_data_purpose": "CPD",
        "by": "admin",
        "now": T0,
    }
    fields.update(overrides)
    return Subscription.create(**fields)


def delivery(sub: Subscription, event_id: str, key: str, at: float) -> Delivery:
    return Delivery.record(
        sub,
        event_id=event_id,
        event_type=ParticipantRegistered.ce_type(),
        source="/mkutano/registration",
        event_time=T0,
        key=key,
        data=registered().model_dump(mode="json"),
        event_cls=ParticipantRegistered,
        recorded_at=at,
    )


async def test_a_subscription_round_trips_and_its_writes_are_revision_checked(store) -> None:
    sub = subscription()
    sub.rotate_secret(new_secret(b"n" * 24), overlap_s=60, now=T0)
    await store.insert_subscription(sub)
    loaded = await store.get_subscription(sub.id)
    assert loaded == sub
    stale = await store.get_subscription(sub.id)
    loaded.pause(reason="test", now=T0)
    assert await store.save_subscription(loaded)
    assert not await store.save_subscription(stale), "its revision moved on"
    assert (await store.get_subscription(sub.id)).status == "paused"
    assert [s.id for s in await store.list_subscriptions()] == [sub.id]
    raw = await store.subscriptions.find_one({"_id": sub.id})
    assert "whsec_" not in str(raw), "the signing secrets are stored encrypted"


async def test_deliveries_are_unique_claimed_once_and_leases_expire(store) -> None:
    sub = subscription()
    await store.insert_subscription(sub)
    reported: list[str] = []
    store.signal.listen(lambda c, i: reported.append(i) if c == DELIVERIES else None)
    d = delivery(sub, "ce-1", "reg-1", 1.0)
    assert await store.add_delivery(d)
    assert not await store.add_delivery(delivery(sub, "ce-1", "reg-1", 2.0))
    assert reported == [delivery_id(sub.id, "ce-1")]
    now = T0.timestamp()
    claimed = await store.claim_delivery(d.id, lease_s=30, now=now)
    assert claimed is not None and claimed.status == "sending"
    assert claimed.data == d.data and claimed.personal_data
    assert await store.claim_delivery(d.id, lease_s=30, now=now + 1) is None
    assert await store.due_deliveries(now=now + 1, limit=10) == []
    assert await store.due_deliveries(now=now + 31, limit=10) == [d.id], "lease expired"
    retaken = await store.claim_delivery(d.id, lease_s=30, now=now + 31)
    assert retaken is not None
    assert not await store.save_delivery(claimed), "the first sender's lease ran out"
    retaken.succeeded(status_code=200, latency_ms=5, now=T0)
    await store.save_delivery(retaken)
    stored = await store.get_delivery(d.id)
    assert stored.status == "delivered" and stored.attempts[0].status_code == 200


async def test_a_batch_of_deliveries_is_one_insert_and_skips_what_exists(store) -> None:
    sub = subscription()
    await store.insert_subscription(sub)
    reported: list[str] = []
    store.signal.listen(lambda c, i: reported.append(i) if c == DELIVERIES else None)
    assert await store.add_delivery(delivery(sub, "ce-1", "reg-1", 1.0))
    batch = [delivery(sub, f"ce-{i}", "reg-1", float(i)) for i in range(4)]
    assert await store.add_deliveries(batch) == 3, "ce-1 existed"
    assert await store.add_deliveries(batch) == 0
    assert reported == [delivery_id(sub.id, f"ce-{i}") for i in (1, 0, 2, 3)]
    for i in range(4):
        stored = await store.get_delivery(delivery_id(sub.id, f"ce-{i}"))
        assert stored is not None and stored.rev == 1 and stored.status == "pending"
    assert await store.claim_delivery(batch[2].id, lease_s=30, now=T0.timestamp()) is not None


async def test_order_per_key_holds_and_releases_and_the_log_filters(store) -> None:
    sub = subscription()
    await store.insert_subscription(sub)
    first, second = delivery(sub, "a", "reg-1", 10.0), delivery(sub, "b", "reg-1", 11.0)
    other = delivery(sub, "c", "reg-2", 12.0)
    for d in (first, second, other):
        await store.add_delivery(d)
    assert (await store.older_unfinished(second)).id == first.id
    assert await store.older_unfinished(first) is None
    assert await store.older_unfinished(other) is None
    second = await store.claim_delivery(second.id, lease_s=30, now=T0.timestamp())
    second.hold(T0.timestamp() + 3600)
    await store.save_delivery(second)
    first = await store.claim_delivery(first.id, lease_s=30, now=T0.timestamp())
    first.succeeded(status_code=204, latency_ms=1, now=T0)
    await store.save_delivery(first)
    assert await store.release_held(sub.id, key="reg-1") == [second.id]
    assert (await store.get_delivery(second.id)).next_attempt_at == 0.0
    log = await store.list_deliveries(sub.id)
    assert [d.event_id for d in log] == ["c", "b", "a"]
    assert [d.event_id for d in await store.list_deliveries(sub.id, status="delivered")] == ["a"]
    since = datetime.fromtimestamp(10.5, UTC)
    ranged = await store.list_deliveries(sub.id, since=since, until=since + timedelta(seconds=1))
    assert [d.event_id for d in ranged] == ["b"]
    assert [d.id for d in await store.deliveries_of_key("reg-2")] == [other.id]
    assert await store.delete_subscription(sub.id)
    assert await store.list_deliveries(sub.id) == []
