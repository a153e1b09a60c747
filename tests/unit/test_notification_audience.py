"""An announcement's audience (issue 15): status, cadre, category and institution, its
count before sending, and the projection keeping category and institution from the notices.

On the in-memory fakes, at a fixed time; what is asserted is who gets a message."""

from __future__ import annotations

import pytest

from services.notification import handlers
from services.notification.domain import Audience
from shared.errors import DomainError
from tests.unit.test_notification_handlers import SPEC, Env, received, registered


async def _people(env: Env) -> None:
    rows = [
        (1, "confirmed", "ict_officer", "MOF"),
        (2, "confirmed", "ict_officer", "TRA"),
        (3, "confirmed", "student", None),
        (4, "waitlisted", "ict_officer", "MOF"),
        (5, "pending_payment", "student", "MOF"),
        (6, "pending_approval", "foreign_guest", None),
    ]
    for n, status, category, institution in rows:
        notice = registered(
            n, status=status, cadre=category, category=category, institution_code=institution
        )
        await handlers.record_registration_event(env.ctx, received(notice, f"ce-{n}"))
    env.store.notifications.clear()


async def _count(env: Env, **spec: object) -> int:
    result = await handlers.announcement_audience(env.ctx, {"event_id": "ev-1", **spec})
    return result["count"]


async def test_the_projection_keeps_category_and_institution_from_the_notices() -> None:
    env = Env()
    await _people(env)
    assert env.store.participants["reg-1"]["category"] == "ict_officer"
    assert env.store.participants["reg-1"]["institution_code"] == "MOF"
    assert "institution_code" not in env.store.participants["reg-3"]  # self-registered


async def test_the_audience_defaults_to_the_confirmed() -> None:
    env = Env()
    await _people(env)
    assert await _count(env) == 3


async def test_status_category_and_institution_narrow_the_audience_together() -> None:
    env = Env()
    await _people(env)
    assert await _count(env, institution_codes=["MOF"]) == 1
    assert await _count(env, statuses=["confirmed", "waitlisted"], institution_codes=["MOF"]) == 2
    assert await _count(env, statuses=["pending_payment"], categories=["student"]) == 1
    assert await _count(env, categories=["ict_officer", "student"]) == 3
    assert await _count(env, institution_codes=["MOF", "TRA"], categories=["student"]) == 0
    every = ["confirmed", "pending_approval", "pending_payment", "waitlisted"]
    assert await _count(env, statuses=every) == 6
    assert await _count(env, cadre="ict_officer") == 2  # the old filter still works


async def test_an_announcement_to_one_institution_reaches_only_its_people() -> None:
    env = Env()
    await _people(env)
    spec = {**SPEC, "channels": ["email"], "institution_codes": ["MOF"]}
    spec["statuses"] = ["confirmed", "waitlisted"]
    progress = await handlers.create_announcement(env.ctx, spec)
    assert progress["total"] == 2 and progress["institution_codes"] == ["MOF"]
    assert progress["statuses"] == ["confirmed", "waitlisted"]
    announcement = await handlers.claim_announcement(env.ctx)
    assert announcement is not None and announcement.targets == ["reg-1", "reg-4"]
    await handlers.fan_out_batch(env.ctx, announcement)
    recipients = sorted(n.recipient for n in env.store.notifications.values())
    assert recipients == ["asha1@example.go.tz", "asha4@example.go.tz"]


async def test_a_status_no_longer_coming_is_refused_naming_the_field() -> None:
    env = Env()
    with pytest.raises(DomainError) as refused:
        await handlers.announcement_audience(
            env.ctx, {"event_id": "ev-1", "statuses": ["cancelled"]}
        )
    assert (refused.value.code, refused.value.field) == ("invalid_audience", "statuses")


def test_the_audience_is_plain_data() -> None:
    audience = Audience.of({"statuses": ["waitlisted", "confirmed", "confirmed"], "categories": []})
    assert audience.as_dict() == {
        "statuses": ["confirmed", "waitlisted"],
        "cadre": None,
        "categories": [],
        "institution_codes": [],
    }
    assert audience.admits({"status": "waitlisted"})
    assert not audience.admits({"status": "cancelled"})
