"""CloudEvents 1.0 in Kafka binary mode.

A record's headers carry the attributes (``ce_specversion``, ``ce_id``, ``ce_source``,
``ce_type``, ``ce_time``, ``content-type``), its value is the JSON payload and its key
the aggregate id. ``ce_id`` is the idempotency key of every consumer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.contracts import IntegrationEvent, event_class
from shared.timeutil import iso, utcnow
from shared.tracing import current_traceparent

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
SOURCE_PREFIX = "/mkutano/"


class EnvelopeError(ValueError):
    """The record is not a valid CloudEvent in binary mode."""


class UnknownEventType(EnvelopeError):
    """The ce_type names no event this platform knows."""


class InvalidPayload(EnvelopeError):
    """The value does not validate against the event's schema."""


def source_of(service: str) -> str:
    return f"{SOURCE_PREFIX}{service}"


@dataclass(frozen=True)
class OutboxMessage:
    """An event ready to publish, as kept in an aggregate's outbox."""

    id: str
    type: str
    source: str
    time: str
    topic: str
    key: str
    data: dict[str, Any]
    traceparent: str | None = None

    def to_document(self) -> dict[str, Any]:
        doc = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time,
            "topic": self.topic,
            "key": self.key,
            "data": self.data,
        }
        if self.traceparent:
            doc["traceparent"] = self.traceparent
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> OutboxMessage:
        return cls(
            id=doc["id"],
            type=doc["type"],
            source=doc["source"],
            time=doc["time"],
            topic=doc["topic"],
            key=doc["key"],
            data=doc["data"],
            traceparent=doc.get("traceparent"),
        )

    def headers(self) -> dict[str, str]:
        headers = {
            "ce_specversion": SPECVERSION,
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_time": self.time,
            "content-type": CONTENT_TYPE,
        }
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        return headers

    def value(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()


def wrap(event: IntegrationEvent, service: str, *, event_id: str | None = None) -> OutboxMessage:
    """Turn a domain's integration event into an outbox message with a fresh ce_id."""
    return OutboxMessage(
        id=event_id or str(uuid.uuid4()),
        type=event.ce_type(),
        source=source_of(service),
        time=iso(utcnow()),
        topic=event.topic,
        key=event.aggregate_id,
        data=event.model_dump(mode="json"),
        # The trace of the request that caused it, carried to Kafka and the consumers.
        traceparent=current_traceparent(),
    )


@dataclass(frozen=True)
class ReceivedEvent:
    """A consumed CloudEvent: its attributes and the validated payload."""

    id: str
    source: str
    type: str
    time: datetime | None
    key: str | None
    event: IntegrationEvent
    headers: dict[str, str]


def decode_headers(raw: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in raw or ():
        try:
            out[k] = v.decode() if isinstance(v, bytes | bytearray) else str(v)
        except UnicodeDecodeError:
            out[k] = v.hex() if isinstance(v, bytes | bytearray) else str(v)
    return out


def parse(headers: dict[str, str], value: bytes | None, key: bytes | None = None) -> ReceivedEvent:
    """Validate a binary-mode CloudEvent and its payload.

    Raises ``UnknownEventType`` or ``InvalidPayload`` (both ``EnvelopeError``).
    """
    for attr in ("ce_specversion", "ce_id", "ce_source", "ce_type"):
        if not headers.get(attr):
            raise EnvelopeError(f"missing header {attr}")
    if headers["ce_specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported ce_specversion {headers['ce_specversion']!r}")
    cls = event_class(headers["ce_type"])
    if cls is None:
        raise UnknownEventType(f"unknown ce_type {headers['ce_type']!r}")
    try:
        data = json.loads(value or b"")
        event = cls.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise InvalidPayload(f"{headers['ce_type']}: {_short(exc)}") from exc
    ce_time = None
    if headers.get("ce_time"):
        try:
            ce_time = datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00"))
        except ValueError:
            ce_time = None
    return ReceivedEvent(
        id=headers["ce_id"],
        source=headers["ce_source"],
        type=headers["ce_type"],
        time=ce_time,
        key=key.decode(errors="replace") if key else None,
        event=event,
        headers=headers,
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
            for e in exc.errors()[:5]
        ]
        return "; ".join(parts)
    return str(exc)[:300]
