"""Resolutions use cases: plain async functions over a Context.

Every change to a resolution is one revision-checked write of its document: the new
fields, the appended timeline entry (for progress), the version record (what changed)
and the events in its outbox. A writer sends the version it read; a stale one is 409.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from services.resolutions import csvio
from services.resolutions.domain import (
    ActionChange,
    ActionSpec,
    ConferenceChange,
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    ResolutionChange,
    ResolutionSpec,
    as_date,
    check_status,
    check_target,
    diff,
    new_id,
    resolve_progress,
    rolled_up_status,
    weighted_mean,
)
from services.resolutions.store import ResolutionsStore
from shared import outbox
from shared.contracts.resolutions import (
    FocalPerson,
    ResolutionCompleted,
    ResolutionCreated,
    ResolutionUpdated,
)
from shared.envelope import OutboxMessage, wrap
from shared.logging import get_logger
from shared.outbox import ConcurrentUpdate, new_document, save
from shared.timeutil import epoch, now_iso, utcnow

SERVICE = "resolutions"
MAX_ACTIONS = 50
# An import's documents hold their events back (a relay lease far in the future) until
# the whole file is in; an import that never finished is removed at the next start
# once it is older than this.
IMPORT_HOLD_S = 10 * 365 * 24 * 3600.0
STALE_IMPORT_S = 600.0

log = get_logger("resolutions")
Decision = tuple[dict[str, Any], list[OutboxMessage]]


@dataclass
class Context:
    store: ResolutionsStore
    wake_relay: Any = lambda: None


# --------------------------------------------------------------------------- conferences


async def create_conference(ctx: Context, spec: ConferenceSpec) -> dict[str, Any]:
    """Create a conference; its id is a slug chosen by the coordinator."""
    doc = {"_id": spec.id, **spec.model_dump(mode="json", exclude={"id"}), "created_at": now_iso()}
    try:
        await ctx.store.conferences.insert_one(doc)
    except DuplicateKeyError as exc:
        raise DomainError("conference_exists", "A conference with this id exists already.") from exc
    return doc


async def edit_conference(
    ctx: Context, conference_id: str, change: ConferenceChange
) -> dict[str, Any]:
    """Change a conference's names, dates or venue; dates must still fit its resolutions."""
    conference = await _conference(ctx, conference_id)
    fields = change.model_dump(mode="json", exclude_unset=True)
    if not fields:
        raise DomainError("nothing_to_change", "Send at least one field.")
    after = {**conference, **fields}
    if as_date(after["ends_on"]) < as_date(after["starts_on"]):
        raise DomainError("invalid_dates", "ends_on is before starts_on.", field="ends_on")
    for doc in await ctx.store.list_resolutions(conference_id):
        if doc.get("target_date") and as_date(doc["target_date"]) < as_date(after["starts_on"]):
            raise DomainError(
                "target_before_conference",
                f"Resolution {doc['number']}'s target date would be before the conference.",
                field="starts_on",
            )
    fields["updated_at"] = now_iso()
    await ctx.store.conferences.update_one({"_id": conference_id}, {"$set": fields})
    return {**conference, **fields}


async def _conference(ctx: Context, conference_id: str) -> dict[str, Any]:
    conference = await ctx.store.get_conference(conference_id)
    if conference is None:
        raise DomainError("conference_not_found", "No such conference.")
    return conference


# --------------------------------------------------------------------------- resolutions


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


def _new_resolution(
    conference_id: str, spec: ResolutionSpec, actor: str, stamp: str
) -> dict[str, Any]:
    fields = {
        "_id": new_id(),
        "conference_id": conference_id,
        **spec.model_dump(mode="json"),
        "progress": resolve_progress(spec.status, spec.progress, 0),
        "actions": [],
        "version": 1,
        "timeline": [],
        "versions": [
            {
                "version": 1,
                "at": stamp,
                "by": actor,
                "changes": {"created": {"from": None, "to": True}},
            }
        ],
        "created_at": stamp,
        "updated_at": stamp,
    }
    return fields


async def create_resolution(
    ctx: Context, conference_id: str, spec: ResolutionSpec, *, actor: str
) -> dict[str, Any]:
    """Add a resolution to a conference and publish ``ResolutionCreated``."""
    conference = await _conference(ctx, conference_id)
    check_status(spec.status)
    check_target(spec.target_date, conference["starts_on"])
    fields = _new_resolution(conference_id, spec, actor, now_iso())
    message = wrap(ResolutionCreated(**_event_fields(fields), created_at=utcnow()), SERVICE)
    try:
        await outbox.insert(
            ctx.store.resolutions, new_document(fields, [message]), signal=ctx.store.signal
        )
    except DuplicateKeyError as exc:
        raise DomainError(
            "resolution_number_taken",
            "This conference already has a resolution with this number.",
            field="number",
        ) from exc
    ctx.wake_relay()
    return fields


async def _change(
    ctx: Context,
    resolution_id: str,
    expected_version: int | None,
    decide: Callable[[dict[str, Any]], Decision],
) -> dict[str, Any]:
    """Read, check the version the writer read, decide, write (retried on a relay write)."""
    if expected_version is None:
        raise DomainError(
            "version_required",
            "Send the version you read (If-Match header or the version field).",
            field="version",
        )
    for _ in range(20):
        doc = await ctx.store.get_resolution(resolution_id)
        if doc is None:
            raise DomainError("resolution_not_found", "No such resolution.")
        if expected_version != doc["version"]:
            raise DomainError(
                "version_conflict",
                f"The resolution changed since you read it (now version {doc['version']}).",
                field="version",
                details={"current_version": doc["version"]},
            )
        changes, messages = decide(doc)
        try:
            written = await save(
                ctx.store.resolutions, doc, changes, messages, signal=ctx.store.signal
            )
        except ConcurrentUpdate:
            continue  # the relay bumped the revision (same version): read it again
        ctx.wake_relay()
        return written
    raise DomainError("version_conflict", "The resolution is busy; read it again.")


def _next_version(
    doc: dict[str, Any],
    actor: str,
    fields: dict[str, Any],
    *,
    changed: dict[str, Any],
    timeline_note: str | None = None,
    evidence: list[str] | None = None,
    action_id: str | None = None,
    origin: str | None = None,
) -> Decision:
    """The write for one new version: fields, version record, timeline entry, events.

    ``timeline_note`` not None makes the change a progress update: a dated timeline
    entry is appended (never rewritten).
    """
    stamp = now_iso()
    version = doc["version"] + 1
    after = {**doc, **fields, "version": version}
    record: dict[str, Any] = {"version": version, "at": stamp, "by": actor, "changes": changed}
    if origin:
        record["origin"] = origin
    changes: dict[str, Any] = {
        **fields,
        "version": version,
        "updated_at": stamp,
        "versions": list(doc.get("versions") or []) + [record],
    }
    if timeline_note is not None:
        entry = {
            "id": new_id(),
            "at": stamp,
            "status": after["status"],
            "progress": after["progress"],
            "note": timeline_note,
            "evidence": list(evidence or []),
            "recorded_by": actor,
            "version": version,
            "action_id": action_id,
        }
        changes["timeline"] = list(doc.get("timeline") or []) + [entry]
    messages = [
        wrap(
            ResolutionUpdated(
                **_event_fields(after),
                previous_status=doc["status"],
                previous_progress=doc["progress"],
                note=timeline_note or None,
                recorded_by=actor,
                updated_at=utcnow(),
                changed=sorted(changed),
                evidence=list(evidence or []),
                action_id=action_id,
            ),
            SERVICE,
        )
    ]
    if after["status"] == "completed" and doc["status"] != "completed":
        messages.append(
            wrap(ResolutionCompleted(**_event_fields(after), completed_at=utcnow()), SERVICE)
        )
    return changes, messages


async def edit_resolution(
    ctx: Context,
    resolution_id: str,
    change: ResolutionChange,
    *,
    expected_version: int | None,
    actor: str,
) -> dict[str, Any]:
    """Edit a resolution's details; the version keeps what changed."""
    fields = change.changes()
    if "target_date" in fields:
        doc = await ctx.store.get_resolution(resolution_id)
        if doc is not None:
            conference = await _conference(ctx, doc["conference_id"])
            check_target(fields["target_date"], conference["starts_on"])

    def decide(doc: dict[str, Any]) -> Decision:
        changed = diff({k: doc.get(k) for k in fields}, fields)
        return _next_version(doc, actor, fields, changed=changed)

    return await _change(ctx, resolution_id, expected_version, decide)


async def record_update(
    ctx: Context,
    resolution_id: str,
    update: ProgressUpdate,
    *,
    expected_version: int | None,
    actor: str,
) -> dict[str, Any]:
    """Append a timeline entry and publish ``ResolutionUpdated``; a stale version is 409."""
    if update.status is not None:
        check_status(update.status)
    return await _change(
        ctx, resolution_id, expected_version, lambda doc: _apply_update(doc, update, actor)
    )


def _apply_update(
    doc: dict[str, Any], update: ProgressUpdate, actor: str, origin: str | None = None
) -> Decision:
    status = update.status or doc["status"]
    check_status(status)
    actions = doc.get("actions") or []
    if actions:
        # The progress of a resolution with actions is their weighted mean, nothing else.
        if update.progress is not None:
            raise DomainError(
                "progress_from_actions",
                "This resolution's progress is computed from its actions; update them.",
                field="progress",
            )
        if status == "completed" and any(a["status"] != "completed" for a in actions):
            raise DomainError(
                "actions_not_completed",
                "Complete every action of this resolution first.",
                field="status",
            )
        progress = doc["progress"]
    elif update.status or update.progress is not None:
        progress = resolve_progress(status, update.progress, doc["progress"])
    else:
        progress = doc["progress"]
    changed = diff(
        {"status": doc["status"], "progress": doc["progress"]},
        {"status": status, "progress": progress},
    )
    return _next_version(
        doc,
        actor,
        {"status": status, "progress": progress},
        changed=changed or {"note": {"from": None, "to": "added"}},
        timeline_note=update.note,
        evidence=[str(u) for u in update.evidence],
        origin=origin,
    )


# --------------------------------------------------------------------------- actions


def _rolled_up(doc: dict[str, Any], actions: list[dict[str, Any]]) -> dict[str, Any]:
    """The resolution's fields once its actions are ``actions``."""
    progress = weighted_mean(actions)
    return {
        "actions": actions,
        "progress": doc["progress"] if progress is None else progress,
        "status": rolled_up_status(doc["status"], actions),
    }


def _action_changes(
    doc: dict[str, Any], fields: dict[str, Any], key: str, before: Any, after: Any
) -> dict[str, Any]:
    changed = diff(
        {"status": doc["status"], "progress": doc["progress"]},
        {"status": fields["status"], "progress": fields["progress"]},
    )
    changed[f"actions.{key}"] = {"from": before, "to": after}
    return changed


async def add_action(
    ctx: Context,
    resolution_id: str,
    spec: ActionSpec,
    *,
    expected_version: int | None,
    actor: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add an action (one level) and roll its progress up into the resolution."""
    check_status(spec.status)
    stamp = now_iso()
    action = {
        "id": new_id(),
        "title": spec.title,
        "institution": spec.institution,
        "status": spec.status,
        "progress": resolve_progress(spec.status, spec.progress, 0),
        "weight": spec.weight,
        "created_at": stamp,
        "updated_at": stamp,
    }

    def decide(doc: dict[str, Any]) -> Decision:
        actions = list(doc.get("actions") or [])
        if len(actions) >= MAX_ACTIONS:
            raise DomainError(
                "too_many_actions", f"At most {MAX_ACTIONS} actions.", field="actions"
            )
        fields = _rolled_up(doc, [*actions, action])
        return _next_version(
            doc,
            actor,
            fields,
            changed=_action_changes(doc, fields, action["id"], None, action),
            timeline_note=f"Action added: {action['title']} ({action['institution']})",
            action_id=action["id"],
        )

    written = await _change(ctx, resolution_id, expected_version, decide)
    return written, action


async def change_action(
    ctx: Context,
    resolution_id: str,
    action_id: str,
    change: ActionChange,
    *,
    expected_version: int | None,
    actor: str,
) -> dict[str, Any]:
    """Change an action; a status or progress change is a timeline entry of the resolution."""
    if change.status is not None:
        check_status(change.status)

    def decide(doc: dict[str, Any]) -> Decision:
        actions = list(doc.get("actions") or [])
        index = next((i for i, a in enumerate(actions) if a["id"] == action_id), None)
        if index is None:
            raise DomainError("action_not_found", "No such action.")
        before = actions[index]
        after = dict(before)
        for name in ("title", "institution", "weight"):
            value = getattr(change, name)
            if value is not None:
                after[name] = value
        if change.status is not None:
            after["status"] = change.status
            after["progress"] = resolve_progress(change.status, change.progress, before["progress"])
        elif change.progress is not None:
            after["progress"] = change.progress
        after["updated_at"] = now_iso()
        actions[index] = after
        fields = _rolled_up(doc, actions)
        progress_moved = (after["status"], after["progress"]) != (
            before["status"],
            before["progress"],
        )
        note = change.note
        if progress_moved and not note:
            note = f"{after['title']}: {after['status']} {after['progress']}%"
        return _next_version(
            doc,
            actor,
            fields,
            changed=_action_changes(doc, fields, action_id, before, after),
            timeline_note=note if (progress_moved or change.note) else None,
            evidence=[str(u) for u in change.evidence],
            action_id=action_id,
        )

    return await _change(ctx, resolution_id, expected_version, decide)


async def remove_action(
    ctx: Context,
    resolution_id: str,
    action_id: str,
    *,
    expected_version: int | None,
    actor: str,
) -> dict[str, Any]:
    """Remove an action; the roll-up is recomputed from the others."""

    def decide(doc: dict[str, Any]) -> Decision:
        actions = list(doc.get("actions") or [])
        before = next((a for a in actions if a["id"] == action_id), None)
        if before is None:
            raise DomainError("action_not_found", "No such action.")
        fields = _rolled_up(doc, [a for a in actions if a["id"] != action_id])
        return _next_version(
            doc,
            actor,
            fields,
            changed=_action_changes(doc, fields, action_id, before, None),
            timeline_note=f"Action removed: {before['title']}",
            action_id=action_id,
        )

    return await _change(ctx, resolution_id, expected_version, decide)


# --------------------------------------------------------------------------- CSV import


def _import_report(parsed: csvio.ParsedFile, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "valid": parsed.ok,
        "rows": parsed.row_count,
        "valid_rows": len(parsed.rows),
        "problems": [p.as_dict() for p in parsed.problems],
    }


def _refuse(parsed: csvio.ParsedFile) -> DomainError:
    return DomainError(
        "invalid_import",
        f"The file has {len(parsed.problems)} problem(s); nothing was imported.",
        details=_import_report(parsed, dry_run=False),
    )


async def import_resolutions(
    ctx: Context, conference_id: str, body: bytes, *, dry_run: bool, actor: str
) -> dict[str, Any]:
    """Import a conference's resolutions from CSV: all rows or none.

    The whole file is validated first (a dry run stops there). The documents are then
    inserted in one ordered ``insert_many``, tagged with the import id and with their
    events held back; if the insert fails part-way (say a coordinator took a number in
    the meantime), what this import inserted is deleted. Only when every row is in are
    the documents shown and their events released, in one ``update_many``.
    """
    conference = await _conference(ctx, conference_id)
    text = csvio.decode(body)
    existing = await ctx.store.resolution_numbers(conference_id)
    parsed = csvio.parse_resolutions(
        text, conference_starts=conference["starts_on"], existing_numbers=existing
    )
    if parsed.ok and not parsed.rows:
        parsed.problems.append(csvio.RowProblem(2, "row", "the file has no rows"))
    if dry_run:
        return _import_report(parsed, dry_run=True)
    if not parsed.ok:
        raise _refuse(parsed)
    import_id = new_id()
    stamp = now_iso()
    hold = epoch() + IMPORT_HOLD_S
    docs = []
    for _, spec in parsed.rows:
        fields = _new_resolution(conference_id, spec, actor, stamp)
        fields["versions"][0]["origin"] = f"import:{import_id}"
        created = ResolutionCreated(**_event_fields(fields), created_at=utcnow())
        doc = new_document(fields, [wrap(created, SERVICE)])
        doc.update(importing=import_id, import_started=epoch(), outbox_lease_until=hold)
        docs.append(doc)
    try:
        await ctx.store.resolutions.insert_many(docs, ordered=True)
    except PyMongoError as exc:
        await ctx.store.resolutions.delete_many({"importing": import_id})
        conflict = _is_duplicate(exc)
        log.warning("import_rolled_back", import_id=import_id, error=type(exc).__name__)
        raise DomainError(
            "import_conflict" if conflict else "import_failed",
            "Another change took one of these numbers meanwhile; nothing was imported."
            if conflict
            else "The import could not be written; nothing was imported.",
            field="number" if conflict else None,
        ) from exc
    await ctx.store.resolutions.update_many(
        {"importing": import_id},
        {"$set": {"importing": None, "outbox_lease_until": 0.0}, "$inc": {"rev": 1}},
    )
    ctx.wake_relay()
    log.info("resolutions_imported", conference_id=conference_id, count=len(docs))
    return {
        "dry_run": False,
        "import_id": import_id,
        "imported": len(docs),
        "resolution_ids": [d["_id"] for d in docs],
    }


def _is_duplicate(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        return any(e.get("code") == 11000 for e in exc.details.get("writeErrors", []))
    return False


async def import_progress(
    ctx: Context, conference_id: str, body: bytes, *, dry_run: bool, actor: str
) -> dict[str, Any]:
    """Apply a CSV of progress updates (one row per resolution number): all or none.

    Validated first against the current documents (a dry run stops there). Each row is
    then one revision-checked write of its resolution, against the version validated. If
    a write fails part-way (the resolution changed meanwhile), the rows already applied
    are compensated: each gets a new timeline entry restoring its previous status and
    progress, and the events say so — the timeline stays append-only.
    """
    await _conference(ctx, conference_id)
    text = csvio.decode(body)
    current = {d["number"]: d for d in await ctx.store.list_resolutions(conference_id)}
    parsed = csvio.parse_progress(text, resolutions=current)
    if parsed.ok and not parsed.rows:
        parsed.problems.append(csvio.RowProblem(2, "row", "the file has no rows"))
    if dry_run:
        return _import_report(parsed, dry_run=True)
    if not parsed.ok:
        raise _refuse(parsed)
    import_id = new_id()
    origin = f"import:{import_id}"
    applied: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for line, row in parsed.rows:
        before = current[row.number]
        try:
            written = await _change(
                ctx,
                before["_id"],
                before["version"],
                lambda doc, row=row: _apply_update(doc, row.update, actor, origin),
            )
        except (DomainError, PyMongoError) as exc:
            await _compensate(ctx, applied, actor, import_id)
            raise DomainError(
                "import_conflict",
                f"Row {line}: resolution {row.number} changed during the import; "
                "the rows already applied were reverted.",
                field="number",
                details={"row": line, "reverted": len(applied)},
            ) from exc
        applied.append((before, written))
    log.info("progress_imported", conference_id=conference_id, count=len(applied))
    return {
        "dry_run": False,
        "import_id": import_id,
        "imported": len(applied),
        "resolution_ids": [w["_id"] for _, w in applied],
    }


async def _compensate(
    ctx: Context,
    applied: list[tuple[dict[str, Any], dict[str, Any]]],
    actor: str,
    import_id: str,
) -> None:
    """Restore status and progress of the rows applied, as new timeline entries."""
    for before, written in reversed(applied):

        def decide(doc: dict[str, Any], before: dict[str, Any] = before) -> Decision:
            fields = {"status": before["status"], "progress": before["progress"]}
            return _next_version(
                doc,
                actor,
                fields,
                changed=diff({k: doc[k] for k in fields}, fields),
                timeline_note=f"Reverted: progress import {import_id} was not completed",
                origin=f"revert:{import_id}",
            )

        try:
            await _change(ctx, written["_id"], written["version"], decide)
        except (DomainError, PyMongoError) as exc:
            # Changed again by someone else since: their write stands; say so in the log.
            log.error(
                "import_revert_failed",
                import_id=import_id,
                resolution_id=written["_id"],
                error=type(exc).__name__,
            )


async def sweep_unfinished_imports(ctx: Context) -> int:
    """Delete documents of imports that never finished (the process died mid-import)."""
    result = await ctx.store.resolutions.delete_many(
        {"importing": {"$ne": None}, "import_started": {"$lt": epoch() - STALE_IMPORT_S}}
    )
    return result.deleted_count
