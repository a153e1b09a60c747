"""Every webhooks use case against the in-memory store, with a fixed clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from services.webhooks import handlers
from services.webhooks.domain import delivery_id
from services.webhooks.ports import PostOutcome
from services.webhooks.settings import WebhooksSettings
from shared.contracts.registration import PersonalDataErased, RegistrationCancelled
from shared.envelope import parse, wrap
from shared.errors import DomainError
from tests.unit.fakes.webhooks import FakeMailer, FakeResolver, FakeTransport, FakeWebhooksStore
from tests.unit.test_webhooks_domain import registered

T0 = datetime(2026, 2, 11, 6, 0, tzinfo=UTC)
FAIL = PostOutcome(503, 4, "HTTP 503")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(clock: Clock) -> handlers.Context:
    settings = WebhooksSettings(
        retry_schedule_s=[1.0, 2.0, 4.0],
        retry_jitter=0.0,
        pause_after_failures=5,
        pause_after_failing_s=0,
        secret_overlap_s=3600,
        allowed_targets=["127.0.0.1/32"],
        hold_s=30.0,
    )
    ids = iter(f"sub{i}" for i in range(1, 100))
    return handlers.Context(
        store=FakeWebhooksStore(),
        settings=settings,
        transport=FakeTransport(),
        resolver=FakeResolver(
            {"hooks.example.go.tz": ["196.192.72.10"], "sneaky.example.com": ["10.0.0.5"]}
        ),
        mailer=FakeMailer(),
        clock=clock,
        random_bytes=lambda n: b"r" * n,
        rand=lambda: 0.5,
        new_id=lambda: next(ids),
    )


def spec(**overrides) -> handlers.SubscriptionSpec:
    fields = {
        "url": "https://hooks.example.go.tz/mkutano",
        "event_types": ["tz.go.ega.registration.*"],
        "label": "TSMS",
        "owner_email": "ict@example.go.tz",
    }
    fields.update(overrides)
    return handlers.SubscriptionSpec(**fields)


def received(event=None, event_id: str | None = None):
    message = wrap(event or registered(), "registration", event_id=event_id)
    return parse(message.headers(), message.value(), message.key.encode())


def cancelled(event_id: str | None = None):
    base = registered().model_dump()
    for k in ("cadre", "registered_at", "waitlist_position", "ticket"):
        base.pop(k)
    event = RegistrationCancelled(
        **{**base, "status": "cancelled"}, cancelled_at=T0, cancelled_by="participant"
    )
    return received(event, event_id)


# --------------------------------------------------------------------------- subscriptions


async def test_create_shows_the_secret_once_and_stores_the_subscription(ctx) -> None:
    subscription, secret = await handlers.create_subscription(ctx, spec(), by="admin")
    assert secret.startswith("whsec_") and subscription.status == "active"
    assert subscription.personal_data is None
    stored = await handlers.get_subscription(ctx, subscription.id)
    assert stored.url == "https://hooks.example.go.tz/mkutano"
    assert [s.id for s in await handlers.list_subscriptions(ctx)] == [subscription.id]


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3/hook", "http://192.168.1.10/hook", "http://169.254.169.254/latest",
     "http://[::1]:8080/x", "http://127.0.0.2/x"],
)  # fmt: skip
async def test_a_literal_private_target_is_refused_without_any_lookup(ctx, url: str) -> None:
    with pytest.raises(DomainError) as err:
        await handlers.create_subscription(ctx, spec(url=url), by="admin")
    assert err.value.code == "target_not_allowed"
    assert ctx.resolver.lookups == [] and ctx.transport.posts == []
    assert await handlers.list_subscriptions(ctx) == []


async def test_a_name_resolving_to_a_private_address_or_to_nothing_is_refused(ctx) -> None:
    with pytest.raises(DomainError) as err:
        await handlers.create_subscription(ctx, spec(url="https://sneaky.example.com/"), by="a")
    assert err.value.code == "target_not_allowed"
    with pytest.raises(DomainError) as err:
        await handlers.create_subscription(ctx, spec(url="https://nowhere.invalid/"), by="a")
    assert err.value.code == "target_unresolvable"


async def test_the_allow_list_lets_the_dev_receiver_in(ctx) -> None:
    subscription, _ = await handlers.create_subscription(
        ctx, spec(url="http://127.0.0.1:9999/hook"), by="admin"
    )
    assert subscription.url == "http://127.0.0.1:9999/hook"


async def test_unknown_event_types_and_purposeless_grants_are_refused(ctx) -> None:
    with pytest.raises(DomainError) as err:
        await handlers.create_subscription(ctx, spec(event_types=["tz.go.ega.nope.*"]), by="a")
    assert err.value.code == "invalid_event_type"
    with pytest.raises(DomainError) as err:
        await handlers.create_subscription(ctx, spec(personal_data_purpose=" "), by="a")
    assert err.value.code == "purpose_required"


async def test_get_of_an_unknown_subscription(ctx) -> None:
    with pytest.raises(DomainError) as err:
        await handlers.get_subscription(ctx, "nope")
    assert err.value.code == "subscription_not_found"


async def test_pause_and_resume(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    paused = await handlers.pause_subscription(ctx, subscription.id)
    assert paused.status == "paused" and paused.paused_reason == "paused by an admin"
    with pytest.raises(DomainError) as err:
        await handlers.pause_subscription(ctx, subscription.id)
    assert err.value.code == "subscription_paused"
    assert (await handlers.resume_subscription(ctx, subscription.id)).status == "active"
    with pytest.raises(DomainError) as err:
        await handlers.resume_subscription(ctx, subscription.id)
    assert err.value.code == "subscription_active"


async def test_delete_removes_the_subscription_and_its_log(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    await handlers.record_event(ctx, received())
    await handlers.delete_subscription(ctx, subscription.id)
    assert ctx.store.deliveries == {}
    with pytest.raises(DomainError) as err:
        await handlers.delete_subscription(ctx, subscription.id)
    assert err.value.code == "subscription_not_found"


async def test_rotation_signs_with_both_secrets_during_the_overlap(ctx, clock) -> None:
    clock.now = datetime.now(UTC)  # the library checks the timestamp against its clock
    subscription, old = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.random_bytes = lambda n: b"n" * n
    _, new, until = await handlers.rotate_secret(ctx, subscription.id)
    assert new != old and until == clock.now + timedelta(hours=1)
    await handlers.record_event(ctx, received(event_id="ce-rot"))
    assert (await handlers.deliver(ctx, delivery_id(subscription.id, "ce-rot"))).outcome == (
        "delivered"
    )
    post = ctx.transport.posts[-1]
    signatures = post.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for secret in (old, new):  # a receiver with either secret verifies
        Webhook(secret).verify(post.body, post.headers)


# --------------------------------------------------------------------------- consuming


async def test_an_event_is_recorded_once_per_matching_subscription(ctx) -> None:
    a, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    await handlers.create_subscription(
        ctx, spec(event_types=["tz.go.ega.resolutions.*"]), by="admin"
    )
    event = received(event_id="ce-1")
    assert await handlers.record_event(ctx, event) == 1
    assert await handlers.record_event(ctx, event) == 0, "a redelivered record adds nothing"
    assert list(ctx.store.deliveries) == [delivery_id(a.id, "ce-1")]
    assert ctx.store.reported == [delivery_id(a.id, "ce-1")], "the senders were told"


async def test_a_batch_is_recorded_in_one_write_once_per_matching_subscription(ctx) -> None:
    a, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    b, _ = await handlers.create_subscription(
        ctx, spec(event_types=["tz.go.ega.resolutions.*"]), by="admin"
    )
    await handlers.record_event(ctx, received(event_id="ce-0"))  # recorded before
    batch = [received(event_id=f"ce-{i}") for i in range(3)]
    assert await handlers.record_events(ctx, batch) == 2, "ce-0 was there already"
    assert ctx.store.bulk_writes == 1
    assert sorted(ctx.store.deliveries) == sorted(delivery_id(a.id, f"ce-{i}") for i in range(3))
    assert ctx.store.reported == [delivery_id(a.id, f"ce-{i}") for i in range(3)]
    stamps = [ctx.store.deliveries[delivery_id(a.id, f"ce-{i}")].recorded_at for i in range(3)]
    assert stamps[0] < stamps[1] < stamps[2], "each event its own time: the order per key"
    assert await handlers.record_events(ctx, batch) == 0, "a redelivered batch adds nothing"
    assert not any(d.subscription_id == b.id for d in ctx.store.deliveries.values())


async def test_without_the_grant_the_payload_names_nobody(ctx) -> None:
    plain, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    granted, _ = await handlers.create_subscription(
        ctx, spec(personal_data_purpose="CPD certificates"), by="admin"
    )
    await handlers.record_event(ctx, received(event_id="ce-p"))
    for sub in (plain, granted):
        await handlers.deliver(ctx, delivery_id(sub.id, "ce-p"))
    assert len(ctx.transport.posts) == 2
    plain_text = ctx.transport.posts[0].body.decode()
    granted_text = ctx.transport.posts[1].body.decode()
    for personal in ("Asha Juma Mwinyi", "asha.juma@example.go.tz", "+255712345678"):
        assert personal not in plain_text
        assert personal in granted_text
    assert json.loads(plain_text)["personaldata"] == "omitted"
    assert "personaldata" not in json.loads(granted_text)


# --------------------------------------------------------------------------- delivering


async def test_a_delivery_is_posted_as_a_signed_structured_cloudevent(ctx, clock) -> None:
    clock.now = datetime.now(UTC)
    subscription, secret = await handlers.create_subscription(ctx, spec(), by="admin")
    await handlers.record_event(ctx, received(event_id="ce-2"))
    result = await handlers.deliver(ctx, delivery_id(subscription.id, "ce-2"))
    assert result.outcome == "delivered" and result.due_at is None
    (post,) = ctx.transport.posts
    assert post.url == subscription.url
    assert post.headers["content-type"] == "application/cloudevents+json"
    assert post.headers["webhook-id"] == "ce-2"
    event = Webhook(secret).verify(post.body, post.headers)
    assert event["data"]["registration_id"] == "reg-1"
    delivery = await handlers.get_delivery(ctx, subscription.id, "ce-2")
    assert delivery.status == "delivered" and delivery.attempts_count == 1
    assert delivery.attempts[0].status_code == 200 and delivery.attempts[0].error is None
    assert (await handlers.deliver(ctx, delivery.id)).outcome == "not_due"


async def test_every_attempt_is_counted_for_the_metrics(ctx) -> None:
    seen: list[tuple[str, int]] = []
    ctx.on_attempt = lambda outcome, latency_ms: seen.append((outcome, latency_ms))
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.outcomes = [FAIL]
    await handlers.record_event(ctx, received(event_id="ce-m1"))
    await handlers.deliver(ctx, delivery_id(subscription.id, "ce-m1"))
    assert seen == [("retrying", 4)]


async def test_failures_are_retried_on_the_schedule_then_given_up(ctx, clock) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.default = FAIL
    await handlers.record_event(ctx, received(event_id="ce-3"))
    did = delivery_id(subscription.id, "ce-3")
    first = await handlers.deliver(ctx, did)
    assert first.outcome == "retrying" and first.due_at == T0.timestamp() + 1.0
    assert (await handlers.deliver(ctx, did)).outcome == "not_due", "waits its backoff"
    for wait in (1.0, 2.0):
        clock.advance(wait)
        assert (await handlers.deliver(ctx, did)).outcome == "retrying"
    clock.advance(4.0)
    assert (await handlers.deliver(ctx, did)).outcome == "failed"
    delivery = await handlers.get_delivery(ctx, subscription.id, "ce-3")
    assert delivery.status == "failed" and delivery.attempts_count == 4
    assert delivery.last_error == "HTTP 503"
    assert [a.status_code for a in delivery.attempts] == [503] * 4
    assert (await handlers.get_subscription(ctx, subscription.id)).consecutive_failures == 4


async def test_order_is_kept_per_key_and_other_keys_go_on(ctx, clock) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.outcomes = [FAIL]
    await handlers.record_event(ctx, received(event_id="first"))
    await handlers.record_event(ctx, cancelled(event_id="second"))
    other = registered().model_copy(update={"registration_id": "reg-2"})
    await handlers.record_event(ctx, received(other, event_id="other-key"))
    sid = subscription.id
    assert (await handlers.deliver(ctx, delivery_id(sid, "first"))).outcome == "retrying"
    held = await handlers.deliver(ctx, delivery_id(sid, "second"))
    assert held.outcome == "held", "an older event of the key is pending retry"
    assert (await handlers.deliver(ctx, delivery_id(sid, "other-key"))).outcome == "delivered"
    clock.advance(1.0)
    ctx.store.reported.clear()
    assert (await handlers.deliver(ctx, delivery_id(sid, "first"))).outcome == "delivered"
    assert ctx.store.reported == [delivery_id(sid, "second")], "released when the older is done"
    assert (await handlers.deliver(ctx, delivery_id(sid, "second"))).outcome == "delivered"
    sent = [json.loads(p.body)["id"] for p in ctx.transport.posts]
    assert sent == ["first", "other-key", "first", "second"]


async def test_a_run_of_failures_pauses_the_subscription_and_tells_the_owner(ctx, clock) -> None:
    ctx.settings.pause_after_failures = 3
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.default = FAIL
    for i in range(3):
        other = registered().model_copy(update={"registration_id": f"reg-{i}"})
        await handlers.record_event(ctx, received(other, event_id=f"ce-{i}"))
        await handlers.deliver(ctx, delivery_id(subscription.id, f"ce-{i}"))
    paused = await handlers.get_subscription(ctx, subscription.id)
    assert paused.status == "paused" and not paused.owner_notice_pending
    assert [s.owner_email for s in ctx.mailer.sent] == ["ict@example.go.tz"]
    # Paused: due deliveries wait, new events are recorded and wait too.
    clock.advance(10)
    assert (await handlers.deliver(ctx, delivery_id(subscription.id, "ce-0"))).outcome == "held"
    fresh = registered().model_copy(update={"registration_id": "reg-9"})
    await handlers.record_event(ctx, received(fresh, event_id="ce-new"))
    assert (await handlers.deliver(ctx, delivery_id(subscription.id, "ce-new"))).outcome == "held"
    posts = len(ctx.transport.posts)
    ctx.transport.default = PostOutcome(204, 3)
    ctx.store.reported.clear()
    await handlers.resume_subscription(ctx, subscription.id)
    assert set(ctx.store.reported) == {
        delivery_id(subscription.id, "ce-0"),
        delivery_id(subscription.id, "ce-new"),
    }
    assert (await handlers.deliver(ctx, delivery_id(subscription.id, "ce-new"))).outcome == (
        "delivered"
    )
    assert len(ctx.transport.posts) == posts + 1


async def test_an_owner_notice_that_could_not_go_is_sent_later(ctx) -> None:
    ctx.settings.pause_after_failures = 1
    ctx.mailer.fail = True
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.default = FAIL
    await handlers.record_event(ctx, received(event_id="ce-m"))
    await handlers.deliver(ctx, delivery_id(subscription.id, "ce-m"))
    assert (await handlers.get_subscription(ctx, subscription.id)).owner_notice_pending
    assert await handlers.notify_owners(ctx) == 0
    ctx.mailer.fail = False
    assert await handlers.notify_owners(ctx) == 1
    assert await handlers.notify_owners(ctx) == 0, "told once"
    assert len(ctx.mailer.sent) == 1


async def test_a_target_that_resolves_privately_later_is_refused_at_delivery(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.resolver.table["hooks.example.go.tz"] = ["169.254.169.254"]  # DNS changed
    await handlers.record_event(ctx, received(event_id="ce-r"))
    assert (await handlers.deliver(ctx, delivery_id(subscription.id, "ce-r"))).outcome == (
        "retrying"
    )
    assert ctx.transport.posts == [], "nothing was sent"
    delivery = await handlers.get_delivery(ctx, subscription.id, "ce-r")
    assert delivery.last_error == "target refused: target_not_allowed"


async def test_a_delivery_of_a_deleted_subscription_is_dropped(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    await handlers.record_event(ctx, received(event_id="ce-d"))
    did = delivery_id(subscription.id, "ce-d")
    ctx.store.subscriptions.clear()
    assert (await handlers.deliver(ctx, did)).outcome == "orphaned"
    assert ctx.transport.posts == []


# --------------------------------------------------------------------------- log and replay


async def test_the_delivery_log_and_its_filters(ctx, clock) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.outcomes = [PostOutcome(500, 7, "HTTP 500")]
    for i in range(2):
        other = registered().model_copy(update={"registration_id": f"reg-{i}"})
        await handlers.record_event(ctx, received(other, event_id=f"log-{i}"))
        clock.advance(1)
        await handlers.deliver(ctx, delivery_id(subscription.id, f"log-{i}"))
    log = await handlers.list_deliveries(ctx, subscription.id)
    assert [d.event_id for d in log] == ["log-1", "log-0"], "newest first"
    assert [d.status for d in log] == ["delivered", "pending"]
    assert log[1].attempts[0].latency_ms == 7 and log[1].last_error == "HTTP 500"
    pending = await handlers.list_deliveries(ctx, subscription.id, status="pending")
    assert [d.event_id for d in pending] == ["log-0"]
    with pytest.raises(DomainError) as err:
        await handlers.get_delivery(ctx, subscription.id, "nope")
    assert err.value.code == "delivery_not_found"
    with pytest.raises(DomainError):
        await handlers.list_deliveries(ctx, "nope")


async def test_replay_one_delivery_sends_it_again_with_the_same_id(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    await handlers.record_event(ctx, received(event_id="ce-again"))
    did = delivery_id(subscription.id, "ce-again")
    await handlers.deliver(ctx, did)
    replayed = await handlers.replay_delivery(ctx, subscription.id, "ce-again")
    assert replayed.status == "pending" and replayed.replays == 1
    assert (await handlers.deliver(ctx, did)).outcome == "delivered"
    ids = [p.headers["webhook-id"] for p in ctx.transport.posts]
    assert ids == ["ce-again", "ce-again"]


async def test_replay_a_time_range_of_failed_deliveries(ctx, clock) -> None:
    ctx.settings.retry_schedule_s = []
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.transport.default = FAIL
    for i in range(3):
        other = registered().model_copy(update={"registration_id": f"reg-{i}"})
        await handlers.record_event(ctx, received(other, event_id=f"r-{i}"))
        await handlers.deliver(ctx, delivery_id(subscription.id, f"r-{i}"))
        clock.advance(60)
    assert all(d.status == "failed" for d in await handlers.list_deliveries(ctx, subscription.id))
    count = await handlers.replay_range(
        ctx, subscription.id, since=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=150)
    )
    assert count == 2
    pending = await handlers.list_deliveries(ctx, subscription.id, status="pending")
    assert sorted(d.event_id for d in pending) == ["r-1", "r-2"]
    with pytest.raises(DomainError) as err:
        await handlers.replay_range(ctx, subscription.id, since=T0, until=T0 - timedelta(1))
    assert err.value.code == "invalid_dates"


# --------------------------------------------------------------------------- erasure and sandbox


async def test_an_erasure_removes_the_personal_data_from_stored_payloads(ctx) -> None:
    granted, _ = await handlers.create_subscription(
        ctx, spec(personal_data_purpose="CPD certificates"), by="admin"
    )
    ctx.transport.default = FAIL
    await handlers.record_event(ctx, received(event_id="ce-e"))
    await handlers.deliver(ctx, delivery_id(granted.id, "ce-e"))
    erased = PersonalDataErased(
        registration_id="reg-1", event_id="egov-2026", reason="participant_request", erased_at=T0
    )
    assert await handlers.erase_personal_data(ctx, received(erased)) == 1
    delivery = await handlers.get_delivery(ctx, granted.id, "ce-e")
    assert not delivery.personal_data
    assert "Asha" not in json.dumps(delivery.data)
    assert delivery.data["participant"] == {
        "language": "sw",
        "institution": "e-Government Authority",
    }
    assert await handlers.erase_personal_data(ctx, received(erased)) == 0


async def test_a_sandboxed_stack_delivers_to_its_allow_list_only_and_looks_nothing_up(ctx) -> None:
    ctx.settings.allowed_targets_only = True
    for url in ("https://hooks.example.go.tz/x", "http://196.192.72.10/x"):
        with pytest.raises(DomainError) as err:
            await handlers.create_subscription(ctx, spec(url=url), by="admin")
        assert err.value.code == "target_not_allowed"
    assert ctx.resolver.lookups == []
    await handlers.create_subscription(ctx, spec(url="http://127.0.0.1:1/x"), by="admin")


async def test_change_a_subscription_checked_as_at_creation(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    ctx.resolver.lookups.clear()
    changed = await handlers.change_subscription(
        ctx,
        subscription.id,
        handlers.SubscriptionChange(
            event_types=["tz.go.ega.resolutions.*"], label="TSMS (resolutions)"
        ),
    )
    assert (
        changed.event_types == ["tz.go.ega.resolutions.*"] and changed.label == "TSMS (resolutions)"
    )
    assert changed.url == subscription.url
    for bad in (
        handlers.SubscriptionChange(url="http://10.1.2.3/x"),
        handlers.SubscriptionChange(event_types=["nope"]),
    ):
        with pytest.raises(DomainError):
            await handlers.change_subscription(ctx, subscription.id, bad)
    assert ctx.resolver.lookups == [], "a literal private address needs no lookup"
    assert await handlers.record_event(ctx, received(event_id="after-change")) == 0


async def test_grant_and_revoke_personal_data(ctx) -> None:
    subscription, _ = await handlers.create_subscription(ctx, spec(), by="admin")
    granted = await handlers.grant_personal_data(
        ctx, subscription.id, purpose="Enrol officers in TSMS", by="key-1"
    )
    assert granted.personal_data.purpose == "Enrol officers in TSMS"
    assert granted.personal_data.granted_by == "key-1"
    await handlers.record_event(ctx, received(event_id="with"))
    revoked = await handlers.revoke_personal_data(ctx, subscription.id)
    assert revoked.personal_data is None
    await handlers.record_event(ctx, received(event_id="without"))
    with_data = await handlers.get_delivery(ctx, subscription.id, "with")
    without = await handlers.get_delivery(ctx, subscription.id, "without")
    assert with_data.personal_data and "Asha" in json.dumps(with_data.data)
    assert not without.personal_data and "Asha" not in json.dumps(without.data)
    with pytest.raises(DomainError) as err:
        await handlers.revoke_personal_data(ctx, subscription.id)
    assert err.value.code == "personal_data_not_granted"
    with pytest.raises(DomainError) as err:
        await handlers.grant_personal_data(ctx, subscription.id, purpose=" ", by="k")
    assert err.value.code == "purpose_required"
