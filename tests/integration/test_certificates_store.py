"""Certificates and evaluation answers on the session's real MongoDB (issue 16): each
certificate one document with its events in its outbox, issued once per registration
however often a run repeats, revision-checked saves, answers counted once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.registration import handlers
from services.registration.domain import (
    DomainError,
    EvaluationFormSpec,
    EventSpec,
    RegistrationRequest,
    TicketSigner,
)
from services.registration.store import MongoRegistrationStore
from tests.helpers import event_spec, participant
from tests.stack import MongoServer, unique_suffix

T = "tz.go.ega.registration."


@pytest.fixture(scope="module")
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    store = MongoRegistrationStore(client[f"mkutano_registration{unique_suffix()}"])
    await store.ensure_indexes()
    yield handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
    await client.drop_database(store.db.name)
    await client.close()


async def attended_event(ctx: handlers.Context, people: int) -> tuple[str, list[str]]:
    now = datetime.now(UTC)
    spec = EventSpec.model_validate(
        event_spec(
            starts_at=(now - timedelta(hours=1)).isoformat(),
            ends_at=(now + timedelta(hours=3)).isoformat(),
        )
    )
    await handlers.create_event(ctx, spec)
    ids = []
    for _ in range(people):
        registered = await handlers.register_participant(
            ctx, spec.id, RegistrationRequest.model_validate(participant())
        )
        await handlers.check_in(ctx, ctx.signer.sign(registered.id))
        ids.append(registered.id)
    return spec.id, ids


async def cert_doc(ctx: handlers.Context, serial: str) -> dict[str, Any]:
    found = await ctx.store.certificates.find_one({"serial": serial})
    assert found is not None
    return found


async def test_a_certificate_is_one_document_with_its_events_issued_once(ctx) -> None:
    event_id, (registration_id, _) = await attended_event(ctx, 2)
    first = await handlers.issue_certificates(ctx, event_id)
    again = await handlers.issue_certificates(ctx, event_id)
    assert (first.issued, again.issued, again.already_issued) == (2, 0, 2)
    certificates = await ctx.store.registration_certificates(registration_id)
    assert len(certificates) == 1
    stored = await cert_doc(ctx, certificates[0].serial)
    assert stored["issue_key"] == f"{registration_id}#1" and stored["outbox_pending"] is True
    assert [m["type"] for m in stored["outbox"]] == [
        T + "CertificateIssued.v1",
        T + "CertificateIssuedNotice.v1",
    ]
    # A stale copy cannot overwrite a newer write; the revocation adds to the outbox.
    stale = await ctx.store.find_certificate(certificates[0].serial)
    await handlers.revoke_certificate(ctx, certificates[0].serial, by="organiser")
    assert stale is not None
    stale.revoke("revoked", datetime.now(UTC))
    assert await ctx.store.save_certificate(stale) is False
    stored = await cert_doc(ctx, certificates[0].serial)
    assert stored["status"] == "revoked" and len(stored["outbox"]) == 3


async def test_an_answer_is_stored_once_and_counted(ctx) -> None:
    event_id, (registration_id,) = await attended_event(ctx, 1)
    form = EvaluationFormSpec.model_validate(
        {"questions": [{"id": "again", "type": "yes_no", "label_sw": "Tena?", "label_en": "?"}]}
    )
    await handlers.attach_evaluation(ctx, event_id, form)
    assert await handlers.invite_to_evaluation(ctx, event_id) == 1
    assert await handlers.invite_to_evaluation(ctx, event_id) == 0
    await handlers.answer_evaluation(ctx, registration_id, {"again": "yes"})
    with pytest.raises(DomainError) as err:
        await handlers.answer_evaluation(ctx, registration_id, {"again": "no"})
    assert err.value.code == "evaluation_already_answered"
    stored = await ctx.store.evaluation_forms.find_one({"_id": event_id})
    assert stored is not None and stored["answers_count"] == 1
    summary = await handlers.evaluation_summary(ctx, event_id)
    assert (summary["invited"], summary["answered"]) == (1, 1)
