"""Issue 17's rules and use cases without a server: report links, the focal person's
update (direct or pending approval), evidence files checked by content, reminders once
per rule, the weekly digest, the scorecard and conferences side by side."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.resolutions import handlers, report
from services.resolutions.domain import (
    ConferenceSpec,
    DomainError,
    FocalLinkSigner,
    FocalPersonIn,
    ProgressUpdate,
    ReportingRules,
    ResolutionSpec,
    check_evidence,
    person_key,
)
from tests.unit.fakes.resolutions import FakeEvidenceStore, FakeResolutionsStore

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
PDF = b"%PDF-1.4\n%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 16
REMINDER = "tz.go.ega.resolutions.ResolutionReminderNotice.v1"
DIGEST = "tz.go.ega.resolutions.CoordinatorDigestNotice.v1"
UPDATED_NOTICE = "tz.go.ega.resolutions.ResolutionUpdatedNotice.v1"
ASHA = FocalPersonIn(full_name="Asha Juma", institution="Wizara ya Fedha", email="asha@x.go.tz")
JUMA = FocalPersonIn(full_name="Juma Ali", institution="e-GA", email="juma@x.go.tz")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(clock: Clock) -> handlers.Context:
    return handlers.Context(
        store=FakeResolutionsStore(),
        clock=clock,
        links=FocalLinkSigner(b"k" * 32),
        public_url="https://maazimio.example",
        evidence=FakeEvidenceStore(),
        evidence_max_bytes=1024,
        digest_recipients=("coordinator@x.go.tz",),
    )


async def setup(ctx, *, approval=False, target: date | None = None, starts=date(2025, 2, 11)):
    await handlers.create_conference(
        ctx,
        ConferenceSpec(
            id="egov-2025",
            name_sw="Mkutano",
            name_en="Conference",
            starts_on=starts,
            ends_on=starts + timedelta(days=2),
            venue="AICC",
            reporting=ReportingRules(approval_required=approval),
        ),
    )
    resolutions = []
    for number, person in ((1, ASHA), (2, JUMA)):
        resolutions.append(
            await handlers.create_resolution(
                ctx,
                "egov-2025",
                ResolutionSpec(
                    number=number,
                    title_sw=f"Azimio {number}",
                    title_en=f"Resolution {number}",
                    lead_institution="e-GA" if number == 1 else "Wizara",
                    target_date=target,
                    focal_persons=[person],
                ),
                actor="key-1",
            )
        )
    return resolutions


def link_for(ctx, resolution, person=ASHA, *, days=45) -> str:
    return ctx.links.sign(resolution.id, person_key(person.email), NOW + timedelta(days=days))


# --------------------------------------------------------------------------- links


def test_a_link_names_one_resolution_and_one_person_until_it_expires() -> None:
    signer = FocalLinkSigner(b"s" * 32)
    rid = "0b8f6c1e-3a57-4a53-9d43-6a7e9b6c1f10"
    link = signer.sign(rid, person_key("A@x.go.tz"), NOW + timedelta(days=1))
    assert len(link) == 59
    assert signer.verify(link, NOW) == (rid, person_key("a@x.go.tz"))
    assert signer.verify(link, NOW + timedelta(days=2)) is None  # expired
    assert signer.verify(link[:-1] + ("A" if link[-1] != "A" else "B"), NOW) is None
    assert FocalLinkSigner(b"t" * 32).verify(link, NOW) is None  # another key
    assert signer.verify("x" * 59, NOW) is None


async def test_every_notice_carries_each_focal_persons_own_link(ctx) -> None:
    first, _ = await setup(ctx)
    await handlers.record_update(
        ctx, first.id, ProgressUpdate(progress=20), expected_version=1, actor="key-1"
    )
    (notice,) = [m for m in ctx.store.notices(first.id) if m.type == UPDATED_NOTICE]
    (link,) = notice.data["report_links"]
    assert link["email"] == ASHA.email
    assert link["url"].startswith("https://maazimio.example/report/")
    opened = await handlers.open_report_link(ctx, link["url"].rsplit("/", 1)[1])
    assert opened.resolution.id == first.id and opened.person.email == ASHA.email


async def test_a_link_opens_its_resolution_only_and_the_same_refusal_for_every_bad_one(
    ctx, clock
) -> None:
    first, second = await setup(ctx)
    assert (await handlers.open_report_link(ctx, link_for(ctx, first))).resolution.id == first.id
    # Asha is not a focal person of the second: a link for it (however made) opens nothing.
    bad = [
        link_for(ctx, second, ASHA),
        "nonsense",
        link_for(ctx, first)[:-2] + "zz",
    ]
    for link in bad:
        with pytest.raises(DomainError) as refused:
            await handlers.open_report_link(ctx, link)
        assert refused.value.code == "link_not_found"
    clock.now = NOW + timedelta(days=46)
    with pytest.raises(DomainError, match="does not open"):
        await handlers.open_report_link(ctx, link_for(ctx, first))


# --------------------------------------------------------------------------- updates


async def test_a_focal_persons_update_counts_at_once_with_its_evidence(ctx) -> None:
    first, _ = await setup(ctx)
    resolution, pending = await handlers.submit_focal_update(
        ctx,
        link_for(ctx, first),
        ProgressUpdate(progress=40, note="Half the sites"),
        [("ripoti.pdf", PDF)],
        expected_version=1,
    )
    assert pending is None
    assert resolution.progress == 40 and resolution.status == "not_started"
    entry = resolution.timeline[-1]
    assert entry.submitted_by == person_key(ASHA.email)
    assert entry.recorded_by == f"focal_person:{person_key(ASHA.email)}"
    (file,) = entry.files
    assert file["media_type"] == "application/pdf" and file["name"] == "ripoti.pdf"
    assert file["sha256"] in ctx.evidence.files
    served = await handlers.evidence_for_link(ctx, link_for(ctx, first), file["sha256"])
    assert served.data == PDF
    assert "tz.go.ega.resolutions.ResolutionUpdated.v2" in [
        m.type for m in ctx.store.events(first.id)
    ]


async def test_with_approval_required_the_update_waits_then_counts_once_approved(ctx) -> None:
    first, _ = await setup(ctx, approval=True)
    resolution, pending = await handlers.submit_focal_update(
        ctx, link_for(ctx, first), ProgressUpdate(progress=70), expected_version=1
    )
    assert pending is not None and resolution.progress == 0 and resolution.version == 1
    waiting = await handlers.pending_updates(ctx, "egov-2025")
    assert [(r.id, p.progress) for r, p in waiting] == [(first.id, 70)]
    data = await handlers.implementation_report(ctx, "egov-2025")
    assert data["resolutions"][0]["progress"] == 0  # not in the report yet
    with pytest.raises(DomainError) as stale:
        await handlers.approve_pending(ctx, first.id, pending.id, expected_version=7, actor="coord")
    assert stale.value.code == "version_conflict"
    approved = await handlers.approve_pending(
        ctx, first.id, pending.id, expected_version=1, actor="coord"
    )
    assert approved.progress == 70 and approved.timeline[-1].approved_by == "coord"
    assert await handlers.pending_updates(ctx, "egov-2025") == []
    with pytest.raises(DomainError) as again:
        await handlers.approve_pending(ctx, first.id, pending.id, expected_version=2, actor="c")
    assert again.value.code == "update_already_decided"


async def test_a_rejected_update_never_counts(ctx) -> None:
    first, _ = await setup(ctx, approval=True)
    _, pending = await handlers.submit_focal_update(
        ctx, link_for(ctx, first), ProgressUpdate(progress=90), expected_version=1
    )
    rejected = await handlers.reject_pending(
        ctx, first.id, pending.id, reason="No evidence", actor="coord"
    )
    assert rejected.progress == 0 and rejected.pending[0].state == "rejected"
    assert rejected.pending[0].reason == "No evidence"


@pytest.mark.parametrize(
    ("uploads", "code", "named"),
    [
        ([("minutes.pdf", b"plain text pretending")], "file_type_refused", "minutes.pdf"),
        ([("big.pdf", PDF + b"0" * 2000)], "file_too_large", "big.pdf"),
        ([("a.png", PNG)] * 6, "too_many_files", None),
    ],
)
async def test_bad_files_are_refused_named_and_nothing_is_written(
    ctx, uploads, code, named
) -> None:
    first, _ = await setup(ctx)
    with pytest.raises(DomainError) as refused:
        await handlers.submit_focal_update(
            ctx, link_for(ctx, first), ProgressUpdate(progress=50), uploads, expected_version=1
        )
    assert refused.value.code == code and refused.value.field == "files"
    if named:
        assert named in refused.value.message
    assert ctx.evidence.files == {}
    assert (await handlers.get_resolution(ctx, first.id)).version == 1


async def test_a_stale_version_is_409_with_the_current_one_and_keeps_no_file(ctx) -> None:
    first, _ = await setup(ctx)
    await handlers.record_update(
        ctx, first.id, ProgressUpdate(progress=5), expected_version=1, actor="coord"
    )
    with pytest.raises(DomainError) as stale:
        await handlers.submit_focal_update(
            ctx,
            link_for(ctx, first),
            ProgressUpdate(progress=50),
            [("r.pdf", PDF)],
            expected_version=1,
        )
    assert stale.value.code == "version_conflict"
    assert stale.value.details == {"current_version": 2}
    assert ctx.evidence.files == {}


def test_progress_outside_0_to_100_is_refused_by_the_model() -> None:
    for value in (-1, 101):
        with pytest.raises(ValueError, match="progress"):
            ProgressUpdate.model_validate({"progress": value})


def test_the_type_is_judged_by_content_not_name() -> None:
    assert check_evidence(PNG, "photo.pdf", max_bytes=10_000).media_type == "image/png"
    with pytest.raises(DomainError) as refused:
        check_evidence(b"MZ\x90\x00" + b"\0" * 64, "report.docx", max_bytes=10_000)
    assert refused.value.code == "file_type_refused"
    assert check_evidence(PDF, "../../etc/ripoti.pdf", max_bytes=100).name == "ripoti.pdf"


# --------------------------------------------------------------------------- chasing


async def test_an_overdue_resolution_is_reminded_once_per_rule(ctx, clock) -> None:
    first, _ = await setup(ctx, target=date(2026, 2, 20))  # 10 days before NOW
    sent = await handlers.send_due_reminders(ctx)
    rules = sorted(m.data["rule"] for m in ctx.store.notices(first.id) if m.type == REMINDER)
    assert rules == ["overdue", "report_due"]
    assert sent == 4  # the two resolutions, two rules each
    assert await handlers.send_due_reminders(ctx) == 0  # the same day: nothing again
    clock.now = NOW + timedelta(days=1)
    assert await handlers.send_due_reminders(ctx) == 0  # the same week of lateness
    clock.now = NOW + timedelta(days=5)
    assert await handlers.send_due_reminders(ctx) == 2  # a week later: one more each
    overdue = [
        m.data
        for m in ctx.store.notices(first.id)
        if m.type == REMINDER and m.data["rule"] == "overdue"
    ]
    assert [e["days"] for e in overdue] == [10, 15]
    assert overdue[0]["report_links"][0]["email"] == ASHA.email


async def test_before_a_target_date_only_the_tightest_reminder_fires(ctx, clock) -> None:
    first, _ = await setup(ctx, target=date(2026, 3, 7))  # in 5 days (Arusha calendar)
    await handlers.send_due_reminders(ctx)
    befores = [
        m.data
        for m in ctx.store.notices(first.id)
        if m.type == REMINDER and m.data["rule"] == "before_target"
    ]
    assert [e["days"] for e in befores] == [7]


async def test_completed_resolutions_are_not_chased(ctx) -> None:
    first, _ = await setup(ctx, target=date(2026, 2, 20))
    await handlers.record_update(
        ctx, first.id, ProgressUpdate(status="completed"), expected_version=1, actor="c"
    )
    await handlers.send_due_reminders(ctx)
    assert not [m for m in ctx.store.notices(first.id) if m.type == REMINDER]


async def test_the_weekly_digest_lists_what_is_overdue_once_a_week(ctx, clock) -> None:
    first, second = await setup(ctx, target=date(2026, 2, 20))
    await handlers.record_update(
        ctx,
        second.id,
        ProgressUpdate(progress=30, note="Moving"),
        expected_version=1,
        actor="c",
    )
    assert await handlers.send_digests(ctx) == 1
    assert await handlers.send_digests(ctx) == 0
    (digest,) = [m.data for m in ctx.store.outbox if m.type == DIGEST]
    assert digest["recipients"] == ["coordinator@x.go.tz"]
    assert {i["number"] for i in digest["overdue"]} == {1, 2}
    assert [i["number"] for i in digest["changed"]] == [2]
    assert digest["changed"][0]["note"] == "Moving"
    assert digest["overdue"][0]["days_overdue"] == 10
    clock.now = NOW + timedelta(days=7)
    assert await handlers.send_digests(ctx) == 1


# --------------------------------------------------------------------------- report


async def test_the_scorecard_and_the_progress_over_time(ctx, clock) -> None:
    first, second = await setup(ctx, target=date(2026, 6, 30))
    await handlers.record_update(
        ctx, first.id, ProgressUpdate(progress=50), expected_version=1, actor="c"
    )
    clock.now = NOW + timedelta(days=3)
    await handlers.record_update(
        ctx, first.id, ProgressUpdate(status="completed"), expected_version=2, actor="c"
    )
    data = await handlers.implementation_report(ctx, "egov-2025")
    cards = {c["institution"]: c for c in data["scorecard"]}
    assert cards["e-GA"] == {
        "institution": "e-GA",
        "led": 1,
        "completed": 1,
        "on_time": 1,
        "overdue": 0,
        "average_progress": 100,
    }
    assert cards["Wizara"]["completed"] == 0 and cards["Wizara"]["average_progress"] == 0
    history = data["resolutions"][0]["history"]
    assert [p["progress"] for p in history] == [0, 50, 100]
    svg = report.progress_svg(history, "Progress")
    assert svg.startswith("<svg") and "<polyline" in svg and "<script" not in svg


async def test_conferences_side_by_side_are_as_many_as_there_are(ctx) -> None:
    await setup(ctx)
    for year in (2023, 2024):
        await handlers.create_conference(
            ctx,
            ConferenceSpec(
                id=f"egov-{year}",
                name_sw=f"Mkutano {year}",
                name_en=f"Conference {year}",
                starts_on=date(year, 2, 11),
                ends_on=date(year, 2, 13),
                venue="AICC",
            ),
        )
    data = await handlers.conferences_side_by_side(ctx, [])
    assert data["conference_count"] == 3
    assert [c["conference"]["id"] for c in data["conferences"]] == [
        "egov-2023",
        "egov-2024",
        "egov-2025",
    ]
    assert [c["resolution_count"] for c in data["conferences"]] == [0, 0, 2]
    two = await handlers.conferences_side_by_side(ctx, ["egov-2025", "egov-2024"])
    assert two["conference_count"] == 2
    html = report.render_across_html(two, "en")
    assert html.count('scope="col"') == 2 and "<script" not in html


async def test_a_coordinators_update_may_carry_files_checked_the_same_way(ctx) -> None:
    first, _ = await setup(ctx)
    with pytest.raises(DomainError) as refused:
        await handlers.record_update_with_files(
            ctx,
            first.id,
            ProgressUpdate(progress=20),
            [("x.docx", b"text")],
            expected_version=1,
            actor="coord",
        )
    assert refused.value.code == "file_type_refused" and ctx.evidence.files == {}
    written = await handlers.record_update_with_files(
        ctx,
        first.id,
        ProgressUpdate(progress=20),
        [("photo.jpg", PNG)],
        expected_version=1,
        actor="coord",
    )
    (file,) = written.timeline[-1].files
    assert file["media_type"] == "image/png" and written.timeline[-1].recorded_by == "coord"
    served = await handlers.evidence_for_reader(ctx, first.id, file["sha256"])
    assert served.data == PNG


async def test_the_report_link_goes_out_on_the_cadence_and_before_the_next_conference(
    ctx, clock
) -> None:
    from services.resolutions.domain import ConferenceChange

    first, _ = await setup(ctx)
    await handlers.edit_conference(
        ctx, "egov-2025", ConferenceChange(reporting=ReportingRules(report_every_days=30))
    )
    await handlers.create_conference(
        ctx,
        ConferenceSpec(
            id="egov-2026",
            name_sw="Mkutano ujao",
            name_en="Next conference",
            starts_on=date(2026, 3, 12),
            ends_on=date(2026, 3, 14),
            venue="AICC",
        ),
    )

    def report_due() -> list:
        return [
            m.data
            for m in ctx.store.notices(first.id)
            if m.type == REMINDER and m.data["rule"] == "report_due"
        ]

    await handlers.send_due_reminders(ctx)  # 10 days before the next conference
    assert sorted(str(d["days"]) for d in report_due()) == ["14", "None"]
    await handlers.send_due_reminders(ctx)
    assert len(report_due()) == 2
    clock.now = NOW + timedelta(days=30)  # the next period of the cadence
    await handlers.send_due_reminders(ctx)
    assert len(report_due()) == 3


# --------------------------------------------------------------------------- erasure


async def test_an_erased_focal_person_leaves_resolution_history_and_pending_updates(ctx) -> None:
    from services.resolutions.domain import ResolutionChange

    first, second = await setup(ctx, approval=True)
    # Asha is replaced on the first resolution (the versions' history keeps her), then
    # added to the second, where an update of hers waits for a coordinator.
    await handlers.edit_resolution(
        ctx, first.id, ResolutionChange(focal_persons=[JUMA]), expected_version=1, actor="c"
    )
    await handlers.edit_resolution(
        ctx,
        second.id,
        ResolutionChange(focal_persons=[JUMA, ASHA]),
        expected_version=1,
        actor="c",
    )
    _, pending = await handlers.submit_focal_update(
        ctx, link_for(ctx, second), ProgressUpdate(note="Imeanza"), expected_version=2
    )
    assert pending is not None and pending.submitter_name == "Asha Juma"

    erased = await handlers.erase_focal_person(
        ctx, " ASHA@x.go.tz ", reach=lambda conference_id: True, actor="coord"
    )
    assert sorted(erased) == sorted([first.id, second.id])
    for rid in (first.id, second.id):
        kept = await ctx.store.get_resolution(rid)
        assert "asha" not in repr(kept).lower()  # no name, no address, anywhere
        assert [p.email for p in kept.focal_persons] == ["juma@x.go.tz"]
        notices = [e for e in ctx.store.notices(rid) if e.type.endswith("FocalPersonErased.v1")]
        assert [n.data["email"] for n in notices] == ["asha@x.go.tz"]
        assert notices[0].data["person_key"] == person_key("asha@x.go.tz")
    still = (await ctx.store.get_resolution(second.id)).pending[0]
    assert still.submitted_by == person_key("asha@x.go.tz") and still.note == "Imeanza"
    # Her link no longer opens the page; asking again erases nothing more.
    with pytest.raises(DomainError):
        await handlers.open_report_link(ctx, link_for(ctx, second))
    assert (
        await handlers.erase_focal_person(ctx, "asha@x.go.tz", reach=lambda c: True, actor="c")
        == []
    )


async def test_a_scoped_erasure_stays_within_its_conferences(ctx) -> None:
    await setup(ctx)
    assert (
        await handlers.erase_focal_person(ctx, ASHA.email, reach=lambda c: False, actor="c") == []
    )
    assert (
        await handlers.erase_focal_person(ctx, "nobody@x.go.tz", reach=lambda c: True, actor="c")
        == []
    )
