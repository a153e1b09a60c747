"""Notification under failure, each against its own notification instance(s).

The instances get their own database, their own consumer group (started at the end of
the topics, so they do not replay what other tests published) and their own SMTP server
in the test. The session platform's notification service consumes the same events in
its own group and sends its copies to the session capture: nothing here counts those.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import secrets
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiosmtpd.smtp import SMTP, Envelope, Session

from deploy.embedded import LOCALHOST, free_port
from shared.contracts import registration as reg
from shared.contracts.base import IntegrationEvent
from shared.topics import (
    NOTIFICATION,
    PAYMENTS_NOTICES,
    REGISTRATION,
    REGISTRATION_NOTICES,
    RESOLUTIONS,
    RESOLUTIONS_NOTICES,
)
from tests.e2e.test_notification_flows import (
    api,
    contact,
    event_details,
    publish,
    registration,
    template_of,
    to,
)
from tests.helpers import TopicReader, cloudevent_headers
from tests.stack import unique_suffix, wait_until

pytestmark = pytest.mark.e2e


async def group_at_end(bootstrap: str) -> str:
    """A fresh consumer group whose committed offsets are the current ends of the topics
    the notification service consumes: it sees only what is published from now on."""
    group = f"notification-t-{secrets.token_hex(4)}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            # Every topic notification reads (services/notification/consumers.py).
            for topic in (
                REGISTRATION_NOTICES,
                RESOLUTIONS_NOTICES,
                REGISTRATION,
                RESOLUTIONS,
                PAYMENTS_NOTICES,
            )
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: offset for tp, offset in ends.items()})
    finally:
        await consumer.stop()
    return group


async def own_notification(start_service, bootstrap: str, **env: str) -> tuple[Any, dict]:
    """Start a notification instance with its own database and consumer group."""
    overrides = {
        "db_suffix": unique_suffix(),
        "NOTIFICATION_CONSUMER_GROUP": await group_at_end(bootstrap),
        "NOTIFICATION_RETRY_BASE_S": "0.2",
        "NOTIFICATION_RETRY_MAX_S": "1",
        "NOTIFICATION_SEND_LEASE_S": "5",
        **env,
    }
    return await start_service("notification", **overrides), overrides


async def publish_many(bootstrap: str, events: list[IntegrationEvent]) -> None:
    """Publish events with one producer (one record each, in order)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sends = [
            await producer.send(
                e.topic,
                value=e.model_dump_json().encode(),
                key=e.aggregate_id.encode(),
                headers=[(k, v.encode()) for k, v in cloudevent_headers(e.ce_type()).items()],
            )
            for e in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


class SmtpServer:
    """A real SMTP server in the test's loop: refuses ``nobody*`` mailboxes with 550,
    keeps the rest; ``stop()``/``start()`` make an outage on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Any] = []
        self._server: asyncio.Server | None = None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.lower().startswith("nobody"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content
        parser = email.parser.BytesParser(policy=email.policy.default)
        self.received.append(parser.parsebytes(raw if isinstance(raw, bytes) else raw.encode()))
        return "250 Message accepted"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self), LOCALHOST, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def matching(self, predicate: Callable[[Any], bool]) -> list[Any]:
        return [m for m in self.received if predicate(m)]

    async def wait_for(
        self,
        predicate: Callable[[Any], bool],
        *,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (bounds a poll)
    ) -> list[Any]:
        """Wait until ``count`` received messages match; return them."""

        def found() -> list[Any] | None:
            hits = self.matching(predicate)
            return hits if len(hits) >= count else None

        return await wait_until(found, timeout=timeout, message=f"{count} matching email(s)")


async def log_of(handle, headers: dict, **params: str) -> list[dict]:
    r = await api(handle.url, "GET", "/api/v1/notifications", headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_smtp_outage_is_retried_and_an_unknown_mailbox_fails_at_once(
    start_service, kafka, admin_key
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    smtp = SmtpServer()
    await smtp.start()
    try:
        handle, _ = await own_notification(
            start_service, kafka.bootstrap, SMTP_PORT=str(smtp.port), SMS_GATEWAY_URL=""
        )
        await smtp.stop()  # the relay goes down
        event = event_details()
        person = contact("en")
        first = registration(event=event, person=person, ticket="t.z")
        await publish(kafka.bootstrap, first)

        async def retrying() -> dict | None:
            entries = await log_of(handle, headers, registration_id=first.registration_id)
            return entries[0] if entries and entries[0]["attempts"] >= 2 else None

        entry = await wait_until(retrying, timeout=15)
        assert entry["status"] in ("retry", "sending") and entry["last_error"]
        assert not smtp.received

        await smtp.start()  # back on the same port
        await wait_until(lambda: smtp.matching(to(person["email"])), timeout=15)

        async def sent() -> dict | None:
            entries = await log_of(handle, headers, registration_id=first.registration_id)
            return entries[0] if entries[0]["status"] == "sent" else None

        entry = await wait_until(sent, timeout=10)
        assert entry["attempts"] >= 3
        (mail,) = smtp.matching(to(person["email"]))
        assert template_of(mail) == "confirmation"
        assert {p.get_content_type() for p in mail.iter_attachments()} == {
            "image/png",
            "text/calendar",
        }

        # A mailbox the server does not know: failed at once, not retried, and published.
        nobody = contact("sw", email=f"nobody.{uuid.uuid4().hex[:8]}@example.go.tz")
        second = registration(event=event, person=nobody)
        await publish(kafka.bootstrap, second)

        async def failed() -> dict | None:
            entries = await log_of(handle, headers, registration_id=second.registration_id)
            return entries[0] if entries and entries[0]["status"] == "failed" else None

        entry = await wait_until(failed, timeout=15)
        assert entry["attempts"] == 1 and "550" in entry["last_error"]
        async with TopicReader(kafka.bootstrap, [NOTIFICATION]) as reader:
            (record,) = await reader.wait_for(
                lambda r: r.key == entry["id"] and r.ce_type.endswith("NotificationFailed.v1")
            )
        assert record.value["permanent"] is True and "550" in record.value["error"]
        failed_only = await log_of(handle, headers, status="failed")
        assert [e["id"] for e in failed_only] == [entry["id"]]
    finally:
        await smtp.stop()


@pytest.fixture
async def smtp_server() -> Any:
    """An SMTP server of the test's own (see SmtpServer)."""
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_two_instances_share_the_work_and_one_stopping_loses_nothing(
    start_service, kafka, smtp_server, admin_key
) -> None:
    smtp = smtp_server
    first, env = await own_notification(
        start_service, kafka.bootstrap, SMS_GATEWAY_URL="", SMTP_PORT=str(smtp.port)
    )
    second = await start_service("notification", **env)  # same database, same group
    event = event_details()
    domain = f"burst-{secrets.token_hex(3)}.go.tz"
    people = [contact("sw", email=f"p{i}@{domain}") for i in range(60)]
    events = [registration(event=event, person=p) for p in people]
    await publish_many(kafka.bootstrap, events[:30])

    def burst_mails() -> list:
        return smtp.matching(lambda m: str(m["To"]).endswith("@" + domain))

    await wait_until(lambda: len(burst_mails()) >= 5, timeout=20)
    await first.stop(signal.SIGTERM)  # mid-burst
    await publish_many(kafka.bootstrap, events[30:])
    await wait_until(lambda: len(burst_mails()) >= 60, timeout=40)
    await asyncio.sleep(1.0)  # anything sent twice would show up right behind
    mails = burst_mails()
    per_recipient: dict[str, int] = {}
    for m in mails:
        per_recipient[str(m["To"])] = per_recipient.get(str(m["To"]), 0) + 1
    assert sorted(per_recipient) == sorted(p["email"] for p in people)
    assert set(per_recipient.values()) == {1}
    assert len({m["X-Mkutano-Notification"] for m in mails}) == 60
    # Both instances did part of the work (each logs the ids it sent, never addresses).
    ids = {str(m["X-Mkutano-Notification"]) for m in mails}
    by_first = {i for i in ids if f'"notification_id": "{i}"' in first.logs()}
    by_second = {i for i in ids if f'"notification_id": "{i}"' in second.logs()}
    assert by_first and by_second and by_first | by_second == ids
    headers = {"Authorization": f"Bearer {admin_key}"}
    sent = await log_of(second, headers, status="sent", limit="500")
    assert (
        len([e for e in sent if e["cause_event_type"].endswith("ParticipantRegisteredNotice.v1")])
        == 60
    )


async def test_reminders_fire_once_across_a_restart_of_two_instances(
    start_service, kafka, smtp_server, admin_key
) -> None:
    smtp = smtp_server
    headers = {"Authorization": f"Bearer {admin_key}"}
    first, env = await own_notification(
        start_service,
        kafka.bootstrap,
        SMS_GATEWAY_URL="",
        SMTP_PORT=str(smtp.port),
        NOTIFICATION_REMINDER_POLL_S="0.2",
    )
    second = await start_service("notification", **env)  # same database, same group
    # An event starting in 80 s with one rule 60 s before: due 20 s from now.
    event = event_details(starts_in_s=80)
    path = f"/api/v1/events/{event['event_id']}/reminder-rules"
    r = await api(first.url, "PUT", path, headers, json={"offsets_s": [60]})
    assert r.status_code == 200 and r.json()["reminders"] == []  # event not known yet
    details = reg.EventDetails.model_validate(event)
    published = reg.EventPublished(
        event_id=event["event_id"], event=details, capacity=10, state="published"
    )
    confirmed = [contact("en"), contact("sw")]
    cancelled, rejected = contact("sw"), contact("en")
    events: list[IntegrationEvent] = [published]
    events += [registration(event=event, person=p) for p in confirmed]
    c = registration(event=event, person=cancelled)
    events += [
        c,
        registration(
            reg.RegistrationCancelled,
            event=event,
            person=cancelled,
            registration_id=c.registration_id,
            status="cancelled",
        ),
    ]
    events.append(
        registration(reg.RegistrationRejected, event=event, person=rejected, status="rejected")
    )
    await publish_many(kafka.bootstrap, events)
    await smtp.wait_for(lambda m: to(cancelled["email"])(m) and template_of(m) == "cancelled")
    for p in confirmed:
        await smtp.wait_for(to(p["email"]))

    async def scheduled() -> dict | None:
        view = (await api(second.url, "GET", path, headers)).json()
        return view if view["reminders"] else None

    (reminder,) = (await wait_until(scheduled, timeout=10))["reminders"]
    assert reminder["status"] == "pending" and reminder["offset_s"] == 60
    due = datetime.fromisoformat(reminder["due_at"].replace("Z", "+00:00"))
    assert due - datetime.now(UTC) > timedelta(seconds=5), "too late to test a restart"

    # Both instances go down before the reminder is due (a crash: SIGKILL), then start
    # again one after the other. (On the embedded broker, members that left a group with
    # SIGTERM right after a rebalance can leave the next join waiting; expiry does not.)
    first.kill()
    second.kill()
    await first.restart()
    await second.restart()

    reminded = await smtp.wait_for(
        lambda m: template_of(m) == "reminder" and str(m["To"]) in {p["email"] for p in confirmed},
        count=2,
        timeout=40,
    )
    await asyncio.sleep(1.0)  # a second firing would show up right behind
    reminders = smtp.matching(lambda m: template_of(m) == "reminder")
    for p in confirmed:
        assert len([m for m in reminders if to(p["email"])(m)]) == 1
    for p in (cancelled, rejected):
        assert not [m for m in reminders if to(p["email"])(m)]
    en = next(m for m in reminded if to(confirmed[0]["email"])(m))
    assert str(en["Subject"]).startswith("Reminder: e-Government Seminar starts shortly")
    view = (await api(first.url, "GET", path, headers)).json()
    assert [(x["status"], x["notifications"]) for x in view["reminders"]] == [("done", 2)]
