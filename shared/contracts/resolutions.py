"""Events on ``resolutions.v1``, the public stream of the resolutions service.

Any e-GA system may be granted read access to it (docs/integrating.md), so it carries no
contact details. A resolution's events (version 2) say what it is (number, titles, the
conference), where it stands (status, progress, version), which institution leads it and
how many focal persons follow it: the purposes docs/integrating.md names (implementation
dashboards per institution, follow-up of who is accountable). The focal persons' names,
emails and phones, which only the notification service needs (to email them), are on the
private stream ``resolutions.notices.v1`` (shared/contracts/resolutions_notices.py).

The version-1 events carried the focal persons (``focal_persons: list[FocalPerson]``) to
every reader. They are retired (no longer published; kept so that the records still on
the topic parse and their schemas stay documented).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.topics import RESOLUTIONS


class FocalPerson(BaseModel):
    """Personal data of a resolution's focal person."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    full_name: str
    institution: str
    email: str
    phone: str | None = None
    language: str = "sw"


class _ResolutionEvent(IntegrationEvent):
    domain = "resolutions"
    topic = RESOLUTIONS
    aggregate_field = "resolution_id"
    # Version 1 carried the focal persons' contact details: replaced by version 2 (below).
    retired = True

    resolution_id: str
    conference_id: str
    number: int
    title_sw: str
    title_en: str
    status: str
    progress: int
    version: int
    focal_persons: list[FocalPerson] = []


@register
class ResolutionCreated(_ResolutionEvent):
    """A resolution was adopted or imported."""

    created_at: datetime


@register
class ResolutionUpdated(_ResolutionEvent):
    """Progress was recorded or details changed."""

    previous_status: str
    previous_progress: int
    note: str | None = None
    recorded_by: str
    updated_at: datetime
    # Additive (v1): what changed (e.g. ["progress", "status"], ["title_en"], ["actions"]),
    # the evidence links of a progress update, and the action it concerned, if any.
    changed: list[str] = []
    evidence: list[str] = []
    action_id: str | None = None


@register
class ResolutionCompleted(_ResolutionEvent):
    """The resolution reached the completed status."""

    completed_at: datetime


# -- version 2: no contact details -----------------------------------------------------


class _ResolutionEventV2(IntegrationEvent):
    domain = "resolutions"
    topic = RESOLUTIONS
    schema_version = 2
    aggregate_field = "resolution_id"

    resolution_id: str
    conference_id: str
    number: int
    title_sw: str
    title_en: str
    status: str
    progress: int
    version: int
    # Who is accountable, without naming a person: the lead institution and how many
    # focal persons follow the resolution (their contacts go to notification only).
    lead_institution: str
    focal_person_count: int = 0


@register
class ResolutionCreatedV2(_ResolutionEventV2):
    """A resolution was adopted or imported."""

    created_at: datetime


@register
class ResolutionUpdatedV2(_ResolutionEventV2):
    """Progress was recorded or details changed (``changed`` names what, e.g.
    ["progress", "status"], ["title_en"], ["focal_persons"], ["actions.<id>"])."""

    previous_status: str
    previous_progress: int
    note: str | None = None
    recorded_by: str
    updated_at: datetime
    changed: list[str] = []
    evidence: list[str] = []
    action_id: str | None = None


@register
class ResolutionCompletedV2(_ResolutionEventV2):
    """The resolution reached the completed status."""

    completed_at: datetime
