"""Every resolutions use case against the in-memory store, with a fixed clock.

No server: what a coordinator would see (status, progress, timeline, versions), the
events saved with each change, and the error codes the rules refuse with.
"""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.resolutions import demo, handlers
from services.resolutions.domain import (
    MAX_ACTIONS,
    ActionChange,
    ActionSpec,
    ConferenceChange,
    ConferenceSpec,
    DomainError,
    FocalPersonIn,
    ProgressUpdate,
    Resolution,
    ResolutionChange,
    ResolutionSpec,
)
from services.resolutions.ports import ResolutionsStore
from services.resolutions.store import MongoResolutionsStore
from shared.envelope import OutboxMessage
from shared.timeutil import iso
from tests.unit.fakes.resolutions import FakeResolutionsStore, ProcessDied

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)  # 10:30 in Arusha
CREATED = "tz.go.ega.resolutions.ResolutionCreated.v2"
UPDATED = "tz.go.ega.resolutions.ResolutionUpdated.v2"
COMPLETED = "tz.go.ega.resolutions.ResolutionCompleted.v2"
FOCAL = FocalPersonIn(
    full_name="Asha Juma", institution="Wizara ya Fedha", email="asha@example.go.tz"
)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeResolutionsStore:
    return FakeResolutionsStore()


@pytest.fixture
def ctx(store: FakeResolutionsStore, clock: Clock) -> handlers.Context:
    return handlers.Context(store=store, clock=clock)


def _spec(conference_id: str = "egov-2025", **extra: Any) -> ConferenceSpec:
    return ConferenceSpec(
        **{
            "id": conference_id,
            "name_sw": "Mkutano wa Tano",
            "name_en": "5th Conference",
            "starts_on": date(2025, 2, 11),
            "ends_on": date(2025, 2, 13),
            "venue": "AICC, Arusha",
            **extra,
        }
    )


async def _conference(ctx: handlers.Context, conference_id: str = "egov-2025") -> str:
    await handlers.create_conference(ctx, _spec(conference_id))
    return conference_id


async def _resolution(ctx: handlers.Context, number: int = 1, **extra: Any) -> Resolution:
    fields = {
        "number": number,
        "title_sw": f"Azimio {number}",
        "title_en": f"Resolution {number}",
        "lead_institution": "e-GA",
        "target_date": date(2025, 12, 31),
        "focal_persons": [FOCAL],
        **extra,
    }
    return await handlers.create_resolution(
        ctx, "egov-2025", ResolutionSpec(**fields), actor="coordinator-1"
    )


def _types(messages: list[OutboxMessage]) -> list[str]:
    return [m.type for m in messages]


async def _refused(code: str, call: Any) -> DomainError:
    with pytest.raises(DomainError) as refused:
        await call
    assert refused.value.code == code, refused.value.message
    return refused.value


def test_both_stores_implement_the_port() -> None:
    assert isinstance(FakeResolutionsStore(), ResolutionsStore)
    assert all(hasattr(MongoResolutionsStore, name) for name in _port_methods())


def _port_methods() -> list[str]:
    return [n for n in vars(ResolutionsStore) if not n.startswith("_")]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_store_touches_mongodb_and_the_domain_is_pure() -> None:
    package = Path(handlers.__file__).parent
    for module in package.glob("*.py"):
        roots = {name.split(".")[0] for name in _imports(module)}
        if module.name != "store.py":
            assert "pymongo" not in roots and "motor" not in roots, module.name
    domain = _imports(package / "domain.py")
    forbidden = {"pymongo", "fastapi", "starlette", "faststream"}
    assert not {n.split(".")[0] for n in domain} & forbidden
    assert not {"shared.outbox", "shared.runtime", "shared.envelope"} & domain


# --------------------------------------------------------------------------- conferences


async def test_create_conference_and_a_taken_id(ctx: handlers.Context) -> None:
    conference = await handlers.create_conference(ctx, _spec())
    assert (conference.id, conference.starts_on, conference.created_at) == (
        "egov-2025",
        date(2025, 2, 11),
        iso(NOW),
    )
    assert [c.id for c in await handlers.list_conferences(ctx)] == ["egov-2025"]
    await _refused("conference_exists", handlers.create_conference(ctx, _spec()))


async def test_conferences_are_listed_newest_first(ctx: handlers.Context) -> None:
    await handlers.create_conference(ctx, _spec("egov-2024", starts_on=date(2024, 2, 6),
                                                 ends_on=date(2024, 2, 8)))  # fmt: skip
    await _conference(ctx)
    assert [c.id for c in await handlers.list_conferences(ctx)] == ["egov-2025", "egov-2024"]
    await _refused("conference_not_found", handlers.get_conference(ctx, "egov-1999"))


async def test_edit_conference_changes_only_what_is_sent(
    ctx: handlers.Context, clock: Clock
) -> None:
    await _conference(ctx)
    clock.advance(hours=1)
    edited = await handlers.edit_conference(ctx, "egov-2025", ConferenceChange(venue="JNICC"))
    assert (edited.venue, edited.name_en, edited.updated_at) == (
        "JNICC",
        "5th Conference",
        iso(clock.now),
    )
    stored = await handlers.get_conference(ctx, "egov-2025")
    assert stored.venue == "JNICC" and stored.starts_on == date(2025, 2, 11)


async def test_edit_conference_refusals(ctx: handlers.Context) -> None:
    await _conference(ctx)
    await _resolution(ctx, target_date=date(2025, 6, 30))
    await _refused(
        "nothing_to_change", handlers.edit_conference(ctx, "egov-2025", ConferenceChange())
    )
    bad_order = ConferenceChange(ends_on=date(2025, 2, 1))
    error = await _refused("invalid_dates", handlers.edit_conference(ctx, "egov-2025", bad_order))
    assert error.field == "ends_on"
    moved = ConferenceChange(starts_on=date(2025, 7, 1), ends_on=date(2025, 7, 3))
    error = await _refused(
        "target_before_conference", handlers.edit_conference(ctx, "egov-2025", moved)
    )
    assert error.field == "starts_on" and "Resolution 1" in error.message
    await _refused(
        "conference_not_found", handlers.edit_conference(ctx, "nope-1", ConferenceChange(venue="x"))
    )
    assert (await handlers.get_conference(ctx, "egov-2025")).starts_on == date(2025, 2, 11)


# --------------------------------------------------------------------------- resolutions


async def test_create_resolution_records_resolution_created(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx, status="in_progress")
    assert (resolution.status, resolution.progress, resolution.version) == ("in_progress", 25, 1)
    assert resolution.versions[0].changes == {"created": {"from": None, "to": True}}
    assert resolution.versions[0].by == "coordinator-1"
    (message,) = store.outbox  # a creation tells nobody: no notice
    assert message.type == CREATED and message.key == resolution.id
    assert message.data["created_at"].startswith("2026-03-02T07:30:00")
    # The public event names the lead institution and counts the focal persons, no contact.
    assert "focal_persons" not in message.data
    assert (message.data["lead_institution"], message.data["focal_person_count"]) == ("e-GA", 1)
    assert (message.data["number"], message.data["version"]) == (1, 1)
    assert store.signalled == [("resolutions", resolution.id)]
    stored = await handlers.get_resolution(ctx, resolution.id)
    assert stored.title_en == "Resolution 1" and stored.rev == 1
    assert await handlers.conference_of(ctx, resolution.id) == "egov-2025"
    assert await handlers.conference_of(ctx, "nope") is None


async def test_create_resolution_refusals(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    await _resolution(ctx)
    error = await _refused("resolution_number_taken", _resolution(ctx))
    assert error.field == "number"
    await _refused("unknown_status", _resolution(ctx, 2, status="finished"))
    error = await _refused(
        "target_before_conference", _resolution(ctx, 3, target_date=date(2025, 1, 1))
    )
    assert error.field == "target_date"
    spec = ResolutionSpec(number=4, title_sw="A", title_en="A", lead_institution="e-GA")
    await _refused(
        "conference_not_found", handlers.create_resolution(ctx, "nope-1", spec, actor="x")
    )
    assert len(store.outbox) == 1  # only the first one's event


async def test_edit_resolution_keeps_what_changed_as_a_version(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    change = ResolutionChange(target_date=date(2026, 6, 30), supporting_institutions=["TAMISEMI"])
    edited = await handlers.edit_resolution(
        ctx, resolution.id, change, expected_version=1, actor="coordinator-2"
    )
    assert (edited.version, edited.target_date, edited.timeline) == (2, date(2026, 6, 30), [])
    assert edited.versions[-1].changes == {
        "target_date": {"from": "2025-12-31", "to": "2026-06-30"},
        "supporting_institutions": {"from": [], "to": ["TAMISEMI"]},
    }
    event = store.events(resolution.id)[-1]
    assert event.type == UPDATED
    assert event.data["changed"] == ["supporting_institutions", "target_date"]
    assert (event.data["recorded_by"], event.data["note"]) == ("coordinator-2", None)
    focal = FocalPersonIn(full_name="Baraka Ali", institution="e-GA", email="b@example.go.tz")
    again = await handlers.edit_resolution(
        ctx, resolution.id, ResolutionChange(focal_persons=[focal]), expected_version=2, actor="c"
    )
    assert [fp.email for fp in again.focal_persons] == ["b@example.go.tz"]
    public = store.events(resolution.id)[-1].data
    assert "focal_persons" not in public and public["changed"] == ["focal_persons"]
    notice = store.notices(resolution.id)[-1]
    assert notice.type == "tz.go.ega.resolutions.ResolutionUpdatedNotice.v1"
    assert notice.data["focal_persons"][0]["full_name"] == "Baraka Ali"


async def test_edit_resolution_version_and_target_checks(ctx: handlers.Context) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    change = ResolutionChange(title_en="New title")
    edit = handlers.edit_resolution
    error = await _refused(
        "version_required", edit(ctx, resolution.id, change, expected_version=None, actor="c")
    )
    assert error.field == "version"
    error = await _refused(
        "version_conflict", edit(ctx, resolution.id, change, expected_version=7, actor="c")
    )
    assert error.details == {"current_version": 1}
    early = ResolutionChange(target_date=date(2024, 12, 31))
    error = await _refused(
        "target_before_conference", edit(ctx, resolution.id, early, expected_version=1, actor="c")
    )
    await _refused("resolution_not_found", edit(ctx, "nope", change, expected_version=1, actor="c"))
    await _refused("version_required", edit(ctx, "nope", change, expected_version=None, actor="c"))
    assert (await handlers.get_resolution(ctx, resolution.id)).title_en == "Resolution 1"


async def test_record_update_appends_a_dated_entry_and_publishes(
    ctx: handlers.Context, store: FakeResolutionsStore, clock: Clock
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    clock.advance(days=3)
    update = ProgressUpdate(
        status="in_progress", note="Kazi imeanza", evidence=["https://www.ega.go.tz/r1.pdf"]
    )
    written = await handlers.record_update(
        ctx, resolution.id, update, expected_version=1, actor="coordinator-2"
    )
    (entry,) = written.timeline
    assert (entry.at, entry.status, entry.progress, entry.note, entry.version) == (
        iso(clock.now),
        "in_progress",
        25,  # the status's default progress
        "Kazi imeanza",
        2,
    )
    assert (
        entry.evidence == ["https://www.ega.go.tz/r1.pdf"] and entry.recorded_by == "coordinator-2"
    )
    assert written.versions[-1].changes == {
        "status": {"from": "not_started", "to": "in_progress"},
        "progress": {"from": 0, "to": 25},
    }
    event = store.events(resolution.id)[-1]
    assert event.type == UPDATED
    assert {k: event.data[k] for k in ("previous_status", "previous_progress", "status",
                                         "progress", "note", "version", "changed")} == {
        "previous_status": "not_started", "previous_progress": 0, "status": "in_progress",
        "progress": 25, "note": "Kazi imeanza", "version": 2, "changed": ["progress", "status"],
    }  # fmt: skip
    assert event.data["evidence"] == ["https://www.ega.go.tz/r1.pdf"]
    assert event.data["updated_at"].startswith("2026-03-05T07:30:00")

    # Delayed keeps the progress; a note alone is an entry too; earlier entries stay.
    written = await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(progress=45), expected_version=2, actor="c"
    )
    written = await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(status="delayed"), expected_version=3, actor="c"
    )
    written = await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(note="Bajeti imechelewa"), expected_version=4, actor="c"
    )
    assert [(e.status, e.progress) for e in written.timeline] == [
        ("in_progress", 25),
        ("in_progress", 45),
        ("delayed", 45),
        ("delayed", 45),
    ]
    assert written.timeline[0] == entry
    assert written.versions[-1].changes == {"note": {"from": None, "to": "added"}}


async def test_completing_a_resolution_publishes_resolution_completed(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    done = await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(status="completed"), expected_version=1, actor="c"
    )
    assert (done.status, done.progress) == ("completed", 100)
    assert _types(store.events(resolution.id)) == [CREATED, UPDATED, COMPLETED]
    completed = store.events(resolution.id)[-1].data
    assert completed["completed_at"].startswith("2026-03-02T07:30") and completed["version"] == 2
    # Already completed: a further note is not a second completion.
    await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(note="Ripoti"), expected_version=2, actor="c"
    )
    assert _types(store.events(resolution.id)).count(COMPLETED) == 1


async def test_record_update_refusals_change_nothing(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    update = handlers.record_update
    await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(progress=10), expected_version=1, actor="a"
    )
    error = await _refused(
        "version_conflict",
        update(ctx, resolution.id, ProgressUpdate(progress=70), expected_version=1, actor="b"),
    )
    assert error.details == {"current_version": 2}
    await _refused(
        "version_required",
        update(ctx, resolution.id, ProgressUpdate(progress=70), expected_version=None, actor="b"),
    )
    await _refused(
        "unknown_status",
        update(
            ctx, resolution.id, ProgressUpdate(status="finished"), expected_version=2, actor="b"
        ),
    )
    await _refused(
        "resolution_not_found",
        update(ctx, "nope", ProgressUpdate(progress=1), expected_version=1, actor="b"),
    )
    now = await handlers.get_resolution(ctx, resolution.id)
    assert (now.progress, now.version, len(now.timeline)) == (10, 2, 1)
    assert len(store.events()) == 2 and len(store.notices()) == 1


async def test_a_write_meeting_the_relay_is_decided_again(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)

    async def relay(op: str, key: str) -> None:
        store.relay_wrote(key)  # same version, newer revision

    store.before_write = relay
    written = await handlers.record_update(
        ctx, resolution.id, ProgressUpdate(progress=30), expected_version=1, actor="c"
    )
    assert (written.version, written.progress, len(written.timeline)) == (2, 30, 1)
    assert _types(store.events(resolution.id)) == [CREATED, UPDATED]  # events saved once


# --------------------------------------------------------------------------- actions


async def test_actions_roll_up_by_weight_and_complete_the_resolution(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    r, esb = await handlers.add_action(
        ctx, resolution.id, ActionSpec(title="GovESB", institution="e-GA", weight=3),
        expected_version=1, actor="c",
    )  # fmt: skip
    r, councils = await handlers.add_action(
        ctx, resolution.id, ActionSpec(title="Halmashauri", institution="TAMISEMI"),
        expected_version=r.version, actor="c",
    )  # fmt: skip
    assert [a.id for a in r.actions] == [esb.id, councils.id]
    assert r.timeline[-1].note == "Action added: Halmashauri (TAMISEMI)"
    assert r.timeline[-1].action_id == councils.id
    assert r.versions[-1].changes[f"actions.{councils.id}"]["from"] is None
    r = await handlers.change_action(
        ctx, resolution.id, esb.id, ActionChange(progress=80, note="GovESB imeunganishwa"),
        expected_version=r.version, actor="c",
    )  # fmt: skip
    # (80*3 + 0*1) / 4 = 60, and the resolution moved from not started.
    assert (r.progress, r.status) == (60, "in_progress")
    assert (r.timeline[-1].note, r.timeline[-1].action_id) == ("GovESB imeunganishwa", esb.id)
    moved = store.events(resolution.id)[-1].data
    assert (moved["previous_progress"], moved["progress"], moved["action_id"]) == (0, 60, esb.id)
    r = await handlers.change_action(
        ctx, resolution.id, councils.id, ActionChange(status="in_progress", progress=50),
        expected_version=r.version, actor="c",
    )  # fmt: skip
    assert r.progress == 73  # (240 + 50) / 4 = 72.5, half up
    assert r.timeline[-1].note == "Halmashauri: in_progress 50%"
    # Renaming an action is a version, not a timeline entry.
    entries = len(r.timeline)
    r = await handlers.change_action(
        ctx, resolution.id, councils.id, ActionChange(title="Halmashauri zote"),
        expected_version=r.version, actor="c",
    )  # fmt: skip
    assert len(r.timeline) == entries and r.actions[1].title == "Halmashauri zote"
    error = await _refused(
        "progress_from_actions",
        handlers.record_update(
            ctx, resolution.id, ProgressUpdate(progress=10), expected_version=r.version, actor="c"
        ),
    )
    assert error.field == "progress"
    await _refused(
        "actions_not_completed",
        handlers.record_update(
            ctx, resolution.id, ProgressUpdate(status="completed"), expected_version=r.version,
            actor="c",
        ),
    )  # fmt: skip
    for action in (esb, councils):
        r = await handlers.change_action(
            ctx, resolution.id, action.id, ActionChange(status="completed"),
            expected_version=r.version, actor="c",
        )  # fmt: skip
    assert (r.progress, r.status) == (100, "completed")
    assert [e.progress for e in r.timeline] == [0, 0, 60, 73, 88, 100]
    assert _types(store.events(resolution.id)) == [CREATED] + [UPDATED] * 7 + [COMPLETED]


async def test_removing_an_action_recomputes_the_roll_up(ctx: handlers.Context) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    r = resolution
    for progress in (100, 20):
        r, _ = await handlers.add_action(
            ctx, resolution.id,
            ActionSpec(title=f"Kazi {progress}", institution="e-GA", status="in_progress",
                       progress=progress),
            expected_version=r.version, actor="c",
        )  # fmt: skip
    assert r.progress == 60
    slow = r.actions[1]
    r = await handlers.remove_action(
        ctx, resolution.id, slow.id, expected_version=r.version, actor="c"
    )
    assert (r.progress, [a.id for a in r.actions]) == (100, [r.actions[0].id])
    assert r.timeline[-1].note == "Action removed: Kazi 20"
    assert r.versions[-1].changes[f"actions.{slow.id}"]["to"] is None
    await _refused(
        "action_not_found",
        handlers.remove_action(ctx, resolution.id, slow.id, expected_version=r.version, actor="c"),
    )
    await _refused(
        "action_not_found",
        handlers.change_action(
            ctx, resolution.id, "nope", ActionChange(progress=1), expected_version=r.version,
            actor="c",
        ),
    )  # fmt: skip
    await _refused(
        "version_conflict",
        handlers.remove_action(ctx, resolution.id, r.actions[0].id, expected_version=1, actor="c"),
    )


async def test_action_refusals(ctx: handlers.Context, store: FakeResolutionsStore) -> None:
    await _conference(ctx)
    resolution = await _resolution(ctx)
    await _refused(
        "unknown_status",
        handlers.add_action(
            ctx, resolution.id, ActionSpec(title="A", institution="e-GA", status="finished"),
            expected_version=1, actor="c",
        ),
    )  # fmt: skip
    await _refused(
        "version_required",
        handlers.add_action(
            ctx, resolution.id, ActionSpec(title="A", institution="e-GA"),
            expected_version=None, actor="c",
        ),
    )  # fmt: skip
    # At most MAX_ACTIONS actions.
    stored = store.resolutions[resolution.id]
    r = resolution
    for i in range(MAX_ACTIONS):
        r, _ = await handlers.add_action(
            ctx, resolution.id, ActionSpec(title=f"A{i}", institution="e-GA"),
            expected_version=r.version, actor="c",
        )  # fmt: skip
    assert stored is not store.resolutions[resolution.id]  # the fake keeps copies
    await _refused(
        "too_many_actions",
        handlers.add_action(
            ctx, resolution.id, ActionSpec(title="one more", institution="e-GA"),
            expected_version=r.version, actor="c",
        ),
    )  # fmt: skip


# --------------------------------------------------------------------------- CSV import

HEADER = "number,title_sw,title_en,lead_institution,target_date,status,progress\n"
GOOD = (
    HEADER
    + "1,Usalama,Security,e-GA,2025-12-31,completed,\n2,Mifumo,Systems,e-GA,,in_progress,60\n"
)


async def test_resolution_import_dry_run_reports_every_problem_and_writes_nothing(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    body = GOOD + "3,A,A,e-GA,2024-01-01,,\n4,B,B,e-GA,,finished,\n"
    report = await handlers.import_resolutions(
        ctx, "egov-2025", body.encode(), dry_run=True, actor="c"
    )
    assert (report["valid"], report["rows"], report["valid_rows"]) == (False, 4, 2)
    assert [(p["row"], p["field"]) for p in report["problems"]] == [
        (4, "target_date"),
        (5, "status"),
    ]
    error = await _refused(
        "invalid_import",
        handlers.import_resolutions(ctx, "egov-2025", body.encode(), dry_run=False, actor="c"),
    )
    assert [p["row"] for p in error.details["problems"]] == [4, 5]
    clean = await handlers.import_resolutions(
        ctx, "egov-2025", GOOD.encode(), dry_run=True, actor="c"
    )
    assert (clean["valid"], clean["valid_rows"], clean["problems"]) == (True, 2, [])
    empty = await handlers.import_resolutions(
        ctx, "egov-2025", HEADER.encode(), dry_run=True, actor="c"
    )
    assert empty["problems"] == [{"row": 2, "field": "row", "reason": "the file has no rows"}]
    await _refused(
        "invalid_csv",
        handlers.import_resolutions(ctx, "egov-2025", b"\xff\xfe", dry_run=True, actor="c"),
    )
    await _refused(
        "conference_not_found",
        handlers.import_resolutions(ctx, "nope-1", GOOD.encode(), dry_run=True, actor="c"),
    )
    assert store.resolutions == {} and store.outbox == []


async def test_resolution_import_writes_every_row_and_releases_the_events(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    result = await handlers.import_resolutions(
        ctx, "egov-2025", GOOD.encode(), dry_run=False, actor="c"
    )
    assert (result["dry_run"], result["imported"]) == (False, 2)
    listed = await handlers.list_resolutions(ctx, "egov-2025")
    assert [(r.number, r.status, r.progress) for r in listed] == [
        (1, "completed", 100),
        (2, "in_progress", 60),
    ]
    assert [r.id for r in listed] == result["resolution_ids"]
    assert {r.versions[0].origin for r in listed} == {f"import:{result['import_id']}"}
    assert _types(store.outbox) == [CREATED, CREATED]
    assert store.importing == {}
    # The numbers are taken now.
    await _refused(
        "invalid_import",
        handlers.import_resolutions(ctx, "egov-2025", GOOD.encode(), dry_run=False, actor="c"),
    )


async def test_resolution_import_meeting_a_taken_number_leaves_nothing(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    body = HEADER + "".join(f"{n},A {n},R {n},e-GA,,,\n" for n in (1, 2, 3, 4))

    async def rival(op: str, key: str) -> None:  # another coordinator takes number 3
        await _resolution(ctx, 3)

    store.before_write = rival
    error = await _refused(
        "import_conflict",
        handlers.import_resolutions(ctx, "egov-2025", body.encode(), dry_run=False, actor="c"),
    )
    assert error.field == "number"
    assert [r.number for r in await handlers.list_resolutions(ctx, "egov-2025")] == [3]
    assert len(store.resolutions) == 1 and store.importing == {}
    assert _types(store.outbox) == [CREATED]  # the rival's only

    store.import_fails_after = 1
    body = HEADER + "5,A,A,e-GA,,,\n6,B,B,e-GA,,,\n"
    await _refused(
        "import_failed",
        handlers.import_resolutions(ctx, "egov-2025", body.encode(), dry_run=False, actor="c"),
    )
    assert len(store.resolutions) == 1 and len(store.outbox) == 1


async def test_an_import_that_never_finished_is_hidden_then_swept(
    ctx: handlers.Context, store: FakeResolutionsStore, clock: Clock
) -> None:
    await _conference(ctx)
    store.import_dies_after = 1
    with pytest.raises(ProcessDied):
        await handlers.import_resolutions(ctx, "egov-2025", GOOD.encode(), dry_run=False, actor="c")
    assert len(store.resolutions) == 1 and store.outbox == []
    (half,) = store.resolutions
    assert await handlers.list_resolutions(ctx, "egov-2025") == []
    await _refused("resolution_not_found", handlers.get_resolution(ctx, half))
    # Its number stays taken until swept: a new import of it is refused in validation.
    assert await store.resolution_numbers("egov-2025") == {1}
    clock.advance(minutes=5)
    assert await handlers.sweep_unfinished_imports(ctx) == 0  # maybe still running
    clock.advance(minutes=6)
    assert await handlers.sweep_unfinished_imports(ctx) == 1
    assert store.resolutions == {} and await store.resolution_numbers("egov-2025") == set()


async def test_progress_import_dry_run_and_all_or_nothing(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    first = await _resolution(ctx, 1)
    second = await _resolution(ctx, 2)
    stale = b"number,progress,note,version\n1,70,Mifumo 30,1\n2,10,,7\n9,5,,\n"
    report = await handlers.import_progress(ctx, "egov-2025", stale, dry_run=True, actor="c")
    assert [(p["row"], p["field"]) for p in report["problems"]] == [(3, "version"), (4, "number")]
    await _refused(
        "invalid_import",
        handlers.import_progress(ctx, "egov-2025", stale, dry_run=False, actor="c"),
    )
    assert len(store.outbox) == 2  # the two creations only

    good = (
        b"number,status,progress,note,evidence\n"
        b"1,,70,Mifumo 30 imeunganishwa,https://www.ega.go.tz/r1.pdf\n"
        b"2,in_progress,,Kazi imeanza,\n"
    )
    result = await handlers.import_progress(ctx, "egov-2025", good, dry_run=False, actor="c")
    assert result["imported"] == 2 and result["resolution_ids"] == [first.id, second.id]
    one = await handlers.get_resolution(ctx, first.id)
    two = await handlers.get_resolution(ctx, second.id)
    assert (one.progress, one.version, two.progress, two.status) == (70, 2, 25, "in_progress")
    assert one.latest_update.evidence == ["https://www.ega.go.tz/r1.pdf"]
    assert one.versions[-1].origin == f"import:{result['import_id']}"
    assert _types(store.events()) == [CREATED, CREATED, UPDATED, UPDATED]


async def test_progress_import_meeting_a_concurrent_change_reverts_append_only(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    await _conference(ctx)
    first = await _resolution(ctx, 1)
    second = await _resolution(ctx, 2)

    async def rival(op: str, key: str) -> None:  # progress on resolution 2 meanwhile
        await handlers.record_update(
            ctx, second.id, ProgressUpdate(progress=99, note="rival"), expected_version=1,
            actor="rival",
        )  # fmt: skip

    store.before_write = rival
    body = b"number,status,progress,note\n1,in_progress,40,Imeanza\n2,in_progress,50,Imeanza\n"
    error = await _refused(
        "import_conflict",
        handlers.import_progress(ctx, "egov-2025", body, dry_run=False, actor="c"),
    )
    assert error.details == {"row": 3, "reverted": 1}
    one = await handlers.get_resolution(ctx, first.id)
    # Back to where it was, by a new entry: the import's entry is still in the timeline.
    assert (one.status, one.progress, one.version) == ("not_started", 0, 3)
    assert [(e.progress, e.note[:9]) for e in one.timeline] == [(40, "Imeanza"), (0, "Reverted:")]
    assert one.versions[-1].origin.startswith("revert:")
    assert _types(store.events(first.id)) == [CREATED, UPDATED, UPDATED]
    reverted = store.events(first.id)[-1].data
    assert (reverted["previous_progress"], reverted["progress"]) == (40, 0)
    # The rival's write stands.
    assert (await handlers.get_resolution(ctx, second.id)).progress == 99


# --------------------------------------------------------------------------- report


async def test_the_report_and_the_export(ctx: handlers.Context, clock: Clock) -> None:
    await _conference(ctx)
    done = await _resolution(ctx, 1, target_date=date(2025, 6, 30), weight=2)
    late = await _resolution(ctx, 2, target_date=date(2026, 3, 1))
    await _resolution(ctx, 3, target_date=None)
    await handlers.record_update(
        ctx, done.id, ProgressUpdate(status="completed"), expected_version=1, actor="c"
    )
    await handlers.record_update(
        ctx, late.id, ProgressUpdate(status="delayed", progress=30, note="Vifaa"),
        expected_version=1, actor="c",
    )  # fmt: skip
    data = await handlers.implementation_report(ctx, "egov-2025")
    assert data["as_of"] == "2026-03-02"
    # (100*2 + 30 + 0) / 4 = 57.5 -> 58
    assert (data["resolution_count"], data["overall_progress"], data["completed"]) == (3, 58, 1)
    assert [(r["number"], r["overdue"], r["days_overdue"]) for r in data["resolutions"]] == [
        (1, False, 0),  # completed: never overdue
        (2, True, 1),
        (3, False, 0),
    ]
    assert data["resolutions"][1]["latest_update_note"] == "Vifaa"
    # Overdue is judged by the Tanzanian calendar: at 22:00 UTC it is tomorrow in Arusha.
    clock.now = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    later = await handlers.implementation_report(ctx, "egov-2025")
    assert (later["as_of"], later["resolutions"][1]["days_overdue"]) == ("2026-03-03", 2)
    rows = await handlers.export_rows(ctx, "egov-2025")
    assert [(r["number"], r["version"], r["progress"]) for r in rows] == [
        (1, 2, 100),
        (2, 2, 30),
        (3, 1, 0),
    ]
    assert rows[0]["supporting_institutions"] == [] and rows[0]["target_date"] == "2025-06-30"
    await _refused("conference_not_found", handlers.implementation_report(ctx, "nope-1"))


# --------------------------------------------------------------------------- demo seed


async def test_the_demo_seed_is_last_years_conference_in_progress(
    ctx: handlers.Context, store: FakeResolutionsStore
) -> None:
    today = NOW.date()
    seeded = await demo.seed_demo(ctx)
    assert seeded == ["egov-2025", "egov-2026"]  # last year's, and the upcoming one
    previous = await handlers.get_conference(ctx, "egov-2025")
    assert previous.name_en.startswith("[DEMO] 5th Annual") and "Tano" in previous.name_sw
    assert previous.ends_on < today
    resolutions = await handlers.list_resolutions(ctx, "egov-2025")
    assert len(resolutions) == len(demo.RESOLUTIONS)
    assert all(r.title_en.startswith("[DEMO]") for r in resolutions)
    assert await handlers.list_resolutions(ctx, "egov-2026") == []
    statuses = [r.status for r in resolutions]
    under_way = statuses.count("in_progress") + statuses.count("delayed")
    assert under_way > len(statuses) / 2
    assert 1 <= statuses.count("completed") < statuses.count("in_progress")
    assert {"on_hold", "not_started"} <= set(statuses)
    # Dated between the conference and today.
    for r in resolutions:
        assert r.timeline, r.number
        for entry in r.timeline:
            assert iso(datetime.combine(previous.ends_on, datetime.min.time(), UTC)) < entry.at
            assert entry.at < iso(NOW)
    rolled = next(r for r in resolutions if r.actions)
    assert [a.progress for a in rolled.actions] == [100, 60, 20]
    assert (rolled.progress, rolled.status) == (70, "in_progress")
    data = await handlers.implementation_report(ctx, "egov-2025")
    assert 1 <= data["overdue_count"] <= 2
    assert any(r.target_date and r.target_date > today for r in resolutions)
    events = len(store.outbox)
    assert await demo.seed_demo(ctx) == []  # a second start seeds nothing
    assert len(store.outbox) == events
