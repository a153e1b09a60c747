"""Resolutions use cases: plain async functions over a Context.

Each one loads what it needs through the store's port, lets the aggregate decide (the
rules, the version check, the timeline entry, the version record and the events are
the aggregate's) and saves it: the change and its events in one revision-checked
write. A writer sends the version it read; a stale one is 409.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.resolutions import csvio, report
from services.resolutions.domain import (
    Action,
    ActionChange,
    ActionSpec,
    Conference,
    ConferenceChange,
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    Resolution,
    ResolutionChange,
    ResolutionSpec,
    check_status,
    new_id,
    require_version,
)
from services.resolutions.ports import (
    AlreadyTaken,
    ConcurrentChange,
    ResolutionsStore,
    WriteFailed,
)
from shared.logging import get_logger
from shared.timeutil import EAT, utcnow

# An import that never finished (the process died mid-import) is removed at the next
# start once it is older than this.
STALE_IMPORT_S = 600.0
# A write that meets the relay's (same version, newer revision) is read and decided again.
SAVE_ATTEMPTS = 20

log = get_logger("resolutions")


@dataclass
class Context:
    store: ResolutionsStore
    clock: Callable[[], datetime] = field(default=utcnow)

    def today(self) -> date:
        """Today in Tanzania: 'overdue' is judged by the local calendar."""
        return self.clock().astimezone(EAT).date()


# --------------------------------------------------------------------------- conferences


async def create_conference(ctx: Context, spec: ConferenceSpec) -> Conference:
    """Create a conference; its id is a slug chosen by the coordinator."""
    conference = Conference.create(spec, now=ctx.clock())
    try:
        await ctx.store.insert_conference(conference)
    except AlreadyTaken as exc:
        raise DomainError("conference_exists", "A conference with this id exists already.") from exc
    return conference


async def edit_conference(ctx: Context, conference_id: str, change: ConferenceChange) -> Conference:
    """Change a conference's names, dates or venue; dates must still fit its resolutions."""
    conference = await get_conference(ctx, conference_id)
    conference.edit(change, await ctx.store.list_resolutions(conference_id), now=ctx.clock())
    try:
        await ctx.store.save_conference(conference)
    except ConcurrentChange as exc:
        raise DomainError(
            "concurrent_update", "The conference changed meanwhile; read it again."
        ) from exc
    return conference


async def get_conference(ctx: Context, conference_id: str) -> Conference:
    conference = await ctx.store.get_conference(conference_id)
    if conference is None:
        raise DomainError("conference_not_found", "No such conference.")
    return conference


async def list_conferences(ctx: Context) -> list[Conference]:
    """Every conference, newest first."""
    return await ctx.store.list_conferences()


# --------------------------------------------------------------------------- reads


async def list_resolutions(ctx: Context, conference_id: str) -> list[Resolution]:
    """A conference's resolutions by number."""
    await get_conference(ctx, conference_id)
    return await ctx.store.list_resolutions(conference_id)


async def get_resolution(ctx: Context, resolution_id: str) -> Resolution:
    resolution = await ctx.store.get_resolution(resolution_id)
    if resolution is None:
        raise DomainError("resolution_not_found", "No such resolution.")
    return resolution


async def conference_of(ctx: Context, resolution_id: str) -> str | None:
    """The conference a resolution belongs to (None if there is no such resolution)."""
    resolution = await ctx.store.get_resolution(resolution_id)
    return resolution.conference_id if resolution else None


async def implementation_report(ctx: Context, conference_id: str) -> dict:
    """The report's data as of today (Tanzanian calendar)."""
    conference = await get_conference(ctx, conference_id)
    resolutions = await ctx.store.list_resolutions(conference_id)
    return report.build_report(conference, resolutions, ctx.today())


async def export_rows(ctx: Context, conference_id: str) -> list[dict]:
    """The CSV export's rows: the import's columns plus state, no personal data."""
    conference = await get_conference(ctx, conference_id)
    resolutions = await ctx.store.list_resolutions(conference_id)
    return report.export_rows(conference, resolutions, ctx.today())


# --------------------------------------------------------------------------- resolutions


async def create_resolution(
    ctx: Context, conference_id: str, spec: ResolutionSpec, *, actor: str
) -> Resolution:
    """Add a resolution to a conference; it records ``ResolutionCreated``."""
    conference = await get_conference(ctx, conference_id)
    resolution = Resolution.create(conference, spec, actor=actor, now=ctx.clock())
    try:
        await ctx.store.insert_resolution(resolution)
    except AlreadyTaken as exc:
        raise DomainError(
            "resolution_number_taken",
            "This conference already has a resolution with this number.",
            field="number",
        ) from exc
    return resolution


async def _change(
    ctx: Context,
    resolution_id: str,
    expected_version: int | None,
    decide: Callable[[Resolution], object],
) -> Resolution:
    """Load, let the aggregate decide, save; decided again if the relay wrote meanwhile."""
    for _ in range(SAVE_ATTEMPTS):
        resolution = await ctx.store.get_resolution(resolution_id)
        if resolution is None:
            raise _not_found(expected_version)
        decide(resolution)
        try:
            await ctx.store.save_resolution(resolution)
        except ConcurrentChange:
            continue  # the relay bumped the revision (same version): read it again
        return resolution
    raise DomainError("version_conflict", "The resolution is busy; read it again.")


def _not_found(expected_version: int | None) -> DomainError:
    require_version(expected_version)  # a write without a version is 428 before 404, as ever
    return DomainError("resolution_not_found", "No such resolution.")


async def edit_resolution(
    ctx: Context,
    resolution_id: str,
    change: ResolutionChange,
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """Edit a resolution's details; the version keeps what changed."""
    current = await ctx.store.get_resolution(resolution_id)
    if current is None:
        raise _not_found(expected_version)
    conference = await get_conference(ctx, current.conference_id)
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.edit(
            change, conference, expected_version=expected_version, actor=actor, now=ctx.clock()
        ),
    )


async def record_update(
    ctx: Context,
    resolution_id: str,
    update: ProgressUpdate,
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """Append a timeline entry (``ResolutionUpdated``); a stale version is 409."""
    if update.status is not None:
        check_status(update.status)  # the input first, before the version (as ever)
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.record_update(
            update, expected_version=expected_version, actor=actor, now=ctx.clock()
        ),
    )


# --------------------------------------------------------------------------- actions


async def add_action(
    ctx: Context,
    resolution_id: str,
    spec: ActionSpec,
    *,
    expected_version: int | None,
    actor: str,
) -> tuple[Resolution, Action]:
    """Add an action (one level) and roll its progress up into the resolution."""
    check_status(spec.status)
    added: list[Action] = []

    def decide(resolution: Resolution) -> None:
        added[:] = [
            resolution.add_action(
                spec, expected_version=expected_version, actor=actor, now=ctx.clock()
            )
        ]

    resolution = await _change(ctx, resolution_id, expected_version, decide)
    return resolution, added[0]


async def change_action(
    ctx: Context,
    resolution_id: str,
    action_id: str,
    change: ActionChange,
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """Change an action; a status or progress change is a timeline entry of the resolution."""
    if change.status is not None:
        check_status(change.status)
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.change_action(
            action_id, change, expected_version=expected_version, actor=actor, now=ctx.clock()
        ),
    )


async def remove_action(
    ctx: Context,
    resolution_id: str,
    action_id: str,
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """Remove an action; the roll-up is recomputed from the others."""
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.remove_action(
            action_id, expected_version=expected_version, actor=actor, now=ctx.clock()
        ),
    )


# --------------------------------------------------------------------------- CSV import


def _import_report(parsed: csvio.ParsedFile, *, dry_run: bool) -> dict:
    return {
        "dry_run": dry_run,
        "valid": parsed.ok,
        "rows": parsed.row_count,
        "valid_rows": len(parsed.rows),
        "problems": [p.as_dict() for p in parsed.problems],
        "more_problems": parsed.more_problems,
    }


def _refuse(parsed: csvio.ParsedFile) -> DomainError:
    listed = "" if not parsed.more_problems else f" (the first {len(parsed.problems)} listed)"
    return DomainError(
        "invalid_import",
        f"The file has {parsed.problem_count} problem(s){listed}; nothing was imported.",
        details=_import_report(parsed, dry_run=False),
    )


async def import_resolutions(
    ctx: Context, conference_id: str, body: bytes, *, dry_run: bool, actor: str
) -> dict:
    """Import a conference's resolutions from CSV: all rows or none.

    The whole file is validated first (a dry run stops there). The store then writes
    every resolution or none (hidden, their events held back, until all are in); if
    another coordinator took a number meanwhile, nothing is imported.
    """
    conference = await get_conference(ctx, conference_id)
    text = csvio.decode(body)
    existing = await ctx.store.resolution_numbers(conference_id)
    parsed = csvio.parse_resolutions(
        text, conference_starts=conference.starts_on.isoformat(), existing_numbers=existing
    )
    if parsed.ok and not parsed.rows:
        parsed.add([csvio.RowProblem(2, "row", "the file has no rows")])
    if dry_run:
        return _import_report(parsed, dry_run=True)
    if not parsed.ok:
        raise _refuse(parsed)
    import_id = new_id()
    now = ctx.clock()
    resolutions = [
        Resolution.create(conference, spec, actor=actor, now=now, origin=f"import:{import_id}")
        for _, spec in parsed.rows
    ]
    try:
        await ctx.store.insert_import(resolutions, import_id=import_id, started_at=now)
    except AlreadyTaken as exc:
        raise DomainError(
            "import_conflict",
            "Another change took one of these numbers meanwhile; nothing was imported.",
            field="number",
        ) from exc
    except WriteFailed as exc:
        raise DomainError(
            "import_failed", "The import could not be written; nothing was imported."
        ) from exc
    log.info("resolutions_imported", conference_id=conference_id, count=len(resolutions))
    return {
        "dry_run": False,
        "import_id": import_id,
        "imported": len(resolutions),
        "resolution_ids": [r.id for r in resolutions],
    }


async def import_progress(
    ctx: Context, conference_id: str, body: bytes, *, dry_run: bool, actor: str
) -> dict:
    """Apply a CSV of progress updates (one row per resolution number): all or none.

    Validated first against the current resolutions (a dry run stops there). Each row is
    then one revision-checked write of its resolution, against the version validated. If
    a write fails part-way (the resolution changed meanwhile), the rows already applied
    are compensated: each gets a new timeline entry restoring its previous status and
    progress, and the events say so — the timeline stays append-only.
    """
    await get_conference(ctx, conference_id)
    text = csvio.decode(body)
    current = {r.number: r for r in await ctx.store.list_resolutions(conference_id)}
    parsed = csvio.parse_progress(
        text,
        resolutions={n: {"version": r.version, "actions": r.actions} for n, r in current.items()},
    )
    if parsed.ok and not parsed.rows:
        parsed.add([csvio.RowProblem(2, "row", "the file has no rows")])
    if dry_run:
        return _import_report(parsed, dry_run=True)
    if not parsed.ok:
        raise _refuse(parsed)
    import_id = new_id()
    origin = f"import:{import_id}"
    applied: list[tuple[Resolution, Resolution]] = []
    for line, row in parsed.rows:
        before = current[row.number]

        def decide(
            resolution: Resolution, row: csvio.ProgressRow = row, version: int = before.version
        ) -> None:
            resolution.record_update(
                row.update, expected_version=version, actor=actor, now=ctx.clock(), origin=origin
            )

        try:
            written = await _change(ctx, before.id, before.version, decide)
        except Exception as exc:  # a rule, a concurrent change or the database: undo
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
        "resolution_ids": [w.id for _, w in applied],
    }


async def _compensate(
    ctx: Context, applied: list[tuple[Resolution, Resolution]], actor: str, import_id: str
) -> None:
    """Restore status and progress of the rows applied, as new timeline entries."""
    for before, written in reversed(applied):

        def decide(
            resolution: Resolution, before: Resolution = before, version: int = written.version
        ) -> None:
            resolution.restore(
                before.status,
                before.progress,
                expected_version=version,
                note=f"Reverted: progress import {import_id} was not completed",
                actor=actor,
                now=ctx.clock(),
                origin=f"revert:{import_id}",
            )

        try:
            await _change(ctx, written.id, written.version, decide)
        except Exception as exc:
            # Changed again by someone else since: their write stands; say so in the log.
            log.error(
                "import_revert_failed",
                import_id=import_id,
                resolution_id=written.id,
                error=type(exc).__name__,
            )


async def sweep_unfinished_imports(ctx: Context) -> int:
    """Remove what imports that never finished wrote (the process died mid-import)."""
    return await ctx.store.sweep_unfinished_imports(ctx.clock() - timedelta(seconds=STALE_IMPORT_S))
