"""Versioned event contracts: the single source of the schemas.

Importing this package registers every event type with the envelope.
"""

from shared.contracts import (
    notification,
    payments,
    payments_notices,
    registration,
    registration_notices,
    resolutions,
    resolutions_notices,
)
from shared.contracts.base import (
    EVENT_TYPES,
    IntegrationEvent,
    event_class,
    json_schemas,
    stream_events,
)

__all__ = [
    "EVENT_TYPES",
    "IntegrationEvent",
    "event_class",
    "json_schemas",
    "notification",
    "payments",
    "payments_notices",
    "registration",
    "registration_notices",
    "resolutions",
    "resolutions_notices",
    "stream_events",
]
