"""Part 3: the notification consumer against a plain aiokafka loop sending the same emails.

``N`` ParticipantRegisteredNotice events (confirmed, with a ticket: the email carries the
QR PNG and the .ics) are produced onto the private ``registration.notices.v1`` first. Then, on the same
servers:

- baseline: a plain aiokafka consumer group loop in this process: parse the CloudEvent,
  pick the same message (``intents_for``), render it with the same code
  (``messages.build_email``) and send it through the same SMTP adapter, 8 at a time
  (the service's default number of senders), committing after each batch;
- service: the notification service process, consuming with its own group: dedupe,
  delivery log, senders with leases, the ``NotificationSent`` outbox, its rate limit.

Both rates are measured the same way: from the first email the SMTP capture accepted
to the last (capture file timestamps), so neither side's start-up counts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import MongoClient

from bench.common import wait_for
from bench.stack import BenchStack
from deploy.embedded import SMTP_FROM
from services.notification import messages
from services.notification.channels import SmtpEmailSender
from services.notification.domain import intents_for
from services.notification.settings import SmtpSettings
from services.registration.domain import TicketSigner
from shared.contracts.registration import EventDetails, ParticipantContact
from shared.contracts.registration_notices import ParticipantRegisteredNotice
from shared.envelope import parse, wrap
from shared.topics import REGISTRATION_NOTICES as REGISTRATION  # what notification reads

SENDERS = 8


def registration_events(n: int) -> list[Any]:
    """``n`` confirmed registrations of one event, as the registration service wraps them."""
    now = datetime.now(UTC)
    details = EventDetails(
        event_id="bench-fanout",
        code="BENCHFANOUT",
        title_sw="Mkutano wa Serikali Mtandao (kipimo)",
        title_en="e-Government Conference (benchmark)",
        venue="AICC",
        city="Arusha",
        starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=32),
    )
    signer = TicketSigner(secrets.token_bytes(32))
    out = []
    for i in range(n):
        rid = str(uuid.uuid4())
        event = ParticipantRegisteredNotice(
            registration_id=rid,
            reference=f"MK-B{i:04d}-{secrets.token_hex(3).upper()[:5]}",
            event=details,
            participant=ParticipantContact(
                full_name="Asha Juma Mwinyi",
                email=f"fanout.{i}@bench.go.tz",
                phone="+255712345678",
                language="sw" if i % 2 else "en",
                institution="e-Government Authority",
                position="ICT Officer",
            ),
            status="confirmed",
            cadre="ict_officer",
            ticket=signer.sign(rid),
        )
        out.append(wrap(event, "registration"))
    return out


async def produce(bootstrap: str, outbox: list[Any]) -> None:
    """Put the events on the topic (batched, acks=all), keyed by registration id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                REGISTRATION,
                m.value(),
                key=m.key.encode(),
                headers=[(k, v.encode()) for k, v in m.headers().items()],
            )
            for m in outbox
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def baseline_loop(bootstrap: str, smtp_port: int, n: int, deadline_s: float) -> int:
    """The plain loop: consume, render, send (8 at a time), commit. Returns emails sent."""
    sender = SmtpEmailSender(SmtpSettings(host="127.0.0.1", port=smtp_port))
    consumer = AIOKafkaConsumer(
        REGISTRATION,
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{secrets.token_hex(3)}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    sem = asyncio.Semaphore(SENDERS)
    sent = 0

    async def deliver(record: Any) -> None:
        nonlocal sent
        headers = {k: v.decode() for k, v in record.headers or ()}
        received = parse(headers, record.value, record.key)
        for intent in intents_for(received, sms_enabled=False):
            message = messages.build_email(
                notification_id=intent.key(received.id),
                sender=SMTP_FROM,
                recipient=intent.recipient,
                template=intent.template,
                language=intent.language,
                context=intent.context,
                attachments=list(intent.attachments),
            )
            async with sem:
                await sender.send(message)
            sent += 1

    await consumer.start()
    end = time.monotonic() + deadline_s
    try:
        while sent < n and time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            records = [r for recs in batch.values() for r in recs]
            await asyncio.gather(*(deliver(r) for r in records))
            if records:
                await consumer.commit()
    finally:
        await consumer.stop()
    return sent


def mail_times(stack: BenchStack) -> list[float]:
    """Acceptance times (epoch seconds) of the captured emails, from their file names."""
    return sorted(
        int(e.name.split("-", 1)[0]) / 1e9
        for e in os.scandir(stack.mail_dir)
        if e.name.endswith(".eml")
    )


def clear_mail(stack: BenchStack) -> None:
    for e in os.scandir(stack.mail_dir):
        os.unlink(e.path)


def _rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def run(n: int, timeout_s: float = 600) -> dict[str, Any]:
    """Measure both consumers on the same ``n`` events; returns the results section."""
    with BenchStack("fanout", sms=False) as stack:
        asyncio.run(produce(stack.kafka_bootstrap, registration_events(n)))

        sent = asyncio.run(baseline_loop(stack.kafka_bootstrap, stack.smtp_port, n, timeout_s))
        wait_for(lambda: stack.mail_count() >= n, 30)
        base_times = mail_times(stack)
        clear_mail(stack)

        stack.start_service("notification")
        mongo: MongoClient = MongoClient(stack.mongo_url)
        processed = mongo["mkutano_notification"]["processed_events"]
        try:
            events_done = wait_for(lambda: processed.count_documents({}) >= n, timeout_s, 0.2)
            wait_for(lambda: stack.mail_count() >= n, timeout_s, 0.2)
        finally:
            mongo.close()
        svc_times = mail_times(stack)
        svc_emails = _rate(svc_times)
        base_emails = _rate(base_times)
        svc_events = n / max(1e-6, events_done - svc_times[0]) if events_done > svc_times[0] else 0
        result = {
            "events": n,
            "baseline": {
                "emails_sent": sent,
                "events_per_s": round(base_emails, 1),
                "emails_per_s": round(base_emails, 1),
                "seconds": round(base_times[-1] - base_times[0], 2),
                "note": "plain aiokafka loop: events and emails go together",
            },
            "service": {
                "emails_sent": len(svc_times),
                "events_per_s": round(svc_events, 1) if svc_events else None,
                "events_all_consumed_s": round(events_done - svc_times[0], 2),
                "emails_per_s": round(svc_emails, 1),
                "seconds": round(svc_times[-1] - svc_times[0], 2),
            },
            "emails_ratio": round(svc_emails / base_emails, 3) if base_emails else None,
            "processes": stack.stats(),
        }
        print(
            f"  fan-out n={n}: service {svc_emails:.0f} emails/s, baseline {base_emails:.0f}"
            f" emails/s, ratio {result['emails_ratio']}",
            flush=True,
        )
        return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=1))
