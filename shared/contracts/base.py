"""Base of every integration event: a small immutable pydantic model with a stable type.

An event class names its stream (domain + topic), its name and its version; the
CloudEvents ``type`` is ``tz.go.ega.<domain>.<Name>.v<version>``. Within a version,
changes are additive only (new optional fields); a breaking change is a new class
with the next version. Consumers ignore fields they do not know, so additive changes
never break them.

A version that stops being published is *retired* (``retired = True``), never deleted:
its schema stays in docs/contracts/ and the envelope still parses its records (those
already on a topic, within its retention), but no service declares a publisher for it,
so the relay cannot publish it again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

CE_TYPE_PREFIX = "tz.go.ega"


class IntegrationEvent(BaseModel):
    """An event published on a Kafka topic, keyed by its aggregate id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    domain: ClassVar[str]
    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate_field: ClassVar[str]
    # No longer published (replaced by a newer version); still parsed and documented.
    retired: ClassVar[bool] = False

    @classmethod
    def event_name(cls) -> str:
        return (
            cls.__name__.removesuffix(f"V{cls.schema_version}")
            if cls.schema_version > 1
            else cls.__name__
        )

    @classmethod
    def ce_type(cls) -> str:
        return f"{CE_TYPE_PREFIX}.{cls.domain}.{cls.event_name()}.v{cls.schema_version}"

    @property
    def aggregate_id(self) -> str:
        """The record key: events of one aggregate share a partition and stay in order."""
        return str(getattr(self, self.aggregate_field))


EVENT_TYPES: dict[str, type[IntegrationEvent]] = {}


def register(cls: type[IntegrationEvent]) -> type[IntegrationEvent]:
    """Class decorator: make an event type known to the envelope by its ce_type."""
    ce_type = cls.ce_type()
    if ce_type in EVENT_TYPES and EVENT_TYPES[ce_type] is not cls:
        raise ValueError(f"duplicate event type {ce_type}")
    EVENT_TYPES[ce_type] = cls
    return cls


def event_class(ce_type: str) -> type[IntegrationEvent] | None:
    return EVENT_TYPES.get(ce_type)


def stream_events(topic: str, *, retired: bool = False) -> list[type[IntegrationEvent]]:
    """Every event type published on one stream, in ce_type order (with ``retired``, the
    retired versions too: what a reader of the topic's retained records may find)."""
    return sorted(
        (
            cls
            for cls in EVENT_TYPES.values()
            if cls.topic == topic and (retired or not cls.retired)
        ),
        key=lambda c: c.ce_type(),
    )


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(cls: type[IntegrationEvent]) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event type's payload, identified by its ce_type."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:mkutano:event:{cls.ce_type()}",
        **cls.model_json_schema(),
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every registered event, by ce_type."""
    return {t: json_schema(cls) for t, cls in sorted(EVENT_TYPES.items())}
