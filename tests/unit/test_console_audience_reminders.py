"""The console's announcement audience in words and its count (sw/en), and the event
editor's reminder rules: rows to notification's ``offsets_s``, the API's 422 beside the
field, offsets in words."""

from __future__ import annotations

from services.console import editor
from services.console.labels import audience_count, audience_words

T = editor.LABELS["en"]
S = editor.LABELS["sw"]


def form(**fields: str) -> dict[str, list[str]]:
    return {k.replace("__", "-"): [v] for k, v in fields.items()}


def test_the_audience_in_words_names_statuses_categories_and_institutions() -> None:
    words = audience_words(
        "en", ["confirmed", "waitlisted"], ["ICT officers"], ["Ministry of Finance"]
    )
    assert words == (
        "Participants who are Confirmed or On the waiting list, in the categories "
        "ICT officers, from Ministry of Finance"
    )
    assert audience_words("sw", ["confirmed"], [], []) == ("Washiriki wenye hali: Imethibitishwa")


def test_the_count_reads_in_both_languages() -> None:
    assert audience_count("en", 3) == "This goes to 3 people."
    assert audience_count("en", 1) == "This goes to 1 person."
    assert audience_count("sw", 3) == "Tangazo hili litawafikia watu 3."
    assert "Nobody" in audience_count("en", 0)


def test_reminder_rows_become_offsets_largest_first() -> None:
    offsets, errors, rows = editor.parse_reminders(
        form(
            rows="4",
            rem__0__amount="2",
            rem__0__unit="hours",
            rem__1__amount="7",
            rem__1__unit="days",
            rem__2__amount="1",
            rem__2__unit="days",
            rem__2__remove="yes",
            rem__3__amount="",
            rem__3__unit="days",
        ),  # fmt: skip
        T,
    )
    assert errors == []
    assert offsets == [7 * 86400, 2 * 3600] and rows == [1, 0]


def test_a_bad_amount_is_named_beside_its_field() -> None:
    _, errors, _ = editor.parse_reminders(
        form(rows="2", rem__0__amount="zero", rem__0__unit="days"), T
    )
    assert errors == [{"field": "rem-0-amount", "reason": T["positive"]}]


def test_the_apis_refusal_goes_beside_the_row_it_names() -> None:
    fields = [{"field": "offsets_s.1", "reason": "Input should be less than or equal to 31536000"}]
    placed = editor.reminder_api_errors(fields, [400 * 86400, 86400], [3, 0])
    assert placed == [{"field": "rem-0-amount", "reason": fields[0]["reason"]}]


def test_offsets_in_words_and_back_to_rows() -> None:
    assert editor.describe_offset(7 * 86400, T) == "7 days before the start"
    assert editor.describe_offset(3 * 3600, T) == "3 hours before the start"
    assert editor.describe_offset(90 * 60, S) == "90 dakika kabla ya kuanza"
    values = editor.reminder_values([604800, 7200])
    assert values["rows"] == ["3"]
    assert (values["rem-0-amount"], values["rem-0-unit"]) == (["7"], ["days"])
    assert (values["rem-1-amount"], values["rem-1-unit"]) == (["2"], ["hours"])
