"""A test-only consuming service (``python -m tests.faults.probe_service``).

It is built exactly like a platform service (``ServiceRuntime`` + ``add_consumer``, so
the same retries, dead-letter topic ``probe.dlq`` and dedupe), and applies each
``ParticipantRegistered`` (version 2, the public one) by recording it in its own database. Its rule — the test's
"handler that always fails" — refuses registrations from the institution named by
``PROBE_REFUSE_INSTITUTION``; restarting it without that variable is "the fix" after
which the dead-letter topic is replayed. Nothing of this lives in production code.
"""

from __future__ import annotations

import os

from pydantic_settings import SettingsConfigDict
from pymongo.errors import DuplicateKeyError

from shared.contracts.registration import ParticipantRegisteredV2
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.topics import REGISTRATION, TopicSpec, dead_letter_topic, ensure_topics

NAME = "probe"


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_", extra="ignore")

    mongo_db: str = "mkutano_probe"
    refuse_institution: str | None = None


class RefusedByRule(Exception):
    """The probe's rule rejects this registration (until the rule is fixed)."""


def create_runtime(settings: ProbeSettings | None = None) -> ServiceRuntime:
    settings = settings or ProbeSettings()
    runtime = ServiceRuntime(NAME, settings, title="probe", description="fault-test consumer")
    applied = runtime.db["applied"]

    async def apply(received: ReceivedEvent) -> None:
        event = received.event
        if settings.refuse_institution and event.participant.institution == (
            settings.refuse_institution
        ):
            raise RefusedByRule(f"institution refused by rule (registration {event.reference})")
        try:  # idempotent in its own write: keyed on the event id
            await applied.insert_one(
                {
                    "_id": received.id,
                    "registration_id": event.registration_id,
                    "reference": event.reference,
                }
            )
        except DuplicateKeyError:
            pass

    @runtime.on_startup
    async def dead_letter_topic_exists() -> None:
        await ensure_topics(
            settings.kafka.bootstrap_servers, [TopicSpec(dead_letter_topic(NAME), 1)]
        )

    runtime.add_consumer(
        group_id=NAME, topics=[REGISTRATION], handlers={ParticipantRegisteredV2: apply}
    )
    return runtime


if __name__ == "__main__":
    os.environ.setdefault("PROBE_HTTP_PORT", "0")
    create_runtime().run()
