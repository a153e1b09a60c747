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

from datetime import datetime

from shared.contracts.base import IntegrationEvent, register
from shared.contracts.resolutions import FocalPerson
from shared.topics import RESOLUTIONS_NOTICES


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
