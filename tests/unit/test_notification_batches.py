"""Notification in batches and rendering off the event loop (issue 19).

The batch handler (``handlers.record_registration_events``) must leave the same
projection and delivery log as the events applied one by one, in their order; the
emails rendered in the worker processes must be the emails rendered in the event loop;
the QR ticket is rendered once per ticket.
"""

from __future__ import annotations

import email.parser
import email.policy
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import icalendar
import segno

from services.notification import handlers, messages, workers
from services.notification.domain import Candidate
from shared.contracts.registration_notices import (
    RegistrationCancelledNotice,
    RegistrationUpdatedNotice,
)
from tests.unit.test_notification_handlers import NOW, Env, contact, received, registered


def snapshot(env: Env) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    log = sorted((n.cause_event_id, n.channel, n.template, n.recipient) for n in env.log())
    return env.store.participants, log


def events() -> list[Any]:
    """Registrations of three people, one of them updated then cancelled in the batch."""
    r2 = registered(2)
    updated = RegistrationUpdatedNotice(
        **{
            **r2.model_dump(),
            "participant": contact(2, full_name="Asha Juma Mpya"),
            "changed_fields": ["full_name"],
        }
    )
    cancelled = RegistrationCancelledNotice(
        **{
            **updated.model_dump(exclude={"changed_fields"}),
            "status": "cancelled",
            "ticket": None,
            "cancelled_at": NOW,
            "cancelled_by": "participant",
        }
    )
    return [
        received(registered(1), "ce-1"),
        received(r2, "ce-2"),
        received(registered(3), "ce-3"),
        received(updated, "ce-4"),
        received(cancelled, "ce-5"),
    ]


async def test_a_batch_leaves_the_projection_and_log_that_one_by_one_leaves() -> None:
    one_by_one, batched = Env(), Env()
    for r in events():
        await handlers.record_registration_event(one_by_one.ctx, r)
    await handlers.record_registration_events(batched.ctx, events())
    assert snapshot(batched) == snapshot(one_by_one)
    assert batched.store.participants["reg-2"]["status"] == "cancelled"
    assert batched.store.participants["reg-2"]["contact"]["full_name"] == "Asha Juma Mpya"
    # A replay of the whole batch (a crash before the commit) adds nothing.
    before = snapshot(batched)
    await handlers.record_registration_events(batched.ctx, events())
    assert snapshot(batched) == before


async def test_an_erased_participant_in_a_batch_gets_no_message_and_the_others_do() -> None:
    env = Env()
    env.store.participants["reg-2"] = {"erased": True}
    await handlers.record_registration_events(env.ctx, events()[:3])
    assert {n.cause_event_id for n in env.log()} == {"ce-1", "ce-3"}


def test_the_qr_ticket_is_rendered_once_per_ticket(monkeypatch) -> None:  # noqa: ANN001
    made: list[str] = []
    real = segno.make_qr

    def counting(content: str, **kw: Any) -> Any:
        made.append(content)
        return real(content, **kw)

    monkeypatch.setattr(segno, "make_qr", counting)
    messages.qr_png.cache_clear()
    first = messages.qr_png("MK1TICKETA")
    assert messages.qr_png("MK1TICKETA") == first  # a resend, a reminder: the same PNG
    messages.qr_png("MK1TICKETB")
    assert made == ["MK1TICKETA", "MK1TICKETB"]


def parts(message: Any) -> tuple[Any, ...]:
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(message.as_bytes())
    attachments = sorted((p.get_content_type(), p.get_content()) for p in parsed.iter_attachments())
    body = parsed.get_body(("plain",)).get_content()
    return parsed["Subject"], parsed["To"], parsed["Message-ID"], body, attachments


async def test_an_email_rendered_in_the_worker_processes_is_the_one_rendered_here() -> None:
    here, pooled = Env(), Env()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pooled.ctx.render_pool = pool
    try:
        for env in (here, pooled):
            await handlers.record_registration_event(env.ctx, received(registered(1)))
            (n,) = env.log(channel="email")
            claimed = await handlers.claim(env.ctx, Candidate(n.id, "pending", 0.0))
            assert claimed is not None
            await handlers.deliver(env.ctx, claimed)
    finally:
        pool.shutdown()
    (a,), (b,) = here.email.sent, pooled.email.sent
    assert parts(a) == parts(b)
    assert {c for c, _ in parts(b)[4]} == {"image/png", "text/calendar"}
    assert pooled.log(channel="email")[0].status == "sent"


async def test_a_broken_render_pool_renders_in_the_event_loop() -> None:
    env = Env()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.shutdown()
    env.ctx.render_pool = pool
    await handlers.record_registration_event(env.ctx, received(registered(1)))
    (n,) = env.log(channel="email")
    claimed = await handlers.claim(env.ctx, Candidate(n.id, "pending", 0.0))
    assert claimed is not None
    await handlers.deliver(env.ctx, claimed)
    assert len(env.email.sent) == 1 and env.log(channel="email")[0].status == "sent"


# --------------------------------------------------------------------------- idle claims


async def test_idle_reminder_claims_back_off_and_a_reminder_scheduled_here_brings_one_forward(
    monkeypatch,  # noqa: ANN001
) -> None:
    env = Env(reminder_poll_s=1.0, reminder_max_poll_s=16.0)
    worker = workers.ReminderWorker(env.ctx, env.store.signal)
    for _ in range(6):
        worker.scans.scanned(False)  # six claims that found nothing
    now = env.clock().timestamp()
    assert worker.wait_s(now) == 16.0  # idle: one claim every 16 s, not every second
    # The confirmation schedules the event's reminders (7 days and 1 day before).
    await handlers.record_registration_event(env.ctx, received(registered(1)))
    due = sorted(r.due_at for r in env.store.reminders.values())
    assert len(due) == 2 and worker._wake.is_set()
    assert worker.wait_s(due[0] - 3.0) == 3.0  # the claim comes when the first is due


def test_the_calendar_zone_is_built_once_and_the_invitation_is_unchanged(monkeypatch) -> None:  # noqa: ANN001
    ctx = {
        "reference": "MK-AAAA-0001",
        "language": "en",
        "participant": {"full_name": "Asha Juma"},
        "event": {
            "title_sw": "Mkutano",
            "title_en": "Conference",
            "venue": "AICC",
            "city": "Arusha",
            "starts_at": "2026-04-01T05:00:00Z",
            "ends_at": "2026-04-02T14:00:00Z",
        },
    }
    at = NOW

    def invite() -> bytes:
        return messages.calendar_invite(ctx, "reg-1", attendee="asha@example.go.tz", now=at)

    ours = invite()
    monkeypatch.setattr(messages, "add_timezones", lambda cal: cal.add_missing_timezones())
    assert ours == invite()  # the same bytes as icalendar's own
    monkeypatch.undo()
    built: list[str] = []
    real = icalendar.Timezone.from_tzid

    def counting(tzid: str, *args: Any, **kw: Any) -> Any:
        built.append(tzid)
        return real(tzid, *args, **kw)

    monkeypatch.setattr(icalendar.Timezone, "from_tzid", counting)
    messages._vtimezone.cache_clear()
    invite(), invite(), invite()
    assert built == ["Africa/Dar_es_Salaam"]
    assert b"BEGIN:VTIMEZONE" in invite() and b"TZID:Africa/Dar_es_Salaam" in invite()


def test_render_processes_are_the_cores_beyond_two_unless_set(monkeypatch) -> None:  # noqa: ANN001
    from services.notification import app
    from services.notification.settings import NotificationSettings

    for cores, wanted in ((1, 0), (2, 0), (4, 2), (8, 6)):
        monkeypatch.setattr(app.os, "cpu_count", lambda cores=cores: cores)
        assert app.render_workers(NotificationSettings()) == wanted
    assert app.render_workers(NotificationSettings(render_workers=1)) == 1
    assert app.render_pool(NotificationSettings(render_workers=0)) is None
