"""Resolutions use cases against the session's real MongoDB (in process, no HTTP).

These prove what is hard to provoke over HTTP: an import that fails part-way leaves
nothing behind and publishes nothing; a progress import that meets a concurrent change
reverts what it applied, append-only; the demo seed; a stale write is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.resolutions import demo, handlers
from services.resolutions.domain import ConferenceSpec, DomainError, ProgressUpdate, ResolutionSpec
from services.resolutions.store import MongoResolutionsStore
from shared.demo import demo_calendar
from tests.stack import MongoServer

HEADER = "number,title_sw,title_en,lead_institution,target_date,status,progress\n"


@pytest.fixture
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    """A use-case context on a database of its own, dropped afterwards."""
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    name = f"mkutano_resolutions_it_{secrets.token_hex(4)}"
    store = MongoResolutionsStore(client[name])
    await store.ensure_indexes()
    try:
        yield handlers.Context(store=store)
    finally:
        await client.drop_database(name)
        await client.close()


async def _conference(ctx: handlers.Context) -> str:
    spec = ConferenceSpec(
        id=f"conf-{secrets.token_hex(4)}",
        name_sw="Mkutano wa majaribio",
        name_en="Test conference",
        starts_on=date(2025, 2, 11),
        ends_on=date(2025, 2, 13),
        venue="AICC",
    )
    await handlers.create_conference(ctx, spec)
    return spec.id


class TakesANumberMidway:
    """The resolutions collection, with another coordinator taking number 3 just as
    the import's insert_many starts (the race validation cannot see)."""

    def __init__(self, real: Any, conference_id: str) -> None:
        self._real = real
        self._conference_id = conference_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def insert_many(self, docs: list[dict[str, Any]], **kwargs: Any) -> Any:
        await self._real.insert_one(
            {"_id": "someone-else", "conference_id": self._conference_id, "number": 3}
        )
        return await self._real.insert_many(docs, **kwargs)


async def test_resolution_import_failing_midway_leaves_nothing_and_publishes_nothing(
    ctx: handlers.Context,
) -> None:
    conference_id = await _conference(ctx)
    body = HEADER + "".join(
        f"{n},Azimio {n},Resolution {n},e-GA,2025-12-31,,\n" for n in (1, 2, 3, 4)
    )
    real = ctx.store.resolutions
    ctx.store.resolutions = TakesANumberMidway(real, conference_id)  # type: ignore[assignment]
    with pytest.raises(DomainError) as refused:
        await handlers.import_resolutions(
            ctx, conference_id, body.encode(), dry_run=False, actor="it"
        )
    ctx.store.resolutions = real
    assert refused.value.code == "import_conflict"
    # Rows 1 and 2 were inserted before the clash, then removed: only the rival remains.
    left = await real.find({"conference_id": conference_id}).to_list()
    assert [d["_id"] for d in left] == ["someone-else"]
    assert await real.count_documents({"outbox_pending": True}) == 0


async def test_resolution_import_holds_events_until_every_row_is_in(
    ctx: handlers.Context,
) -> None:
    conference_id = await _conference(ctx)
    body = HEADER + "1,Azimio,Resolution,e-GA,2025-12-31,in_progress,30\n2,B,B,e-GA,,,\n"
    result = await handlers.import_resolutions(
        ctx, conference_id, body.encode(), dry_run=False, actor="it"
    )
    assert result["imported"] == 2
    listed = await ctx.store.list_resolutions(conference_id)
    assert [(r.number, r.status, r.progress) for r in listed] == [
        (1, "in_progress", 30),
        (2, "not_started", 0),
    ]
    # Released: visible, events pending for the relay, no hold left.
    for d in await ctx.store.resolutions.find({"conference_id": conference_id}).to_list():
        assert d["importing"] is None and d["outbox_lease_until"] == 0.0
        assert [m["type"] for m in d["outbox"]] == ["tz.go.ega.resolutions.ResolutionCreated.v2"]


async def test_unfinished_import_is_hidden_and_swept(ctx: handlers.Context) -> None:
    conference_id = await _conference(ctx)
    await ctx.store.resolutions.insert_one(
        {
            "_id": "half-imported",
            "conference_id": conference_id,
            "number": 9,
            "importing": "dead-import",
            "import_started": 1.0,
        }
    )
    assert await ctx.store.list_resolutions(conference_id) == []
    assert await ctx.store.get_resolution("half-imported") is None
    assert await handlers.sweep_unfinished_imports(ctx) == 1
    assert await ctx.store.resolutions.find_one({"_id": "half-imported"}) is None


class ChangesResolutionTwoMidway:
    """The resolutions collection, where another coordinator records progress on
    resolution 2 between the import's validation and its writes."""

    def __init__(self, ctx: handlers.Context, real: Any, target_id: str) -> None:
        self._ctx = ctx
        self._real = real
        self._target = target_id
        self._fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def update_one(self, flt: dict[str, Any], update: dict[str, Any], **kw: Any) -> Any:
        if not self._fired:
            self._fired = True
            rival = await self._ctx.store.get_resolution(self._target)
            assert rival is not None
            rival.record_update(
                ProgressUpdate(progress=99, note="rival"),
                expected_version=rival.version,
                actor="rival",
                now=self._ctx.clock(),
            )
            await self._ctx.store.save_resolution(rival)
        return await self._real.update_one(flt, update, **kw)


async def test_progress_import_meeting_a_concurrent_change_reverts_append_only(
    ctx: handlers.Context,
) -> None:
    conference_id = await _conference(ctx)
    first = await handlers.create_resolution(
        ctx,
        conference_id,
        ResolutionSpec(number=1, title_sw="A", title_en="A", lead_institution="e-GA"),
        actor="it",
    )
    second = await handlers.create_resolution(
        ctx,
        conference_id,
        ResolutionSpec(number=2, title_sw="B", title_en="B", lead_institution="e-GA"),
        actor="it",
    )
    body = "number,status,progress,note\n1,in_progress,40,Imeanza\n2,in_progress,50,Imeanza\n"
    real = ctx.store.resolutions
    ctx.store.resolutions = ChangesResolutionTwoMidway(ctx, real, second.id)  # type: ignore[assignment]
    with pytest.raises(DomainError) as refused:
        await handlers.import_progress(ctx, conference_id, body.encode(), dry_run=False, actor="it")
    ctx.store.resolutions = real
    assert refused.value.code == "import_conflict" and refused.value.details["row"] == 3

    one = await ctx.store.get_resolution(first.id)
    # Back to where it was, by a new entry: the import's entry is still in the timeline.
    assert (one.status, one.progress) == ("not_started", 0)
    assert [(e.progress, e.note[:9]) for e in one.timeline] == [
        (40, "Imeanza"),
        (0, "Reverted:"),
    ]
    assert one.version == 3
    stored = await real.find_one({"_id": first.id})
    events = [m["type"].rsplit(".", 2)[-2] for m in stored["outbox"]]
    assert events == ["ResolutionCreated", "ResolutionUpdated", "ResolutionUpdated"]
    # The rival's write stands.
    two = await ctx.store.get_resolution(second.id)
    assert two.progress == 99


async def test_stale_version_is_refused_and_nothing_changes(ctx: handlers.Context) -> None:
    conference_id = await _conference(ctx)
    doc = await handlers.create_resolution(
        ctx,
        conference_id,
        ResolutionSpec(number=1, title_sw="A", title_en="A", lead_institution="e-GA"),
        actor="it",
    )
    await handlers.record_update(
        ctx, doc.id, ProgressUpdate(progress=10), expected_version=1, actor="a"
    )
    with pytest.raises(DomainError) as stale:
        await handlers.record_update(
            ctx, doc.id, ProgressUpdate(progress=70), expected_version=1, actor="b"
        )
    assert stale.value.code == "version_conflict" and stale.value.details == {"current_version": 2}
    now = await ctx.store.get_resolution(doc.id)
    assert now.progress == 10 and len(now.timeline) == 1


async def test_demo_seed_has_last_years_labelled_resolutions_and_a_report(
    ctx: handlers.Context,
) -> None:
    previous = demo_calendar(ctx.today()).previous
    await demo.seed_demo(ctx)
    conference = await ctx.store.get_conference(previous.id)
    resolutions = await ctx.store.list_resolutions(previous.id)
    assert len(resolutions) == len(demo.RESOLUTIONS) == 12
    assert all(r.title_en.startswith("[DEMO]") for r in resolutions)
    assert "[DEMO]" in conference.name_en
    rolled = resolutions[1]
    # Weights 2, 1, 1 at 100, 60, 20: (200 + 60 + 20) / 4 = 70.
    assert [a.progress for a in rolled.actions] == [100, 60, 20]
    assert rolled.progress == 70 and rolled.status == "in_progress"
    report = await handlers.implementation_report(ctx, previous.id)
    assert report["completed"] == 3 and report["overdue_count"] >= 1
    await demo.seed_demo(ctx)  # a second start does not seed twice
    assert len(await ctx.store.list_resolutions(previous.id)) == 12
