"""Resolutions domain: conferences, resolutions, statuses and progress. Pure: no I/O.

A resolution's status comes from a catalogue; each status carries a default progress
(None: keep the current one). Progress updates are dated timeline entries, appended and
never rewritten; every change is also kept as a version with what changed.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

STATUS_CATALOGUE: dict[str, int | None] = {
    "not_started": 0,
    "in_progress": 25,
    "delayed": None,
    "on_hold": None,
    "completed": 100,
}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
Status = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]


class DomainError(Exception):
    def __init__(
        self, code: str, message: str, status: int = 409, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field


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
    progress: int | None = Field(None, ge=0, le=100)
    weight: int = Field(1, ge=1, le=100)
    focal_persons: list[FocalPersonIn] = Field(default_factory=list, max_length=20)


class ProgressUpdate(BaseModel):
    """A coordinator's dated update: status and/or progress, a note, evidence links."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    progress: int | None = Field(None, ge=0, le=100)
    note: LongText = ""
    evidence: list[AnyHttpUrl] = Field(default_factory=list, max_length=20)
    version: int | None = Field(None, ge=1, description="The version read; or send If-Match")

    @model_validator(mode="after")
    def _something(self) -> ProgressUpdate:
        if self.status is None and self.progress is None and not self.note:
            raise ValueError("send a status, a progress or a note")
        return self


def check_status(status: str) -> None:
    if status not in STATUS_CATALOGUE:
        raise DomainError(
            "unknown_status",
            f"Unknown status; use one of: {', '.join(STATUS_CATALOGUE)}.",
            status=422,
            field="status",
        )


def resolve_progress(status: str, progress: int | None, current: int) -> int:
    """A status applies its default progress unless a progress is given."""
    if progress is not None:
        return progress
    default = STATUS_CATALOGUE[status]
    return current if default is None else default


def new_id() -> str:
    return str(uuid.uuid4())


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What changed between two views of a resolution."""
    return {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}


def check_target(target: date | None, conference_starts: date | str) -> None:
    start = (
        conference_starts
        if isinstance(conference_starts, date)
        else date.fromisoformat(conference_starts)
    )
    if target is not None and target < start:
        raise DomainError(
            "target_before_conference",
            "The target date is before the conference.",
            status=422,
            field="target_date",
        )


def as_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
