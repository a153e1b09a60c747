"""Resolutions use cases: plain async functions over a Context.

Each one loads what it needs through the store's port, lets the aggregate decide (the
rules, the version check, the timeline entry, the version record and the events are
the aggregate's) and saves it: the change and its events in one revision-checked
write. A writer sends the version it read; a stale one is 409.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.resolutions import csvio, report
from services.resolutions.domain import (
    MAX_FILES_PER_UPDATE,
    Action,
    ActionChange,
    ActionSpec,
    Conference,
    ConferenceChange,
    ConferenceSpec,
    DomainError,
    EvidenceFile,
    FocalLinkSigner,
    FocalPerson,
    PendingUpdate,
    ProgressUpdate,
    Reminder,
    Resolution,
    ResolutionChange,
    ResolutionSpec,
    check_evidence,
    check_status,
    due_reminders,
    new_id,
    next_conference,
    report_links,
    require_version,
    weekly_digest,
)
from services.resolutions.ports import (
    AlreadyTaken,
    ConcurrentChange,
    EvidenceStore,
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


# A report link opens its page this long after it was sent (the cadence sends a new one
# before it expires).
LINK_VALIDITY = timedelta(days=45)
EVIDENCE_MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Context:
    store: ResolutionsStore
    clock: Callable[[], datetime] = field(default=utcnow)
    # Report links (None: notices carry none, and no page opens).
    links: FocalLinkSigner | None = None
    public_url: str = "http://127.0.0.1:8003"
    link_validity: timedelta = LINK_VALIDITY
    evidence: EvidenceStore | None = None
    evidence_max_bytes: int = EVIDENCE_MAX_BYTES
    # The coordinators' weekly digest goes to these addresses (none: no digest).
    digest_recipients: Sequence[str] = ()
    digest_language: str = "sw"
    # The report pages' requests per client address and minute.
    report_rate_per_min: int = 30

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
        _attach_links(ctx, resolution)
        try:
            await ctx.store.save_resolution(resolution)
        except ConcurrentChange:
            continue  # the relay bumped the revision (same version): read it again
        return resolution
    raise DomainError("version_conflict", "The resolution is busy; read it again.")


def _attach_links(
    ctx: Context, aggregate: Resolution | Reminder, resolution: Resolution | None = None
) -> None:
    """Every notice to focal persons carries each one's own fresh report link."""
    source = resolution if resolution is not None else aggregate
    if ctx.links is None or not isinstance(source, Resolution) or not source.focal_persons:
        return
    links = report_links(
        source, ctx.links, ctx.public_url, now=ctx.clock(), validity=ctx.link_validity
    )
    aggregate.attach_report_links(links)


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


# --------------------------------------------------------------------------- focal persons

LINK_NOT_FOUND = "link_not_found"


def _link_refused() -> DomainError:
    # Expired, tampered, unknown, or the person is no longer a focal person: one answer.
    return DomainError(LINK_NOT_FOUND, "This link does not open a page.")


@dataclass
class FocalView:
    """What a report link opens: the resolution, the person, the conference."""

    resolution: Resolution
    person: FocalPerson
    person_key: str
    conference: Conference

    @property
    def my_pending(self) -> list[PendingUpdate]:
        return [p for p in self.resolution.pending_updates if p.submitted_by == self.person_key]


async def open_report_link(ctx: Context, link: str) -> FocalView:
    """The resolution a report link opens, for that focal person only; else refused."""
    if ctx.links is None:
        raise _link_refused()
    opened = ctx.links.verify(link, ctx.clock())
    if opened is None:
        raise _link_refused()
    resolution_id, key = opened
    resolution = await ctx.store.get_resolution(resolution_id)
    person = resolution.focal_person(key) if resolution else None
    if resolution is None or person is None:
        raise _link_refused()
    return FocalView(resolution, person, key, await get_conference(ctx, resolution.conference_id))


def check_uploads(ctx: Context, uploads: Sequence[tuple[str, bytes]]) -> list[EvidenceFile]:
    """Every uploaded file checked (count, size, type by content) before anything is kept."""
    if len(uploads) > MAX_FILES_PER_UPDATE:
        raise DomainError(
            "too_many_files", f"At most {MAX_FILES_PER_UPDATE} files per update.", field="files"
        )
    return [check_evidence(data, name, max_bytes=ctx.evidence_max_bytes) for name, data in uploads]


async def _keep_files(ctx: Context, files: Sequence[EvidenceFile]) -> None:
    if files and ctx.evidence is None:
        raise DomainError("evidence_unavailable", "Evidence files cannot be kept here.")
    for file in files:
        assert ctx.evidence is not None
        await ctx.evidence.put(file)


async def submit_focal_update(
    ctx: Context,
    link: str,
    update: ProgressUpdate,
    uploads: Sequence[tuple[str, bytes]] = (),
    *,
    expected_version: int | None,
) -> tuple[Resolution, PendingUpdate | None]:
    """A focal person's update through their link: the same rules as a coordinator's
    (version, timeline, roll-up, ``ResolutionUpdated``), recorded as submitted by them;
    pending a coordinator's approval where the conference requires it.

    Everything is checked before anything is written: the link, the files (count, size,
    type by content), the status and progress, the version read."""
    view = await open_report_link(ctx, link)
    if update.status is not None:
        check_status(update.status)
    files = check_uploads(ctx, uploads)
    view.resolution.check_version(expected_version)
    view.resolution._progress_after(update)
    await _keep_files(ctx, files)
    approval = view.conference.reporting.approval_required
    made: list[PendingUpdate | None] = [None]

    def decide(resolution: Resolution) -> None:
        made[0] = resolution.submit_focal_update(
            update,
            person=view.person_key,
            expected_version=expected_version,
            approval_required=approval,
            now=ctx.clock(),
            files=[f.reference() for f in files],
        )

    resolution = await _change(ctx, view.resolution.id, expected_version, decide)
    log.info(
        "focal_update_recorded",
        resolution_id=resolution.id,
        pending=made[0] is not None,
        files=len(files),
    )
    return resolution, made[0]


async def record_update_with_files(
    ctx: Context,
    resolution_id: str,
    update: ProgressUpdate,
    uploads: Sequence[tuple[str, bytes]],
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """A coordinator's update with evidence files: checked (count, size, type by content)
    and the version read before anything is kept; then one timeline entry citing them."""
    if update.status is not None:
        check_status(update.status)
    files = check_uploads(ctx, uploads)
    current = await ctx.store.get_resolution(resolution_id)
    if current is None:
        raise _not_found(expected_version)
    current.check_version(expected_version)
    current._progress_after(update)
    await _keep_files(ctx, files)
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.record_update(
            update,
            expected_version=expected_version,
            actor=actor,
            now=ctx.clock(),
            files=[f.reference() for f in files],
        ),
    )


async def evidence_for_link(ctx: Context, link: str, sha256: str) -> EvidenceFile:
    """An evidence file of the resolution a report link opens."""
    view = await open_report_link(ctx, link)
    return await _evidence_of(ctx, view.resolution, sha256)


async def evidence_for_reader(ctx: Context, resolution_id: str, sha256: str) -> EvidenceFile:
    """An evidence file of a resolution (the API checks the reader's role)."""
    return await _evidence_of(ctx, await get_resolution(ctx, resolution_id), sha256)


async def _evidence_of(ctx: Context, resolution: Resolution, sha256: str) -> EvidenceFile:
    reference = resolution.evidence_file(sha256)
    stored = await ctx.evidence.get(sha256) if ctx.evidence and reference else None
    if reference is None or stored is None:
        raise DomainError("evidence_not_found", "No such evidence file.")
    return EvidenceFile(
        sha256=sha256,
        name=reference["name"],
        media_type=reference["media_type"],
        size=stored.size,
        data=stored.data,
    )


async def pending_updates(
    ctx: Context, conference_id: str
) -> list[tuple[Resolution, PendingUpdate]]:
    """A conference's focal-person updates waiting for a coordinator, oldest first."""
    found = [(r, p) for r in await list_resolutions(ctx, conference_id) for p in r.pending_updates]
    return sorted(found, key=lambda rp: rp[1].submitted_at)


async def erase_focal_person(
    ctx: Context, email: str, *, reach: Callable[[str], bool], actor: str
) -> list[str]:
    """PDPA erasure of a focal person from every resolution of the conferences ``reach``
    allows (a scoped coordinator's, or all): each holding anything of them is scrubbed
    and records ``FocalPersonErased`` for notification. Returns those resolutions' ids;
    asking again finds nothing left."""
    erased: list[str] = []
    for conference in await ctx.store.list_conferences():
        if not reach(conference.id):
            continue
        for resolution in await ctx.store.list_resolutions(conference.id):
            if not resolution.mentions_focal_person(email):
                continue
            now = ctx.clock()
            await _change(
                ctx, resolution.id, None, lambda r, at=now: r.erase_focal_person(email, at)
            )
            erased.append(resolution.id)
    log.info("focal_person_erased", resolutions=len(erased), by=actor)
    return erased


async def approve_pending(
    ctx: Context,
    resolution_id: str,
    pending_id: str,
    *,
    expected_version: int | None,
    actor: str,
) -> Resolution:
    """Approve a focal person's update: it becomes a timeline entry (``ResolutionUpdated``)."""
    return await _change(
        ctx,
        resolution_id,
        expected_version,
        lambda r: r.approve_pending(
            pending_id, expected_version=expected_version, actor=actor, now=ctx.clock()
        ),
    )


async def reject_pending(
    ctx: Context, resolution_id: str, pending_id: str, *, reason: str, actor: str
) -> Resolution:
    """Reject a focal person's update: it never counts."""
    resolution = await get_resolution(ctx, resolution_id)
    return await _change(
        ctx,
        resolution_id,
        resolution.version,
        lambda r: r.reject_pending(pending_id, reason=reason, actor=actor, now=ctx.clock()),
    )


# --------------------------------------------------------------------------- chasing


async def send_due_reminders(ctx: Context) -> int:
    """Remind the focal persons of unfinished resolutions, once per rule (the report link
    on the conference's cadence, before a target date, weekly after it); how many sent."""
    today, now = ctx.today(), ctx.clock()
    conferences = await ctx.store.list_conferences()
    sent = 0
    for conference in conferences:
        resolutions = {r.id: r for r in await ctx.store.list_resolutions(conference.id)}
        upcoming = next_conference(conference, conferences)
        for reminder in due_reminders(
            conference, list(resolutions.values()), today=today, now=now, upcoming=upcoming
        ):
            assert reminder.resolution_id is not None
            _attach_links(ctx, reminder, resolutions[reminder.resolution_id])
            try:
                await ctx.store.insert_reminder(reminder)
            except AlreadyTaken:
                continue  # this rule fired already
            sent += 1
            log.info("reminder_sent", resolution_id=reminder.resolution_id, rule=reminder.rule)
    return sent


async def send_digests(ctx: Context) -> int:
    """This week's digest to the coordinators, once per conference and ISO week."""
    if not ctx.digest_recipients:
        return 0
    today, now = ctx.today(), ctx.clock()
    sent = 0
    for conference in await ctx.store.list_conferences():
        digest = weekly_digest(
            conference,
            await ctx.store.list_resolutions(conference.id),
            today=today,
            now=now,
            recipients=ctx.digest_recipients,
            language=ctx.digest_language,
            report_url=f"{ctx.public_url.rstrip('/')}/api/v1/conferences/{conference.id}/report",
        )
        if digest is None:
            continue
        try:
            await ctx.store.insert_reminder(digest)
        except AlreadyTaken:
            continue
        sent += 1
        log.info("digest_sent", conference_id=conference.id)
    return sent


async def conferences_side_by_side(ctx: Context, conference_ids: Sequence[str]) -> dict:
    """The report's summary of several conferences (all of them if none named), oldest
    first: as many columns as there are conferences."""
    if conference_ids:
        conferences = [await get_conference(ctx, cid) for cid in conference_ids]
    else:
        conferences = await ctx.store.list_conferences()
    conferences = sorted(conferences, key=lambda c: c.starts_on)
    today = ctx.today()
    return report.across_conferences(
        [(c, await ctx.store.list_resolutions(c.id)) for c in conferences], today
    )
