"""Events on ``resolutions.notices.v1``: the private stream from resolutions to notification.

Each resolution change that calls for an email to its focal persons is published twice,
from the same outbox write: its public event on ``resolutions.v1`` (no contact details)
and its notice here, with what notification needs to write to the focal persons without
calling back: their names, emails, phones and languages, and the resolution's details.
Keyed by resolution id, so a resolution's notices stay in order. A change of a resolution
without focal persons has no notice (there is nobody to tell).

Only the resolutions service may write this topic and only the notification service's
consumer group may read it (Kafka ACLs: deploy/kafka-acls.sh, docs/operations.md). It is
not part of the integration contract of docs/integrating.md: other systems never see it.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.contracts.resolutions import FocalPerson
from shared.topics import RESOLUTIONS_NOTICES


class ReportLink(BaseModel):
    """A focal person's signed link to their resolution's update page (additive)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    email: str
    url: str
    expires_at: datetime


class _FocalPersonsNotice(IntegrationEvent):
    domain = "resolutions"
    topic = RESOLUTIONS_NOTICES
    aggregate_field = "resolution_id"

    resolution_id: str
    conference_id: str
    number: int
    title_sw: str
    title_en: str
    status: str
    progress: int
    version: int
    focal_persons: list[FocalPerson]
    # Additive: each focal person's own link to the update page (matched by email), so
    # that every email about their resolution carries it.
    report_links: list[ReportLink] = []


@register
class ResolutionUpdatedNotice(_FocalPersonsNotice):
    """Progress was recorded or details changed: the focal persons are told."""

    previous_status: str
    previous_progress: int
    note: str | None = None
    updated_at: datetime


@register
class ResolutionCompletedNotice(_FocalPersonsNotice):
    """The resolution reached the completed status: the focal persons are thanked."""

    completed_at: datetime


@register
class ResolutionReminderNotice(_FocalPersonsNotice):
    """A reminder to the focal persons of an unfinished resolution, once per rule.

    ``rule``: ``report_due`` (the conference's reporting cadence, or before the next
    conference), ``before_target`` (``days`` before the target date) or ``overdue``
    (``days`` past the target date, weekly).
    """

    rule: str
    days: int | None = None
    target_date: date | None = None
    lead_institution: str
    due_at: datetime


class DigestItem(BaseModel):
    """One resolution in the coordinators' digest (no focal person's contact)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    resolution_id: str
    number: int
    title_sw: str
    title_en: str
    lead_institution: str
    status: str
    progress: int
    target_date: date | None = None
    days_overdue: int = 0
    last_update_at: str | None = None
    note: str | None = None


@register
class CoordinatorDigestNotice(IntegrationEvent):
    """The weekly digest of a conference's resolutions, to its coordinators: what is
    overdue, what has had no update for a month, and what changed in the week."""

    domain = "resolutions"
    topic = RESOLUTIONS_NOTICES
    aggregate_field = "conference_id"

    conference_id: str
    name_sw: str
    name_en: str
    week: str
    recipients: list[str]
    language: str = "sw"
    overdue: list[DigestItem] = []
    stale: list[DigestItem] = []
    changed: list[DigestItem] = []
    pending_approvals: int = 0
    report_url: str | None = None
    sent_at: datetime


@register
class FocalPersonErased(IntegrationEvent):
    """A focal person's personal data was erased (PDPA) from a resolution: notification
    drops its copies (unsent messages to ``email`` are cancelled, sent ones scrubbed).
    One per resolution that held them; applying it twice changes nothing."""

    domain = "resolutions"
    topic = RESOLUTIONS_NOTICES
    aggregate_field = "resolution_id"

    resolution_id: str
    conference_id: str
    person_key: str
    email: str
    erased_at: datetime
