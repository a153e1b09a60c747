"""The coordinators' pages' pure helpers: forms to the resolutions API's JSON, a dry
run's problems to a table, a 409's current version, and the labels in both languages."""

from __future__ import annotations

from services.console import coordinators as c


def test_lines_split_on_newlines_and_semicolons_and_drop_blanks() -> None:
    assert c.lines("e-GA\n\n Wizara ya Afya ; TAMISEMI\n") == ["e-GA", "Wizara ya Afya", "TAMISEMI"]


def test_a_new_resolution_sends_every_filled_field_and_the_focal_person() -> None:
    body = c.resolution_body(
        {
            "number": "3",
            "title_sw": "Azimio",
            "title_en": "Resolution",
            "lead_institution": "e-GA",
            "supporting_institutions": "TAMISEMI\nWizara ya Afya",
            "target_date": "",
            "weight": "2",
            "description_sw": "",
            "focal_person_name": "Neema",
            "focal_person_institution": "e-GA",
            "focal_person_email": "neema@example.go.tz",
            "focal_person_language": "en",
        },
        new=True,
    )
    assert body == {
        "number": 3,
        "title_sw": "Azimio",
        "title_en": "Resolution",
        "lead_institution": "e-GA",
        "supporting_institutions": ["TAMISEMI", "Wizara ya Afya"],
        "weight": 2,
        "focal_persons": [
            {
                "full_name": "Neema",
                "institution": "e-GA",
                "email": "neema@example.go.tz",
                "language": "en",
            }
        ],
    }


def test_a_new_resolution_without_a_focal_person_sends_none_and_a_bad_number_as_is() -> None:
    body = c.resolution_body({"number": "x", "title_sw": "A"}, new=True)
    assert body["number"] == "x" and "focal_persons" not in body  # the API names the field


def test_an_edit_sends_only_what_changed_from_the_form_it_was_shown() -> None:
    shown = c.resolution_values(
        {
            "title_sw": "Azimio",
            "title_en": "Resolution",
            "lead_institution": "e-GA",
            "supporting_institutions": ["TAMISEMI"],
            "target_date": "2027-01-31",
            "weight": 1,
            "description_sw": "",
            "description_en": "",
        }
    )
    form = {**shown, **{f"was_{k}": v for k, v in shown.items()}}
    assert c.resolution_body(form, new=False) == {}
    form.update(title_en="Renamed", target_date="", supporting_institutions="TAMISEMI\ne-GA")
    assert c.resolution_body(form, new=False) == {
        "title_en": "Renamed",
        "target_date": None,
        "supporting_institutions": ["TAMISEMI", "e-GA"],
    }


def test_an_action_change_sends_only_a_changed_status_or_progress_and_a_note() -> None:
    form = {"status": "in_progress", "progress": "20", "was_status": "in_progress"}
    assert c.action_body({**form, "was_progress": "20"}, new=False) == {}
    assert c.action_body({**form, "was_progress": "10", "note": "Imeanza"}, new=False) == {
        "progress": 20,
        "note": "Imeanza",
    }
    assert c.action_body({"title": "Mafunzo", "institution": "e-GA", "weight": "2"}, new=True) == {
        "title": "Mafunzo",
        "institution": "e-GA",
        "weight": 2,
    }


def test_a_dry_runs_problems_become_rows_in_file_order() -> None:
    report = {
        "dry_run": True,
        "valid": False,
        "problems": [
            {"row": 5, "field": "title_en", "reason": "required"},
            {"row": 3, "field": "number", "reason": "not a whole number"},
        ],
    }
    assert c.import_table(report) == [
        {"row": "3", "field": "number", "reason": "not a whole number"},
        {"row": "5", "field": "title_en", "reason": "required"},
    ]
    refused = {"error": {"code": "invalid_file", "details": {"problems": report["problems"]}}}
    assert [r["row"] for r in c.import_table(refused)] == ["3", "5"]


def test_refusals_name_their_fields_or_the_form() -> None:
    body = {"error": {"message": "bad", "fields": [{"field": "number", "reason": "taken"}]}}
    assert c.field_errors(body) == [{"field": "number", "reason": "taken"}]
    assert c.field_errors({"error": {"message": "busy"}}) == [{"field": "form", "reason": "busy"}]
    assert c.field_errors(None) == [{"field": "form", "reason": ""}]


def test_a_conflicts_current_version() -> None:
    body = {"error": {"code": "version_conflict", "details": {"current_version": 4}}}
    assert c.current_version(body) == 4
    assert c.current_version({"error": {"code": "version_conflict"}}) is None


def test_the_labels_are_in_both_languages() -> None:
    assert set(c.COORDINATOR_LABELS["sw"]) == set(c.COORDINATOR_LABELS["en"])
    assert all(set(names) == {"sw", "en"} for names in c.STATUS_NAMES.values())


def test_a_new_conference_sends_its_fields_and_whether_updates_wait_for_approval() -> None:
    form = {
        "id": " semina-2027 ",
        "name_sw": "Semina",
        "name_en": "Seminar",
        "starts_on": "2027-03-01",
        "ends_on": "",
        "venue": "AICC",
        "approval_required": "on",
    }
    body = c.conference_body(form)
    assert body == {
        "id": "semina-2027",
        "name_sw": "Semina",
        "name_en": "Seminar",
        "starts_on": "2027-03-01",
        "ends_on": None,  # sent, so the API names it
        "venue": "AICC",
        "reporting": {"approval_required": True},
    }
    assert c.conference_body({**form, "approval_required": ""})["reporting"] == {
        "approval_required": False
    }
