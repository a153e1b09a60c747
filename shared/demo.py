"""Dates of the demo seed, relative to the day the stack starts.

``make run`` seeds the annual e-Government conference, upcoming and open for
registration, and the previous year's conference, whose resolutions are being carried
out: a newcomer sees a platform in use, whatever the day. The conference is held in
February at AICC, Arusha (the 5th was 11–13 February 2025), so the ordinal follows from
the year. Both services use this one calendar, so their ids agree (``egov-<year>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.timeutil import EAT

FIRST_YEAR = 2020  # the 5th conference was in 2025: ordinal = year - 2020


@dataclass(frozen=True)
class DemoConference:
    year: int
    starts_at: datetime
    ends_at: datetime

    @property
    def id(self) -> str:
        return f"egov-{self.year}"

    @property
    def ordinal(self) -> int:
        return self.year - FIRST_YEAR

    def ordinal_en(self) -> str:
        n = self.ordinal
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"

    def ordinal_sw(self) -> str:
        words = {4: "Nne", 5: "Tano", 6: "Sita", 7: "Saba", 8: "Nane", 9: "Tisa", 10: "Kumi"}
        return words.get(self.ordinal, str(self.ordinal))


@dataclass(frozen=True)
class DemoCalendar:
    upcoming: DemoConference
    previous: DemoConference
    registration_opens_at: datetime


def demo_calendar(today: date) -> DemoCalendar:
    """The upcoming conference starts on the first Tuesday at least 60 days after
    ``today`` (three days, 08:00–17:00 venue time); registration opened two weeks ago;
    the previous conference was 52 weeks before it."""
    start_day = today + timedelta(days=60)
    start_day += timedelta(days=(1 - start_day.weekday()) % 7)  # Tuesday
    previous_day = start_day - timedelta(weeks=52)

    def conference(day: date) -> DemoConference:
        return DemoConference(
            year=day.year,
            starts_at=datetime.combine(day, time(8, 0), EAT),
            ends_at=datetime.combine(day + timedelta(days=2), time(17, 0), EAT),
        )

    return DemoCalendar(
        upcoming=conference(start_day),
        previous=conference(previous_day),
        registration_opens_at=datetime.combine(today - timedelta(days=14), time(0, 0), EAT),
    )
