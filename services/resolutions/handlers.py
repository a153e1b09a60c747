"""Resolutions use cases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.resolutions.domain import (
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    ResolutionSpec,
    check_status,
    check_target,
    diff,
    new_id,
    resolve_progress,
)
from services.resolutions.store import ResolutionsStore
from shared.contracts.resolutions import (
    FocalPerson,
    ResolutionCompleted,
    ResolutionCreated,
    ResolutionUpdated,
)
from shared.envelope import OutboxMessage, wrap
from shared.outbox import ConcurrentUpdate, new_document, save
from shared.timeutil import now_iso, utcnow

SERVICE = "resolutions"


@dataclass
class Context:
    store: ResolutionsStore
    wake_relay: Any = lambda: None


async def create_conference(ctx: Context, spec: ConferenceSpec) -> dict[str, Any]:
    doc = {"_id": spec.id, **spec.model_dump(mode="json", exclude={"id"}), "created_at": now_iso()}
    try:
        await ctx.store.conferences.insert_one(doc)
    except DuplicateKeyError as exc:
        raise DomainError("conference_exists", "A conference with this id exists already.") from exc
    return doc


def _event_fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "resolution_id": doc["_id"],
        "conference_id": doc["conference_id"],
        "number": doc["number"],
        "title_sw": doc["title_sw"],
        "title_en": doc["title_en"],
        "status": doc["status"],
        "progress": doc["progress"],
        "version": doc["version"],
        "focal_persons": [FocalPerson(**fp) for fp in doc.get("focal_persons", [])],
    }


async def create_resolution(
    ctx: Context, conference_id: str, spec: ResolutionSpec, *, actor: str
) -> dict[str, Any]:
    conference = await ctx.store.get_conference(conference_id)
    if conference is None:
        raise DomainError("conference_not_found", "No such conference.", status=404)
    check_status(spec.status)
    check_target(spec.target_date, conference["starts_on"])
    stamp = now_iso()
    fields = {
        "_id": new_id(),
        "conference_id": conference_id,
        **spec.model_dump(mode="json"),
        "progress": resolve_progress(spec.status, spec.progress, 0),
        "version": 1,
        "timeline": [],
        "versions": [],
        "created_at": stamp,
        "updated_at": stamp,
    }
    fields["versions"] = [
        {"version": 1, "at": stamp, "by": actor, "changes": {"created": {"from": None, "to": True}}}
    ]
    message = wrap(ResolutionCreated(**_event_fields(fields), created_at=utcnow()), SERVICE)
    try:
        await ctx.store.resolutions.insert_one(new_document(fields, [message]))
    except DuplicateKeyError as exc:
        raise DomainError(
            "resolution_number_taken",
            "This conference already has a resolution with this number.",
            field="number",
        ) from exc
    ctx.wake_relay()
    return fields


async def record_update(
    ctx: Context,
    resolution_id: str,
    update: ProgressUpdate,
    *,
    expected_version: int | None,
    actor: str,
) -> dict[str, Any]:
    """Append a timeline entry and publish ``ResolutionUpdated``; a stale version is 409."""
    if expected_version is None:
        raise DomainError(
            "version_required",
            "Send the version you read (If-Match header or the version field).",
            status=428,
            field="version",
        )
    for _ in range(20):
        doc = await ctx.store.get_resolution(resolution_id)
        if doc is None:
            raise DomainError("resolution_not_found", "No such resolution.", status=404)
        if expected_version != doc["version"]:
            raise DomainError(
                "version_conflict",
                f"The resolution changed since you read it (now version {doc['version']}).",
                field="version",
            )
        changes, messages = _apply_update(doc, update, actor)
        try:
            written = await save(ctx.store.resolutions, doc, changes, messages)
        except ConcurrentUpdate:
            continue  # the relay (or a writer) touched the document: read it again
        ctx.wake_relay()
        return written
    raise DomainError("version_conflict", "The resolution is busy; read it again.")


def _apply_update(
    doc: dict[str, Any], update: ProgressUpdate, actor: str
) -> tuple[dict[str, Any], list[OutboxMessage]]:
    status = update.status or doc["status"]
    check_status(status)
    if update.status or update.progress is not None:
        progress = resolve_progress(status, update.progress, doc["progress"])
    else:
        progress = doc["progress"]
    stamp = now_iso()
    version = doc["version"] + 1
    entry = {
        "id": new_id(),
        "at": stamp,
        "status": status,
        "progress": progress,
        "note": update.note,
        "evidence": [str(u) for u in update.evidence],
        "recorded_by": actor,
        "version": version,
    }
    changed = diff(
        {"status": doc["status"], "progress": doc["progress"]},
        {"status": status, "progress": progress},
    )
    after = {**doc, "status": status, "progress": progress, "version": version}
    messages: list[OutboxMessage] = [
        wrap(
            ResolutionUpdated(
                **_event_fields(after),
                previous_status=doc["status"],
                previous_progress=doc["progress"],
                note=update.note or None,
                recorded_by=actor,
                updated_at=utcnow(),
            ),
            SERVICE,
        )
    ]
    if status == "completed" and doc["status"] != "completed":
        messages.append(
            wrap(ResolutionCompleted(**_event_fields(after), completed_at=utcnow()), SERVICE)
        )
    record = {
        "version": version,
        "at": stamp,
        "by": actor,
        "changes": changed or {"note": {"from": None, "to": "added"}},
    }
    changes = {
        "status": status,
        "progress": progress,
        "version": version,
        "updated_at": stamp,
        "timeline": list(doc.get("timeline") or []) + [entry],
        "versions": list(doc.get("versions") or []) + [record],
    }
    return changes, messages
