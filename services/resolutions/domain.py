"""Resolutions domain: conferences, resolutions, actions, statuses and progress. Pure: no I/O.

A resolution's status comes from a catalogue; each status carries a default progress
(None: keep the current one). A resolution may have actions (one level only), each with
its own status, progress and weight; the resolution's progress is then their weighted
mean, recomputed on every change. Progress updates are dated timeline entries, appended
and never rewritten; every change is also kept as a version with what changed.

The aggregates are ``Conference`` and ``Resolution`` (its actions, timeline and versions
inside it). Their methods take the time as a parameter, enforce the rules (raising
``DomainError``) and record the integration events a change causes: on the public
``resolutions.v1`` (``ResolutionCreated``, ``ResolutionUpdated``, ``ResolutionCompleted``,
version 2: the lead institution and how many focal persons, never their contacts) and, for
a resolution with focal persons, the notice of an update or completion on the private
``resolutions.notices.v1`` (their names, emails and phones, for notification). The store
saves the change and all those events in one write.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import filetype
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.aggregate import Aggregate
from shared.contracts.resolutions import (
    FocalPerson,
    ResolutionCompletedV2,
    ResolutionCreatedV2,
    ResolutionUpdatedV2,
)
from shared.contracts.resolutions_notices import (
    CoordinatorDigestNotice,
    DigestItem,
    FocalPersonErased,
    ReportLink,
    ResolutionCompletedNotice,
    ResolutionReminderNotice,
    ResolutionUpdatedNotice,
    _FocalPersonsNotice,
)
from shared.errors import DomainError  # the one error every service raises
from shared.patch import Patch
from shared.text import plain_text, single_line_text
from shared.timeutil import iso

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

# Titles, names and institutions reach email subjects, calendar entries and CSV cells:
# one line, no control characters. Descriptions and notes may span lines.
Text = single_line_text(min_length=1, max_length=300)
LongText = plain_text(max_length=5000)
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
Status = single_line_text(max_length=32)
PersonName = single_line_text(min_length=2, max_length=120)
Phone = single_line_text(max_length=24)
Progress = Annotated[int, Field(ge=0, le=100)]
Weight = Annotated[int, Field(ge=1, le=100)]
VersionRead = Annotated[int, Field(ge=1, description="The version read; or send If-Match")]


class FocalPersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: PersonName
    institution: Text
    email: EmailStr
    phone: Phone | None = None
    language: str = Field("sw", pattern="^(sw|en)$")


DaysList = Annotated[list[Annotated[int, Field(ge=1, le=365)]], Field(max_length=10)]


class ReportingRules(BaseModel):
    """How a conference's resolutions are reported on and chased through the year."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_required: bool = Field(
        False, description="A focal person's update counts only once a coordinator approves it"
    )
    report_every_days: int = Field(
        30, ge=7, le=180, description="Each focal person gets their report link this often"
    )
    report_before_next_days: DaysList = Field(
        [14], description="… and this many days before the next conference starts"
    )
    remind_before_target_days: DaysList = Field(
        [30, 7], description="Reminders this many days before a target date"
    )
    overdue_every_days: int = Field(
        7, ge=1, le=90, description="After the target date, a reminder this often"
    )


class ConferenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Slug
    name_sw: Text
    name_en: Text
    starts_on: date
    ends_on: date
    venue: Text
    reporting: ReportingRules = Field(default_factory=ReportingRules)

    @field_validator("ends_on")
    @classmethod
    def _order(cls, ends_on: date, info: ValidationInfo) -> date:
        # A field validator, so the refusal names ``ends_on`` (not the whole body).
        starts_on = info.data.get("starts_on")
        if starts_on is not None and ends_on < starts_on:
            raise ValueError("ends_on is before starts_on")
        return ends_on


class ConferenceChange(Patch):
    """A coordinator's edit of a conference: only the fields sent change."""

    name_sw: Text | None = None
    name_en: Text | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    venue: Text | None = None
    reporting: ReportingRules | None = None


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


def is_overdue(target_date: date | str | None, status: str, today: date) -> bool:
    """Past its target date and not completed."""
    return target_date is not None and as_date(target_date) < today and status != "completed"


def as_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


MAX_ACTIONS = 50


def require_version(expected_version: int | None) -> None:
    """A writer must say which version it read (428 otherwise)."""
    if expected_version is None:
        raise DomainError(
            "version_required",
            "Send the version you read (If-Match header or the version field).",
            field="version",
        )


# --------------------------------------------------------------------------- conference


@dataclass(kw_only=True)
class Conference(Aggregate):
    """An annual conference: the resolutions it adopted hang off its id (a slug)."""

    id: str
    name_sw: str
    name_en: str
    starts_on: date
    ends_on: date
    venue: str
    created_at: str
    updated_at: str | None = None
    reporting: ReportingRules = field(default_factory=ReportingRules)

    @classmethod
    def create(cls, spec: ConferenceSpec, *, now: datetime) -> Conference:
        return cls(
            id=spec.id,
            name_sw=spec.name_sw,
            name_en=spec.name_en,
            starts_on=spec.starts_on,
            ends_on=spec.ends_on,
            venue=spec.venue,
            created_at=iso(now),
            reporting=spec.reporting,
        )

    def edit(
        self, change: ConferenceChange, resolutions: Sequence[Resolution], *, now: datetime
    ) -> None:
        """Change names, dates or venue; the dates must still fit every resolution's target."""
        fields = change.model_dump(exclude_unset=True)
        if not fields:
            raise DomainError("nothing_to_change", "Send at least one field.")
        starts_on = fields.get("starts_on", self.starts_on)
        ends_on = fields.get("ends_on", self.ends_on)
        if ends_on < starts_on:
            raise DomainError("invalid_dates", "ends_on is before starts_on.", field="ends_on")
        for resolution in resolutions:
            target = resolution.target_date
            if target is not None and target < starts_on:
                raise DomainError(
                    "target_before_conference",
                    f"Resolution {resolution.number}'s target date would be before the conference.",
                    field="starts_on",
                )
        for name, value in fields.items():
            if name == "reporting":
                value = ReportingRules(**value)
            setattr(self, name, value)
        self.updated_at = iso(now)


# --------------------------------------------------------------------------- resolution


@dataclass(kw_only=True)
class Action:
    """One action under a resolution (one level), e.g. one per responsible institution."""

    id: str
    title: str
    institution: str
    status: str
    progress: int
    weight: int
    created_at: str
    updated_at: str


@dataclass(kw_only=True, frozen=True)
class TimelineEntry:
    """A dated progress update: appended, never rewritten."""

    id: str
    at: str
    status: str
    progress: int
    note: str
    evidence: list[str]
    recorded_by: str
    version: int
    action_id: str | None = None
    # Evidence files: {"sha256", "name", "media_type", "size"} each (see ``EvidenceFile``).
    files: list[dict[str, Any]] = field(default_factory=list)
    # A focal person's update: their key (``person_key``); and who approved it, if needed.
    submitted_by: str | None = None
    approved_by: str | None = None


@dataclass(kw_only=True)
class PendingUpdate:
    """A focal person's update waiting for a coordinator (when the conference requires it).

    ``state``: ``pending`` → ``approved`` (then it is a timeline entry) or ``rejected``.
    """

    id: str
    submitted_at: str
    submitted_by: str
    submitter_name: str
    status: str | None
    progress: int | None
    note: str
    evidence: list[str]
    files: list[dict[str, Any]]
    read_version: int
    state: str = "pending"
    decided_at: str | None = None
    decided_by: str | None = None
    reason: str | None = None

    def as_update(self) -> ProgressUpdate:
        return ProgressUpdate.model_validate(
            {
                "status": self.status,
                "progress": self.progress,
                "note": self.note or ("Evidence added" if self.files else ""),
                "evidence": self.evidence,
            }
        )


@dataclass(kw_only=True, frozen=True)
class VersionRecord:
    """What one version changed: ``{"field": {"from": …, "to": …}}``."""

    version: int
    at: str
    by: str
    changes: dict[str, Any]
    origin: str | None = None


# The details an edit may change, and how each is kept on the aggregate.
_DETAILS = (
    "title_sw",
    "title_en",
    "description_sw",
    "description_en",
    "lead_institution",
    "supporting_institutions",
    "target_date",
    "weight",
    "focal_persons",
)


@dataclass(kw_only=True)
class Resolution(Aggregate):
    """A resolution of a conference, with its actions, timeline and versions.

    ``version`` is what writers send back (If-Match); ``rev`` (of ``Aggregate``) is the
    storage revision, which the relay moves too.
    """

    id: str
    conference_id: str
    number: int
    title_sw: str
    title_en: str
    description_sw: str = ""
    description_en: str = ""
    lead_institution: str
    supporting_institutions: list[str] = field(default_factory=list)
    target_date: date | None = None
    status: str
    progress: int
    weight: int = 1
    focal_persons: list[FocalPerson] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    version: int = 1
    timeline: list[TimelineEntry] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)
    created_at: str
    updated_at: str
    pending: list[PendingUpdate] = field(default_factory=list)

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        conference: Conference,
        spec: ResolutionSpec,
        *,
        actor: str,
        now: datetime,
        origin: str | None = None,
    ) -> Resolution:
        """A new resolution of ``conference``; records ``ResolutionCreated``."""
        check_status(spec.status)
        check_target(spec.target_date, conference.starts_on)
        stamp = iso(now)
        resolution = cls(
            id=new_id(),
            conference_id=conference.id,
            number=spec.number,
            title_sw=spec.title_sw,
            title_en=spec.title_en,
            description_sw=spec.description_sw,
            description_en=spec.description_en,
            lead_institution=spec.lead_institution,
            supporting_institutions=list(spec.supporting_institutions),
            target_date=spec.target_date,
            status=spec.status,
            progress=resolve_progress(spec.status, spec.progress, 0),
            weight=spec.weight,
            focal_persons=[FocalPerson(**fp.model_dump()) for fp in spec.focal_persons],
            version=1,
            versions=[
                VersionRecord(
                    version=1,
                    at=stamp,
                    by=actor,
                    changes={"created": {"from": None, "to": True}},
                    origin=origin,
                )
            ],
            created_at=stamp,
            updated_at=stamp,
        )
        resolution.record(ResolutionCreatedV2(**resolution._event_fields(), created_at=now))
        return resolution

    # ------------------------------------------------------------------ reading

    @property
    def latest_update(self) -> TimelineEntry | None:
        return self.timeline[-1] if self.timeline else None

    def is_overdue(self, today: date) -> bool:
        """Past its target date and not completed."""
        return is_overdue(self.target_date, self.status, today)

    def details(self) -> dict[str, Any]:
        """The editable details as JSON values (what versions record)."""
        return {name: _json(getattr(self, name)) for name in _DETAILS}

    # ------------------------------------------------------------------ changes

    def check_version(self, expected_version: int | None) -> None:
        """The writer read the current version (428 without one, 409 if stale)."""
        require_version(expected_version)
        if expected_version != self.version:
            raise DomainError(
                "version_conflict",
                f"The resolution changed since you read it (now version {self.version}).",
                field="version",
                details={"current_version": self.version},
            )

    def edit(
        self,
        change: ResolutionChange,
        conference: Conference,
        *,
        expected_version: int | None,
        actor: str,
        now: datetime,
    ) -> None:
        """Edit details (not status or progress); the version keeps what changed."""
        fields = change.changes()
        if "target_date" in fields:
            check_target(fields["target_date"], conference.starts_on)
        self.check_version(expected_version)
        before = self.details()
        changed = diff({k: before[k] for k in fields}, fields)
        previous = (self.status, self.progress)
        for name, value in fields.items():
            if name == "target_date":
                value = as_date(value) if value is not None else None
            elif name == "focal_persons":
                value = [FocalPerson(**fp) for fp in value]
            setattr(self, name, value)
        self._new_version(previous, actor, now, changed=changed)

    def record_update(
        self,
        update: ProgressUpdate,
        *,
        expected_version: int | None,
        actor: str,
        now: datetime,
        origin: str | None = None,
        files: Sequence[Mapping[str, Any]] = (),
        submitted_by: str | None = None,
        approved_by: str | None = None,
    ) -> None:
        """A dated progress update: a timeline entry; records ``ResolutionUpdated``."""
        if update.status is not None:
            check_status(update.status)
        self.check_version(expected_version)
        status, progress = self._progress_after(update)
        previous = (self.status, self.progress)
        changed = diff(
            {"status": self.status, "progress": self.progress},
            {"status": status, "progress": progress},
        )
        if files and not changed:
            changed = {"evidence": {"from": None, "to": [f["sha256"] for f in files]}}
        self.status, self.progress = status, progress
        self._new_version(
            previous,
            actor,
            now,
            changed=changed or {"note": {"from": None, "to": "added"}},
            timeline_note=update.note,
            evidence=[str(u) for u in update.evidence],
            origin=origin,
            files=[dict(f) for f in files],
            submitted_by=submitted_by,
            approved_by=approved_by,
        )

    def _progress_after(self, update: ProgressUpdate) -> tuple[str, int]:
        """The status and progress an update leads to, by the rules (raises if refused)."""
        status = update.status or self.status
        check_status(status)
        if self.actions:
            # The progress of a resolution with actions is their weighted mean, nothing else.
            if update.progress is not None:
                raise DomainError(
                    "progress_from_actions",
                    "This resolution's progress is computed from its actions; update them.",
                    field="progress",
                )
            if status == "completed" and any(a.status != "completed" for a in self.actions):
                raise DomainError(
                    "actions_not_completed",
                    "Complete every action of this resolution first.",
                    field="status",
                )
            progress = self.progress
        elif update.status or update.progress is not None:
            progress = resolve_progress(status, update.progress, self.progress)
        else:
            progress = self.progress
        return status, progress

    # ------------------------------------------------------------------ focal persons

    def focal_person(self, key: str) -> FocalPerson | None:
        """The focal person a link's key names, if they still are one of this resolution."""
        for person in self.focal_persons:
            if person_key(person.email) == key:
                return person
        return None

    def mentions_focal_person(self, email: str) -> bool:
        """Whether this resolution holds anything of that focal person (now or in its
        history: the versions of its focal persons, their pending updates)."""
        # A shallow copy: the scrub assigns new lists, it never changes this one's.
        return copy.copy(self)._scrub_focal_person(email) is not None

    def erase_focal_person(self, email: str, now: datetime) -> bool:
        """PDPA erasure of a focal person: they leave the resolution, their name leaves
        their pending updates and their contact leaves the versions' history; their
        updates stay, marked by their key only (as the timeline always did). Records
        ``FocalPersonErased`` (one per spelling of the address held here) for the
        notification service. False when nothing of them is here."""
        spellings = self._scrub_focal_person(email)
        if spellings is None:
            return False
        for spelling in sorted(spellings or {email.strip()}):
            self.record(
                FocalPersonErased(
                    resolution_id=self.id,
                    conference_id=self.conference_id,
                    person_key=person_key(email),
                    email=spelling,
                    erased_at=now,
                )
            )
        return True

    def _scrub_focal_person(self, email: str) -> set[str] | None:
        """Take the person out; the spellings of their address found (None: nothing)."""
        target = email.strip().lower()
        key = person_key(target)
        spellings: set[str] = set()

        def is_them(value: Any) -> bool:
            if isinstance(value, dict) and str(value.get("email", "")).lower() == target:
                spellings.add(str(value["email"]))
                return True
            return False

        changed = False
        kept = []
        for person in self.focal_persons:
            if person.email.strip().lower() == target:
                spellings.add(person.email)
            else:
                kept.append(person)
        if len(kept) != len(self.focal_persons):
            self.focal_persons, changed = kept, True
        pending = []
        for p in self.pending:
            if p.submitted_by == key and p.submitter_name:
                p, changed = replace(p, submitter_name=""), True
            pending.append(p)
        self.pending = pending
        versions = []
        for v in self.versions:
            change = v.changes.get("focal_persons")
            if isinstance(change, dict):
                scrubbed = {
                    side: [ERASED_PERSON if is_them(x) else x for x in value]
                    if isinstance(value, list)
                    else value
                    for side, value in change.items()
                }
                if scrubbed != change:
                    v, changed = replace(v, changes={**v.changes, "focal_persons": scrubbed}), True
            versions.append(v)
        self.versions = versions
        return spellings if changed else None

    def submit_focal_update(
        self,
        update: ProgressUpdate,
        *,
        person: str,
        expected_version: int | None,
        approval_required: bool,
        now: datetime,
        files: Sequence[Mapping[str, Any]] = (),
    ) -> PendingUpdate | None:
        """A focal person's update, under the same rules as a coordinator's.

        Counted at once (a timeline entry recorded as submitted by them), or, where the
        conference requires approval, kept as a pending update (not in the report) for
        a coordinator to approve or reject. Returns the pending update, if one.
        """
        focal = self.focal_person(person)
        if focal is None:
            raise DomainError("link_not_found", "This link does not open a page.")
        if update.status is not None:
            check_status(update.status)
        self.check_version(expected_version)
        self._progress_after(update)  # refused now, as it would be at approval
        actor = f"focal_person:{person}"
        if not approval_required:
            self.record_update(
                update,
                expected_version=expected_version,
                actor=actor,
                now=now,
                files=files,
                submitted_by=person,
            )
            return None
        pending = PendingUpdate(
            id=new_id(),
            submitted_at=iso(now),
            submitted_by=person,
            submitter_name=focal.full_name,
            status=update.status,
            progress=update.progress,
            note=update.note,
            evidence=[str(u) for u in update.evidence],
            files=[dict(f) for f in files],
            read_version=self.version,
        )
        self.pending = [*self.pending, pending]
        return pending

    def _pending_index(self, pending_id: str) -> int:
        for i, pending in enumerate(self.pending):
            if pending.id == pending_id:
                if pending.state != "pending":
                    raise DomainError(
                        "update_already_decided",
                        f"This update was {pending.state} already.",
                        field="pending_id",
                    )
                return i
        raise DomainError("pending_update_not_found", "No such pending update.")

    def approve_pending(
        self, pending_id: str, *, expected_version: int | None, actor: str, now: datetime
    ) -> None:
        """A coordinator approves a focal person's update: it becomes a timeline entry."""
        index = self._pending_index(pending_id)
        pending = self.pending[index]
        self.record_update(
            pending.as_update(),
            expected_version=expected_version,
            actor=f"focal_person:{pending.submitted_by}",
            now=now,
            files=pending.files,
            submitted_by=pending.submitted_by,
            approved_by=actor,
        )
        self._decide(index, "approved", actor, now, None)

    def reject_pending(self, pending_id: str, *, reason: str, actor: str, now: datetime) -> None:
        """A coordinator rejects a focal person's update: it never counts."""
        self._decide(self._pending_index(pending_id), "rejected", actor, now, reason)

    def _decide(
        self, index: int, state: str, actor: str, now: datetime, reason: str | None
    ) -> None:
        pending = PendingUpdate(**asdict(self.pending[index]))
        pending.state, pending.decided_at, pending.decided_by = state, iso(now), actor
        pending.reason = reason
        self.pending = [*self.pending[:index], pending, *self.pending[index + 1 :]]

    @property
    def pending_updates(self) -> list[PendingUpdate]:
        return [p for p in self.pending if p.state == "pending"]

    def evidence_file(self, sha256: str) -> dict[str, Any] | None:
        """An evidence file this resolution references (timeline or pending), if any."""
        for files in [e.files for e in self.timeline] + [p.files for p in self.pending]:
            for f in files:
                if f["sha256"] == sha256:
                    return f
        return None

    def attach_report_links(self, links: Sequence[ReportLink]) -> None:
        """Put each focal person's report link into the notices this change recorded."""
        self.events = with_report_links(self.events, links)

    def completed_on(self) -> date | None:
        """The day the resolution reached completed (for the last time), if it is."""
        if self.status != "completed":
            return None
        day = None
        for entry in self.timeline:
            if entry.status == "completed" and day is None:
                day = as_datetime(entry.at).date()
            elif entry.status != "completed":
                day = None
        return day or as_datetime(self.updated_at).date()

    def last_update_at(self) -> str:
        latest = self.latest_update
        return latest.at if latest else self.created_at

    def restore(
        self,
        status: str,
        progress: int,
        *,
        expected_version: int | None,
        note: str,
        actor: str,
        now: datetime,
        origin: str,
    ) -> None:
        """Put status and progress back (an import that did not complete), as a new entry."""
        self.check_version(expected_version)
        previous = (self.status, self.progress)
        changed = diff(
            {"status": self.status, "progress": self.progress},
            {"status": status, "progress": progress},
        )
        self.status, self.progress = status, progress
        self._new_version(previous, actor, now, changed=changed, timeline_note=note, origin=origin)

    # ------------------------------------------------------------------ actions

    def add_action(
        self, spec: ActionSpec, *, expected_version: int | None, actor: str, now: datetime
    ) -> Action:
        """Add an action (one level) and roll its progress up into the resolution."""
        check_status(spec.status)
        self.check_version(expected_version)
        if len(self.actions) >= MAX_ACTIONS:
            raise DomainError(
                "too_many_actions", f"At most {MAX_ACTIONS} actions.", field="actions"
            )
        stamp = iso(now)
        action = Action(
            id=new_id(),
            title=spec.title,
            institution=spec.institution,
            status=spec.status,
            progress=resolve_progress(spec.status, spec.progress, 0),
            weight=spec.weight,
            created_at=stamp,
            updated_at=stamp,
        )
        previous = self._roll_up([*self.actions, action])
        self._new_version(
            previous,
            actor,
            now,
            changed=self._action_changes(previous, action.id, None, asdict(action)),
            timeline_note=f"Action added: {action.title} ({action.institution})",
            action_id=action.id,
        )
        return action

    def change_action(
        self,
        action_id: str,
        change: ActionChange,
        *,
        expected_version: int | None,
        actor: str,
        now: datetime,
    ) -> None:
        """Change an action; a status or progress change is a timeline entry."""
        if change.status is not None:
            check_status(change.status)
        self.check_version(expected_version)
        index = self._action_index(action_id)
        before = self.actions[index]
        after = Action(**asdict(before))
        for name in ("title", "institution", "weight"):
            value = getattr(change, name)
            if value is not None:
                setattr(after, name, value)
        if change.status is not None:
            after.status = change.status
            after.progress = resolve_progress(change.status, change.progress, before.progress)
        elif change.progress is not None:
            after.progress = change.progress
        after.updated_at = iso(now)
        actions = list(self.actions)
        actions[index] = after
        previous = self._roll_up(actions)
        progress_moved = (after.status, after.progress) != (before.status, before.progress)
        note = change.note
        if progress_moved and not note:
            note = f"{after.title}: {after.status} {after.progress}%"
        self._new_version(
            previous,
            actor,
            now,
            changed=self._action_changes(previous, action_id, asdict(before), asdict(after)),
            timeline_note=note if (progress_moved or change.note) else None,
            evidence=[str(u) for u in change.evidence],
            action_id=action_id,
        )

    def remove_action(
        self, action_id: str, *, expected_version: int | None, actor: str, now: datetime
    ) -> None:
        """Remove an action; the roll-up is recomputed from the others."""
        self.check_version(expected_version)
        before = self.actions[self._action_index(action_id)]
        previous = self._roll_up([a for a in self.actions if a.id != action_id])
        self._new_version(
            previous,
            actor,
            now,
            changed=self._action_changes(previous, action_id, asdict(before), None),
            timeline_note=f"Action removed: {before.title}",
            action_id=action_id,
        )

    def _action_index(self, action_id: str) -> int:
        for i, action in enumerate(self.actions):
            if action.id == action_id:
                return i
        raise DomainError("action_not_found", "No such action.")

    def _roll_up(self, actions: list[Action]) -> tuple[str, int]:
        """Take ``actions``; progress and status follow them. Returns the previous state."""
        previous = (self.status, self.progress)
        rows = [asdict(a) for a in actions]
        progress = weighted_mean(rows)
        self.actions = actions
        self.progress = self.progress if progress is None else progress
        self.status = rolled_up_status(self.status, rows)
        return previous

    def _action_changes(
        self, previous: tuple[str, int], action_id: str, before: Any, after: Any
    ) -> dict[str, Any]:
        changed = diff(
            {"status": previous[0], "progress": previous[1]},
            {"status": self.status, "progress": self.progress},
        )
        changed[f"actions.{action_id}"] = {"from": before, "to": after}
        return changed

    # ------------------------------------------------------------------ versions, events

    def _new_version(
        self,
        previous: tuple[str, int],
        actor: str,
        now: datetime,
        *,
        changed: dict[str, Any],
        timeline_note: str | None = None,
        evidence: list[str] | None = None,
        action_id: str | None = None,
        origin: str | None = None,
        files: list[dict[str, Any]] | None = None,
        submitted_by: str | None = None,
        approved_by: str | None = None,
    ) -> None:
        """Close the change as a new version: its record, a timeline entry, its events.

        ``timeline_note`` not None makes the change a progress update: a dated timeline
        entry is appended (never rewritten).
        """
        stamp = iso(now)
        self.version += 1
        self.updated_at = stamp
        self.versions = [
            *self.versions,
            VersionRecord(version=self.version, at=stamp, by=actor, changes=changed, origin=origin),
        ]
        if timeline_note is not None:
            entry = TimelineEntry(
                id=new_id(),
                at=stamp,
                status=self.status,
                progress=self.progress,
                note=timeline_note,
                evidence=list(evidence or []),
                recorded_by=actor,
                version=self.version,
                action_id=action_id,
                files=list(files or []),
                submitted_by=submitted_by,
                approved_by=approved_by,
            )
            self.timeline = [*self.timeline, entry]
        previous_status, previous_progress = previous
        self.record(
            ResolutionUpdatedV2(
                **self._event_fields(),
                previous_status=previous_status,
                previous_progress=previous_progress,
                note=timeline_note or None,
                recorded_by=actor,
                updated_at=now,
                changed=sorted(changed),
                evidence=list(evidence or []),
                action_id=action_id,
            )
        )
        if self.focal_persons:
            self.record(
                ResolutionUpdatedNotice(
                    **self._notice_fields(),
                    previous_status=previous_status,
                    previous_progress=previous_progress,
                    note=timeline_note or None,
                    updated_at=now,
                )
            )
        if self.status == "completed" and previous_status != "completed":
            self.record(ResolutionCompletedV2(**self._event_fields(), completed_at=now))
            if self.focal_persons:
                self.record(ResolutionCompletedNotice(**self._notice_fields(), completed_at=now))

    def _identity(self) -> dict[str, Any]:
        return {
            "resolution_id": self.id,
            "conference_id": self.conference_id,
            "number": self.number,
            "title_sw": self.title_sw,
            "title_en": self.title_en,
            "status": self.status,
            "progress": self.progress,
            "version": self.version,
        }

    def _event_fields(self) -> dict[str, Any]:
        """The public event's fields: no focal person's contact, only how many there are."""
        return {
            **self._identity(),
            "lead_institution": self.lead_institution,
            "focal_person_count": len(self.focal_persons),
        }

    def _notice_fields(self) -> dict[str, Any]:
        """The private notice's fields: the focal persons, to write to them."""
        return {**self._identity(), "focal_persons": list(self.focal_persons)}


def _json(value: Any) -> Any:
    """A detail's value as stored and shown in versions (dates as ISO, models as dicts)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


# --------------------------------------------------------------------------- report links


# What stands in a version's history for an erased focal person.
ERASED_PERSON: dict[str, Any] = {"erased": True}


def person_key(email: str) -> str:
    """A focal person's key in links and timeline entries: 8 bytes of their email's hash
    (no personal data in a URL or on the public timeline)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


class FocalLinkSigner:
    """Report links: what a focal person's email carries to open their resolution's page.

    ``base64url(16-byte resolution id + 8-byte person key + 4-byte expiry in epoch
    seconds + 16-byte HMAC-SHA256 tag)``, 59 characters: bound to one resolution, one
    focal person and an expiry, with one valid spelling (decoded, encoded again and
    compared). Its key is the resolutions service's own (``RESOLUTIONS_LINK_SECRET``), so
    a registration link is no report link. A tampered, expired or unknown link opens
    nothing, and the page cannot tell which.
    """

    _MAC_BYTES = 16
    _BODY = 28
    _LENGTH = 59

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + data, hashlib.sha256).digest()

    @staticmethod
    def _encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def sign(self, resolution_id: str, person: str, expires_at: datetime) -> str:
        body = (
            uuid.UUID(resolution_id).bytes
            + bytes.fromhex(person)
            + int(expires_at.timestamp()).to_bytes(4, "big")
        )
        return self._encode(body + self._mac(b"report", body)[: self._MAC_BYTES])

    def verify(self, link: str, now: datetime) -> tuple[str, str] | None:
        """(resolution id, person key) of a genuine, unexpired link, else None."""
        if len(link) != self._LENGTH:
            return None
        try:
            data = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
        except ValueError:
            return None
        if len(data) != self._BODY + self._MAC_BYTES or self._encode(data) != link:
            return None
        body, tag = data[: self._BODY], data[self._BODY :]
        if not hmac.compare_digest(self._mac(b"report", body)[: self._MAC_BYTES], tag):
            return None
        if int.from_bytes(body[24:], "big") <= now.timestamp():
            return None
        return str(uuid.UUID(bytes=body[:16])), body[16:24].hex()

    def form_token(self, subject: str) -> str:
        """The token the page's form carries (against cross-site posts), tied to the link."""
        return self._encode(self._mac(b"form", subject.encode())[:18])

    def form_token_matches(self, subject: str, token: str | None) -> bool:
        return hmac.compare_digest(self.form_token(subject).encode(), (token or "").encode())


def report_path(link: str) -> str:
    """The page a report link opens (the service's public base URL goes before)."""
    return f"/report/{link}"


def report_links(
    resolution: Resolution,
    signer: FocalLinkSigner,
    public_url: str,
    *,
    now: datetime,
    validity: timedelta,
) -> list[ReportLink]:
    """A fresh link for each focal person of ``resolution``, valid for ``validity``."""
    expires_at = now + validity
    return [
        ReportLink(
            email=person.email,
            url=public_url.rstrip("/")
            + report_path(signer.sign(resolution.id, person_key(person.email), expires_at)),
            expires_at=expires_at,
        )
        for person in resolution.focal_persons
    ]


# --------------------------------------------------------------------------- evidence

# What evidence may be, judged by the file's content (its magic bytes), never its name.
EVIDENCE_TYPES: dict[str, str] = {
    "application/pdf": "PDF",
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/webp": "WebP image",
    "image/gif": "GIF image",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint",
    "application/msword": "Word 97-2003",
    "application/vnd.ms-excel": "Excel 97-2003",
    "application/vnd.ms-powerpoint": "PowerPoint 97-2003",
    "application/vnd.oasis.opendocument.text": "OpenDocument text",
    "application/vnd.oasis.opendocument.spreadsheet": "OpenDocument spreadsheet",
    "application/vnd.oasis.opendocument.presentation": "OpenDocument presentation",
}
FileName = single_line_text(min_length=1, max_length=200)
MAX_FILES_PER_UPDATE = 5


@dataclass(frozen=True)
class EvidenceFile:
    """A checked evidence file: its content hash names it in the store."""

    sha256: str
    name: str
    media_type: str
    size: int
    data: bytes = field(repr=False)

    def reference(self) -> dict[str, Any]:
        """What a timeline entry keeps of it."""
        return {
            "sha256": self.sha256,
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
        }


def safe_file_name(name: str) -> str:
    """The file's name as shown (no path, no control characters, at most 200 characters)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return (cleaned or "evidence")[:200]


def check_evidence(data: bytes, name: str, *, max_bytes: int, field: str = "files") -> EvidenceFile:
    """A file accepted as evidence, or ``DomainError`` naming the file and the reason."""
    shown = safe_file_name(name)
    if len(data) > max_bytes:
        raise DomainError(
            "file_too_large",
            f"{shown} is larger than {max_bytes // (1024 * 1024)} MiB.",
            field=field,
            details={"file": shown, "max_bytes": max_bytes},
        )
    if not data:
        raise DomainError("file_empty", f"{shown} is empty.", field=field, details={"file": shown})
    kind = filetype.guess(data)
    media = kind.mime if kind else None
    if media not in EVIDENCE_TYPES:
        raise DomainError(
            "file_type_refused",
            f"{shown} is not a PDF, an image or an office document"
            f" (its content is {media or 'not recognised'}).",
            field=field,
            details={"file": shown, "detected": media, "accepted": sorted(EVIDENCE_TYPES)},
        )
    return EvidenceFile(
        sha256=hashlib.sha256(data).hexdigest(),
        name=shown,
        media_type=media,
        size=len(data),
        data=data,
    )


# --------------------------------------------------------------------------- chasing


@dataclass(kw_only=True)
class Reminder(Aggregate):
    """That one rule fired for one resolution (or one digest for one conference): its id is
    the rule's key, so each fires once; its notice is recorded with it."""

    id: str
    conference_id: str
    resolution_id: str | None
    rule: str
    at: str

    def attach_report_links(self, links: Sequence[ReportLink]) -> None:
        """Put each focal person's report link into the reminder's notice."""
        self.events = with_report_links(self.events, links)


def with_report_links(events: Sequence[Any], links: Sequence[ReportLink]) -> list[Any]:
    """``events`` with the focal persons' report links in each notice to them."""
    return [
        e.model_copy(update={"report_links": list(links)})
        if isinstance(e, _FocalPersonsNotice)
        else e
        for e in events
    ]


def next_conference(conference: Conference, conferences: Sequence[Conference]) -> Conference | None:
    """The first conference that starts after ``conference``."""
    later = [c for c in conferences if c.starts_on > conference.starts_on]
    return min(later, key=lambda c: c.starts_on) if later else None


def _due_rules(
    conference: Conference,
    resolution: Resolution,
    today: date,
    upcoming: Conference | None,
) -> list[tuple[str, str, int | None]]:
    """(key, rule, days) of each rule due today for an unfinished resolution."""
    rules = conference.reporting
    due: list[tuple[str, str, int | None]] = []
    rid = resolution.id
    target = resolution.target_date
    if target is not None:
        days_left = (target - today).days
        within = [d for d in rules.remind_before_target_days if 0 < days_left <= d]
        if within:
            d = min(within)  # only the tightest: no 30-day reminder a week before
            due.append((f"{rid}:before:{d}:{target.isoformat()}", "before_target", d))
        if days_left < 0:
            period = (-days_left - 1) // rules.overdue_every_days
            due.append((f"{rid}:overdue:{target.isoformat()}:{period}", "overdue", -days_left))
    if today > conference.ends_on:
        period = (today - conference.ends_on).days // rules.report_every_days
        due.append((f"{rid}:report:{period}", "report_due", None))
    if upcoming is not None:
        days_to_next = (upcoming.starts_on - today).days
        within = [d for d in rules.report_before_next_days if 0 < days_to_next <= d]
        if within:
            d = min(within)
            due.append((f"{rid}:before-next:{upcoming.id}:{d}", "report_due", d))
    return due


def due_reminders(
    conference: Conference,
    resolutions: Sequence[Resolution],
    *,
    today: date,
    now: datetime,
    upcoming: Conference | None = None,
) -> list[Reminder]:
    """The reminders due today for a conference's unfinished resolutions that have focal
    persons, each with its notice recorded. The store keeps each key once: one already
    sent is refused there (``AlreadyTaken``), so a reminder goes out once per rule."""
    reminders = []
    for resolution in resolutions:
        if resolution.status == "completed" or not resolution.focal_persons:
            continue
        for key, rule, days in _due_rules(conference, resolution, today, upcoming):
            reminder = Reminder(
                id=key,
                conference_id=conference.id,
                resolution_id=resolution.id,
                rule=rule,
                at=iso(now),
            )
            reminder.record(
                ResolutionReminderNotice(
                    **resolution._notice_fields(),
                    rule=rule,
                    days=days,
                    target_date=resolution.target_date,
                    lead_institution=resolution.lead_institution,
                    due_at=now,
                )
            )
            reminders.append(reminder)
    return reminders


STALE_AFTER = timedelta(days=30)
DIGEST_CHANGED_WITHIN = timedelta(days=7)


def _digest_item(resolution: Resolution, today: date, note: str | None = None) -> DigestItem:
    target = resolution.target_date
    overdue = resolution.is_overdue(today)
    return DigestItem(
        resolution_id=resolution.id,
        number=resolution.number,
        title_sw=resolution.title_sw,
        title_en=resolution.title_en,
        lead_institution=resolution.lead_institution,
        status=resolution.status,
        progress=resolution.progress,
        target_date=target,
        days_overdue=(today - target).days if overdue and target else 0,
        last_update_at=resolution.last_update_at()[:10],
        note=note,
    )


def weekly_digest(
    conference: Conference,
    resolutions: Sequence[Resolution],
    *,
    today: date,
    now: datetime,
    recipients: Sequence[str],
    language: str = "sw",
    report_url: str | None = None,
) -> Reminder | None:
    """This week's digest for a conference's coordinators (one per ISO week), or None
    when there is nobody to send it to or nothing to report."""
    if not recipients or not resolutions:
        return None
    year, week, _ = today.isocalendar()
    week_key = f"{year}-W{week:02d}"
    overdue = [_digest_item(r, today) for r in resolutions if r.is_overdue(today)]
    stale = [
        _digest_item(r, today)
        for r in resolutions
        if r.status != "completed" and as_datetime(r.last_update_at()) < now - STALE_AFTER
    ]
    changed = []
    for r in resolutions:
        recent = [e for e in r.timeline if as_datetime(e.at) >= now - DIGEST_CHANGED_WITHIN]
        if recent:
            changed.append(_digest_item(r, today, note=recent[-1].note or None))
    reminder = Reminder(
        id=f"digest:{conference.id}:{week_key}",
        conference_id=conference.id,
        resolution_id=None,
        rule="digest",
        at=iso(now),
    )
    reminder.record(
        CoordinatorDigestNotice(
            conference_id=conference.id,
            name_sw=conference.name_sw,
            name_en=conference.name_en,
            week=week_key,
            recipients=list(recipients),
            language=language,
            overdue=overdue,
            stale=stale,
            changed=changed,
            pending_approvals=sum(len(r.pending_updates) for r in resolutions),
            report_url=report_url,
            sent_at=now,
        )
    )
    return reminder
