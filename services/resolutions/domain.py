"""Resolutions domain: conferences, resolutions, actions, statuses and progress. Pure: no I/O.

A resolution's status comes from a catalogue; each status carries a default progress
(None: keep the current one). A resolution may have actions (one level only), each with
its own status, progress and weight; the resolution's progress is then their weighted
mean, recomputed on every change. Progress updates are dated timeline entries, appended
and never rewritten; every change is also kept as a version with what changed.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.errors import DomainError  # the one error every service raises
from shared.patch import Patch

STATUS_CATALOGUE: dict[str, int | None] = {
    "not_started": 0,
    "in_progress": 25,
    "delayed": None,
    "on_hold": None,
    "completed": 100,
}

# Bilingual labels and the colour each status has on the report (print-safe, distinct
# in greyscale too, because the report is often printed on a mono printer).
STATUS_LABELS: dict[str, dict[str, str]] = {
    "not_started": {"sw": "Haijaanza", "en": "Not started", "colour": "#9aa0a6"},
    "in_progress": {"sw": "Inaendelea", "en": "In progress", "colour": "#1a73e8"},
    "delayed": {"sw": "Imechelewa", "en": "Delayed", "colour": "#d93025"},
    "on_hold": {"sw": "Imesitishwa", "en": "On hold", "colour": "#f29900"},
    "completed": {"sw": "Imekamilika", "en": "Completed", "colour": "#188038"},
}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
Status = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
Progress = Annotated[int, Field(ge=0, le=100)]
Weight = Annotated[int, Field(ge=1, le=100)]
VersionRead = Annotated[int, Field(ge=1, description="The version read; or send If-Match")]


class FocalPersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)
    ]
    institution: Text
    email: EmailStr
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=24)] | None = None
    language: str = Field("sw", pattern="^(sw|en)$")


class ConferenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Slug
    name_sw: Text
    name_en: Text
    starts_on: date
    ends_on: date
    venue: Text

    @model_validator(mode="after")
    def _order(self) -> ConferenceSpec:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ConferenceChange(Patch):
    """A coordinator's edit of a conference: only the fields sent change."""

    name_sw: Text | None = None
    name_en: Text | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    venue: Text | None = None


class ResolutionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1, le=1000)
    title_sw: Text
    title_en: Text
    description_sw: LongText = ""
    description_en: LongText = ""
    lead_institution: Text
    supporting_institutions: list[Text] = Field(default_factory=list, max_length=50)
    target_date: date | None = None
    status: Status = "not_started"
    progress: Progress | None = None
    weight: Weight = 1
    focal_persons: list[FocalPersonIn] = Field(default_factory=list, max_length=20)


class ResolutionChange(Patch):
    """An edit of a resolution's details (status and progress go through updates)."""

    nullable = frozenset({"target_date", "version"})

    title_sw: Text | None = None
    title_en: Text | None = None
    description_sw: LongText | None = None
    description_en: LongText | None = None
    lead_institution: Text | None = None
    supporting_institutions: list[Text] | None = Field(None, max_length=50)
    target_date: date | None = None
    weight: Weight | None = None
    focal_persons: list[FocalPersonIn] | None = Field(None, max_length=20)
    version: VersionRead | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the coordinator sent, as stored (JSON types)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"version"})

    @model_validator(mode="after")
    def _something(self) -> ResolutionChange:
        if not self.changes():
            raise ValueError("send at least one field to change")
        return self


class ProgressUpdate(BaseModel):
    """A coordinator's dated update: status and/or progress, a note, evidence links."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    progress: Progress | None = None
    note: LongText = ""
    evidence: list[AnyHttpUrl] = Field(default_factory=list, max_length=20)
    version: VersionRead | None = None

    @model_validator(mode="after")
    def _something(self) -> ProgressUpdate:
        if self.status is None and self.progress is None and not self.note:
            raise ValueError("send a status, a progress or a note")
        return self


class ActionSpec(BaseModel):
    """An action under a resolution (e.g. one per responsible institution)."""

    model_config = ConfigDict(extra="forbid")

    title: Text
    institution: Text
    status: Status = "not_started"
    progress: Progress | None = None
    weight: Weight = 1
    # Accepted only to refuse it with a clear reason: actions have one level.
    parent_action_id: str | None = None
    version: VersionRead | None = None

    @field_validator("parent_action_id")
    @classmethod
    def _one_level(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("actions have one level: an action cannot sit under an action")
        return value


class ActionChange(Patch):
    """A change to one action; a status or progress change is also a timeline entry."""

    nullable = frozenset({"parent_action_id", "version"})

    title: Text | None = None
    institution: Text | None = None
    status: Status | None = None
    progress: Progress | None = None
    weight: Weight | None = None
    note: LongText = ""
    evidence: list[AnyHttpUrl] = Field(default_factory=list, max_length=20)
    parent_action_id: str | None = None
    version: VersionRead | None = None

    @field_validator("parent_action_id")
    @classmethod
    def _one_level(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("actions have one level: an action cannot sit under an action")
        return value

    @model_validator(mode="after")
    def _something(self) -> ActionChange:
        fields = ("title", "institution", "status", "progress", "weight")
        if all(getattr(self, f) is None for f in fields) and not self.note:
            raise ValueError("send at least one field to change")
        return self


def check_status(status: str, field: str = "status") -> None:
    """Refuse a status that is not in the catalogue (422)."""
    if status not in STATUS_CATALOGUE:
        raise DomainError(
            "unknown_status",
            f"Unknown status; use one of: {', '.join(STATUS_CATALOGUE)}.",
            field=field,
        )


def resolve_progress(status: str, progress: int | None, current: int) -> int:
    """A status applies its default progress unless a progress is given."""
    if progress is not None:
        return progress
    default = STATUS_CATALOGUE[status]
    return current if default is None else default


def weighted_mean(items: Iterable[Mapping[str, Any]]) -> int | None:
    """Weighted mean of ``progress`` by ``weight``, rounded half up; None when empty."""
    items = list(items)
    total = sum(int(i.get("weight") or 1) for i in items)
    if not items or total == 0:
        return None
    value = sum(int(i["progress"]) * int(i.get("weight") or 1) for i in items) / total
    # Half up (not Python's banker's rounding): 62.5 % shows as 63 %, as people expect.
    return math.floor(value + 0.5)


def rolled_up_status(current: str, actions: list[Mapping[str, Any]]) -> str:
    """The resolution's status once its actions changed.

    All actions completed makes the resolution completed; a completed resolution whose
    actions are no longer all completed goes back to in progress. Otherwise the
    coordinator's status stands (delayed, on hold … are judgements, not sums).
    """
    if not actions:
        return current
    if all(a["status"] == "completed" for a in actions):
        return "completed"
    if current == "completed":
        return "in_progress"
    if current == "not_started" and any(a["progress"] > 0 for a in actions):
        return "in_progress"
    return current


def new_id() -> str:
    return str(uuid.uuid4())


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What changed between two views of a resolution."""
    return {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}


def as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def check_target(
    target: date | str | None, conference_starts: date | str, field: str = "target_date"
) -> None:
    """A resolution's target date cannot be before the conference that adopted it."""
    if target is not None and as_date(target) < as_date(conference_starts):
        raise DomainError(
            "target_before_conference",
            "The target date is before the conference.",
            field=field,
        )


def is_overdue(resolution: Mapping[str, Any], today: date) -> bool:
    """Past its target date and not completed."""
    target = resolution.get("target_date")
    return (
        target is not None and as_date(target) < today and resolution.get("status") != "completed"
    )


def as_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
