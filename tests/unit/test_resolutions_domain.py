"""Resolutions rules without I/O: roll-up, statuses, CSV validation, the report."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from services.resolutions import csvio
from services.resolutions.domain import (
    ActionSpec,
    Conference,
    ProgressUpdate,
    Resolution,
    TimelineEntry,
    resolve_progress,
    rolled_up_status,
    weighted_mean,
)
from services.resolutions.report import build_report, render_html, render_report_csv


def test_weighted_mean_rounds_half_up_and_honours_weights() -> None:
    assert weighted_mean([]) is None
    assert weighted_mean([{"progress": 100, "weight": 3}, {"progress": 0, "weight": 1}]) == 75
    # 62.5 shows as 63 (banker's rounding would give 62).
    assert weighted_mean([{"progress": 100, "weight": 5}, {"progress": 0, "weight": 3}]) == 63
    assert weighted_mean([{"progress": 33, "weight": 1}, {"progress": 34, "weight": 1}]) == 34


def test_status_default_progress_applies_unless_a_progress_is_given() -> None:
    assert resolve_progress("completed", None, 40) == 100
    assert resolve_progress("not_started", None, 40) == 0
    assert resolve_progress("delayed", None, 40) == 40  # no default: keep current
    assert resolve_progress("in_progress", 70, 10) == 70


def test_rolled_up_status_follows_the_actions() -> None:
    done = {"status": "completed", "progress": 100}
    half = {"status": "in_progress", "progress": 50}
    assert rolled_up_status("in_progress", [done, done]) == "completed"
    assert rolled_up_status("completed", [done, half]) == "in_progress"
    assert rolled_up_status("not_started", [half]) == "in_progress"
    assert rolled_up_status("delayed", [done, half]) == "delayed"


def test_an_action_under_an_action_is_refused_with_its_field() -> None:
    with pytest.raises(ValidationError) as refused:
        ActionSpec(title="A", institution="e-GA", parent_action_id="x")
    (error,) = refused.value.errors()
    assert error["loc"] == ("parent_action_id",)
    assert "one level" in error["msg"]


def test_progress_outside_0_100_is_refused() -> None:
    with pytest.raises(ValidationError):
        ProgressUpdate(progress=101)
    with pytest.raises(ValidationError):
        ProgressUpdate(progress=-1)


def test_resolutions_csv_reports_every_row_problem_with_row_and_column() -> None:
    text = (
        "number,title_sw,title_en,lead_institution,target_date,status,progress,focal_person_name,focal_person_email\n"
        "1,Azimio,Resolution,e-GA,2025-12-31,in_progress,40,Asha Juma,asha@example.go.tz\n"
        "2,B,B,e-GA,2020-01-01,,,,\n"  # target before the conference
        "3,C,C,e-GA,,finished,,,\n"  # unknown status
        "4,D,D,e-GA,,,140,,\n"  # progress out of range
        "1,E,E,e-GA,,,,,\n"  # number repeated
        "5,F,F,e-GA,,,,Baraka,not-an-email\n"  # bad focal email
        "7,G,G,,,,,,\n"  # lead institution missing
    )
    parsed = csvio.parse_resolutions(text, conference_starts="2025-02-11", existing_numbers={7})
    found = {(p.row, p.field) for p in parsed.problems}
    assert found == {
        (3, "target_date"),
        (4, "status"),
        (5, "progress"),
        (6, "number"),
        (7, "focal_person_email"),
        (8, "lead_institution"),
    }
    ((row, spec),) = parsed.rows
    assert row == 2 and spec.focal_persons[0].institution == "e-GA"


def test_resolutions_csv_with_a_wrong_header_is_refused_before_any_row() -> None:
    parsed = csvio.parse_resolutions(
        "number,title,lead_institution\n1,A,e-GA\n",
        conference_starts="2025-02-11",
        existing_numbers=(),
    )
    assert not parsed.rows
    assert {(p.row, p.field) for p in parsed.problems} == {
        (1, "header"),  # which columns it expects, once
        (1, "title"),
        (1, "title_sw"),
        (1, "title_en"),
    }


def test_progress_csv_checks_numbers_versions_and_actions() -> None:
    current = {
        1: {"version": 3, "actions": []},
        2: {"version": 1, "actions": [{"id": "a"}]},
    }
    text = (
        "number,status,progress,note,version\n"
        "1,in_progress,50,sawa,3\n"
        "2,,60,,\n"  # progress of a rolled-up resolution
        "9,completed,,,\n"  # no such resolution
        "1,completed,,,2\n"  # repeated and stale
    )
    parsed = csvio.parse_progress(text, resolutions=current)
    assert {(p.row, p.field) for p in parsed.problems} == {
        (3, "progress"),
        (4, "number"),
        (5, "number"),
        (5, "version"),
    }
    assert [(r, row.number, row.update.progress) for r, row in parsed.rows] == [(2, 1, 50)]


def test_export_cells_cannot_run_as_spreadsheet_formulas() -> None:
    out = csvio.render_csv([{"a": "=HYPERLINK(1)", "b": ["x", "y"], "c": True}], ("a", "b", "c"))
    assert out.splitlines()[1] == "'=HYPERLINK(1),x;y,yes"


def _resolution(number: int, title_sw: str, title_en: str, **fields: Any) -> Resolution:
    return Resolution(
        id=f"r{number}",
        conference_id="egov-t",
        number=number,
        title_sw=title_sw,
        title_en=title_en,
        lead_institution="e-GA",
        created_at="2024-02-08T14:00:00.000000Z",
        updated_at="2024-02-08T14:00:00.000000Z",
        **fields,
    )


def _docs() -> list[Resolution]:
    entry = TimelineEntry(
        id="t1", at="2025-02-01T08:00:00.000000Z", status="delayed", progress=30,
        note="Vifaa <havijafika>", evidence=[], recorded_by="c", version=2,
    )  # fmt: skip
    return [
        _resolution(1, "Usalama", "Security", status="completed", progress=100,
                    target_date=date(2024, 12, 31)),
        _resolution(2, "Mifumo", "Systems", status="delayed", progress=30,
                    target_date=date(2025, 1, 31), weight=3, timeline=[entry]),
        _resolution(3, "Saini", "Signatures", status="not_started", progress=0),
    ]  # fmt: skip


CONFERENCE = Conference(
    id="egov-t",
    name_sw="Mkutano",
    name_en="Conference",
    starts_on=date(2024, 2, 6),
    ends_on=date(2024, 2, 8),
    venue="AICC",
    created_at="2024-01-01T00:00:00.000000Z",
)


def test_report_overall_progress_counts_and_overdue() -> None:
    report = build_report(CONFERENCE, _docs(), date(2025, 3, 1))
    # (100*1 + 30*3 + 0*1) / 5 = 38
    assert report["overall_progress"] == 38
    assert {b["status"]: b["count"] for b in report["by_status"]} == {
        "not_started": 1,
        "in_progress": 0,
        "delayed": 1,
        "on_hold": 0,
        "completed": 1,
    }
    overdue = [r["number"] for r in report["resolutions"] if r["overdue"]]
    assert overdue == [2]  # a completed one past its date is not overdue
    assert report["resolutions"][1]["days_overdue"] == 29


def test_report_html_is_self_contained_escaped_and_bilingual() -> None:
    html = render_html(build_report(CONFERENCE, _docs(), date(2025, 3, 1)))
    assert "Maazimio / Resolutions" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "Vifaa &lt;havijafika&gt;" in html  # notes are escaped
    assert html.count('class="resolution"') == 3
    assert html.count("<rect") == 5  # one bar per status
    english = render_html(build_report(CONFERENCE, _docs(), date(2025, 3, 1)), "en")
    assert "Resolutions by status" in english and "Maazimio kwa hali" not in english


def test_report_csv_has_one_row_per_resolution() -> None:
    text = render_report_csv(build_report(CONFERENCE, _docs(), date(2025, 3, 1)))
    lines = text.splitlines()
    assert lines[0].startswith("number,title_sw,title_en")
    assert len(lines) == 4 and ",delayed,Imechelewa,Delayed,30,3,2025-01-31,yes,29," in lines[2]


def test_the_aggregate_decides_at_the_time_it_is_given_and_records_its_events() -> None:
    from datetime import UTC, datetime

    from services.resolutions.domain import ResolutionSpec

    adopted = datetime(2024, 2, 8, 14, 0, tzinfo=UTC)
    spec = ResolutionSpec(number=1, title_sw="A", title_en="A", lead_institution="e-GA")
    resolution = Resolution.create(CONFERENCE, spec, actor="c", now=adopted)
    assert resolution.created_at == "2024-02-08T14:00:00.000000Z"
    assert [type(e).event_name() for e in resolution.take_events()] == ["ResolutionCreated"]
    assert resolution.take_events() == []
    later = datetime(2024, 9, 1, 6, 0, tzinfo=UTC)
    resolution.record_update(
        ProgressUpdate(status="completed"), expected_version=1, actor="c", now=later
    )
    assert (resolution.version, resolution.timeline[0].at) == (2, "2024-09-01T06:00:00.000000Z")
    updated, completed = resolution.take_events()
    assert (updated.updated_at, completed.completed_at) == (later, later)
    assert (updated.previous_status, completed.status) == ("not_started", "completed")


def test_a_change_records_its_public_event_and_the_focal_persons_notice() -> None:
    """One change, one list of events (saved in one outbox write): the public version 2 on
    resolutions.v1 without contacts, and the notice with them on resolutions.notices.v1."""
    from datetime import UTC, datetime

    from services.resolutions.domain import FocalPersonIn, ResolutionChange, ResolutionSpec
    from shared.topics import RESOLUTIONS, RESOLUTIONS_NOTICES

    now = datetime(2024, 9, 1, 6, 0, tzinfo=UTC)
    asha = FocalPersonIn(
        full_name="Asha Juma",
        institution="TAMISEMI",
        email="asha@example.go.tz",
        phone="+255712000001",
        language="en",
    )
    spec = ResolutionSpec(
        number=2, title_sw="B", title_en="B", lead_institution="e-GA", focal_persons=[asha]
    )
    resolution = Resolution.create(CONFERENCE, spec, actor="c", now=now)
    (created,) = resolution.take_events()  # nobody is told of a creation: no notice
    assert (created.topic, created.schema_version) == (RESOLUTIONS, 2)
    assert (created.lead_institution, created.focal_person_count) == ("e-GA", 1)

    resolution.record_update(
        ProgressUpdate(status="completed", note="Done"), expected_version=1, actor="c", now=now
    )
    events = resolution.take_events()
    assert [(type(e).event_name(), e.topic) for e in events] == [
        ("ResolutionUpdated", RESOLUTIONS),
        ("ResolutionUpdatedNotice", RESOLUTIONS_NOTICES),
        ("ResolutionCompleted", RESOLUTIONS),
        ("ResolutionCompletedNotice", RESOLUTIONS_NOTICES),
    ]
    updated, updated_notice, completed, completed_notice = events
    for public in (updated, completed):
        dumped = public.model_dump(mode="json")
        assert "focal_persons" not in dumped
        assert "asha@example.go.tz" not in str(dumped) and "Asha" not in str(dumped)
        assert (dumped["lead_institution"], dumped["focal_person_count"]) == ("e-GA", 1)
    for notice in (updated_notice, completed_notice):
        assert notice.aggregate_id == resolution.id
        (person,) = notice.focal_persons
        assert (person.full_name, person.email, person.phone, person.language) == (
            "Asha Juma",
            "asha@example.go.tz",
            "+255712000001",
            "en",
        )
    assert (updated_notice.previous_status, updated_notice.note) == ("not_started", "Done")
    assert (updated_notice.version, completed_notice.completed_at) == (2, now)

    # Without focal persons there is nobody to tell: the public event only.
    resolution.edit(
        ResolutionChange(focal_persons=[]),
        CONFERENCE,
        expected_version=2,
        actor="c",
        now=now,
    )
    (edited,) = resolution.take_events()
    assert (type(edited).event_name(), edited.focal_person_count) == ("ResolutionUpdated", 0)
