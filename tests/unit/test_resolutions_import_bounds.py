"""A CSV import's report is bounded whatever the file holds; control characters in a
cell are row problems; exports never carry one (issue 12)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from services.resolutions import csvio, handlers
from services.resolutions.domain import ConferenceSpec, DomainError
from shared.errors import api_error_of
from tests.unit.fakes.resolutions import FakeResolutionsStore

REPORT_BOUND = 64 * 1024  # docs/resolutions.md
HEADER = "number,title_sw,title_en,lead_institution\n"
ALL_COLUMNS = csvio.RESOLUTION_REQUIRED + csvio.RESOLUTION_OPTIONAL
CONTROL = "must not contain control characters"


@pytest.fixture
async def ctx() -> handlers.Context:
    ctx = handlers.Context(store=FakeResolutionsStore())
    await handlers.create_conference(
        ctx,
        ConferenceSpec(
            id="egov-2025",
            name_sw="Mkutano",
            name_en="Conference",
            starts_on=date(2025, 2, 11),
            ends_on=date(2025, 2, 13),
            venue="AICC",
        ),
    )
    return ctx


async def _sizes(ctx: handlers.Context, body: bytes) -> tuple[dict, int, int]:
    """The dry run's report, its size, and the size of the 422 refusing the import."""
    report = await handlers.import_resolutions(ctx, "egov-2025", body, dry_run=True, actor="c")
    with pytest.raises(DomainError) as refused:
        await handlers.import_resolutions(ctx, "egov-2025", body, dry_run=False, actor="c")
    error = api_error_of(refused.value, {"invalid_import": 422})
    return report, len(json.dumps(report)), len(json.dumps(error.body()))


HOSTILE = {
    "330 KB of unknown columns": ",".join(f"column-{n:06d}" for n in range(24_000)) + "\n",
    "unknown columns of control characters": ",".join(["\x00\x01\x02" * 30] * 5000) + "\n",
    "one column name of 100 KB": "n" * 100_000 + "," + HEADER,
    "2,000 rows with every cell wrong": ",".join(ALL_COLUMNS)
    + "\n"
    + "\n".join("x,,,," + ",".join(["\x00" * 40] * (len(ALL_COLUMNS) - 4)) for _ in range(2000)),
    "2,000 rows of too many cells": HEADER + "\n".join("1,a,b,c," * 100 for _ in range(2000)),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_file_answers_a_bounded_report(ctx: handlers.Context, text: str) -> None:
    report, dry_size, refused_size = await _sizes(ctx, text.encode())
    assert report["valid"] is False
    assert len(report["problems"]) <= csvio.MAX_REPORTED_PROBLEMS
    assert dry_size < REPORT_BOUND and refused_size < REPORT_BOUND, (dry_size, refused_size)
    assert all(len(p["field"]) <= csvio.MAX_ECHO for p in report["problems"])
    assert all("\x00" not in p["field"] for p in report["problems"])
    assert await handlers.list_resolutions(ctx, "egov-2025") == []


async def test_the_report_says_how_many_problems_it_did_not_list(ctx: handlers.Context) -> None:
    text = ",".join(f"c{n}" for n in range(500)) + "\n"
    report, _, _ = await _sizes(ctx, text.encode())
    assert len(report["problems"]) == csvio.MAX_REPORTED_PROBLEMS
    # the expected columns once, 500 unknown ones, 4 required ones missing
    assert report["more_problems"] == 1 + 500 + 4 - csvio.MAX_REPORTED_PROBLEMS
    with pytest.raises(DomainError) as refused:
        await handlers.import_resolutions(ctx, "egov-2025", text.encode(), dry_run=False, actor="c")
    assert refused.value.message == (
        "The file has 505 problem(s) (the first 100 listed); nothing was imported."
    )
    clean = await handlers.import_resolutions(
        ctx, "egov-2025", (HEADER + "1,a,b,c\n").encode(), dry_run=True, actor="c"
    )
    assert (clean["valid"], clean["more_problems"]) == (True, 0)


def test_an_echoed_column_name_is_escaped_and_cut() -> None:
    parsed = csvio.parse_resolutions(
        "number,ti\x00tle,title_sw,title_en,lead_institution," + "z" * 500 + "\n",
        conference_starts="2025-02-11",
        existing_numbers=(),
    )
    fields = [p.field for p in parsed.problems if p.reason == "unknown column"]
    assert fields == ["ti\\x00tle", "z" * (csvio.MAX_ECHO - 1) + "\u2026"]


def test_a_control_character_in_a_cell_is_a_problem_of_its_row_and_column() -> None:
    parsed = csvio.parse_resolutions(
        HEADER + "1,Azimio,Resolution,e-GA\n2,Azimio\x00,Second,e-GA\n3,Tatu,Thi\x1brd,e-GA\n",
        conference_starts="2025-02-11",
        existing_numbers=(),
    )
    assert [p.as_dict() for p in parsed.problems] == [
        {"row": 3, "field": "title_sw", "reason": CONTROL},
        {"row": 4, "field": "title_en", "reason": CONTROL},
    ]
    progress = csvio.parse_progress(
        "number,note,evidence\n1,Sawa\x00,\n2,Sawa,\n",
        resolutions={1: {"version": 1, "actions": []}, 2: {"version": 1, "actions": []}},
    )
    assert [p.as_dict() for p in progress.problems] == [
        {"row": 2, "field": "note", "reason": CONTROL}
    ]
    focal = csvio.parse_resolutions(
        "number,title_sw,title_en,lead_institution,focal_person_name,focal_person_email\n"
        '1,A,B,e-GA,"Asha\nJuma",asha@example.go.tz\n',  # a quoted line break
        conference_starts="2025-02-11",
        existing_numbers=(),
    )
    assert [(p.row, p.field, p.reason) for p in focal.problems] == [
        (2, "focal_person_name", "must be a single line")
    ]


def test_a_number_in_other_digits_is_a_row_problem_not_a_crash() -> None:
    parsed = csvio.parse_progress(
        "number,note\n\u00b2,Sawa\n", resolutions={2: {"version": 1, "actions": []}}
    )
    assert [(p.row, p.field) for p in parsed.problems] == [(2, "number")]


def test_an_export_never_carries_a_control_character_stored_before_the_rules() -> None:
    out = csvio.render_csv(
        [{"title": "Azimio\x00la\x1b[31m kwanza", "note": "line one\nline two"}],
        ("title", "note"),
    )
    assert "\x00" not in out and "\x1b" not in out
    assert "Azimio\ufffdla\ufffd[31m kwanza" in out
    assert '"line one\nline two"' in out  # a multi-line cell stays one quoted cell
