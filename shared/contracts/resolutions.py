"""Events on ``resolutions.v1``, published by the resolutions service."""

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
