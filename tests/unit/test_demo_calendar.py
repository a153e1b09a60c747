"""The demo seed is dated from the day the stack starts: upcoming, open, last year's before."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.demo import demo_calendar


@pytest.mark.parametrize("today", [date(2026, 12, 1), date(2027, 2, 28), date(2030, 7, 15)])
def test_the_upcoming_conference_is_ahead_and_open_and_last_years_is_past(today: date) -> None:
    calendar = demo_calendar(today)
    upcoming, previous = calendar.upcoming, calendar.previous
    assert upcoming.starts_at.date() >= today + timedelta(days=60)
    assert upcoming.starts_at.weekday() == 1  # a Tuesday, three days
    assert (upcoming.ends_at.date() - upcoming.starts_at.date()).days == 2
    assert calendar.registration_opens_at.date() < today < upcoming.starts_at.date()
    assert previous.ends_at.date() < today
    assert upcoming.id == f"egov-{upcoming.year}" and previous.id != upcoming.id


def test_ordinals_follow_the_year_of_the_5th_conference_in_2025() -> None:
    calendar = demo_calendar(date(2026, 12, 1))
    assert (calendar.upcoming.id, calendar.upcoming.ordinal_en()) == ("egov-2027", "7th")
    assert (calendar.previous.id, calendar.previous.ordinal_sw()) == ("egov-2026", "Sita")
