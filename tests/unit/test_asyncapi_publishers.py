"""Every service's AsyncAPI document lists every event type it can publish, with the
CloudEvents headers, and the runtime publishes only what it declared.

The publishers are declared once from ``shared.contracts`` (``ServiceRuntime.publishes``)
and the relay publishes through them, so the document is what runs.
"""

from __future__ import annotations

import asyncio
import importlib
import os

import pytest

from shared.contracts import stream_events
from shared.envelope import OutboxMessage
from shared.runtime import UndeclaredEventType
from shared.topics import (
    NOTIFICATION,
    REGISTRATION,
    REGISTRATION_NOTICES,
    RESOLUTIONS,
    RESOLUTIONS_NOTICES,
)

STREAMS = {
    "registration": (REGISTRATION, REGISTRATION_NOTICES),
    "notification": (NOTIFICATION,),
    "resolutions": (RESOLUTIONS, RESOLUTIONS_NOTICES),
}
CE_HEADERS = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"}


def runtime_of(service: str):
    os.environ.setdefault("MKUTANO_ENV", "test")
    return importlib.import_module(f"services.{service}.app").create_runtime()


def sent_messages(document: dict) -> dict[str, dict]:
    """ce_type -> message, for the messages of the document's ``send`` operations."""
    messages = document["components"]["messages"]
    out: dict[str, dict] = {}
    for operation in document["operations"].values():
        if operation["action"] != "send":
            continue
        channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        ce_type = channel.partition(":")[2]
        out[ce_type] = messages[f"{channel}:Message"]
    return out


@pytest.mark.parametrize("service", sorted(STREAMS))
def test_every_published_event_type_is_in_the_asyncapi_with_its_headers(service: str) -> None:
    runtime = runtime_of(service)
    sent = sent_messages(runtime.asyncapi_document())
    expected = {cls.ce_type() for topic in STREAMS[service] for cls in stream_events(topic)}
    assert expected, service
    assert set(sent) == expected
    for ce_type, message in sent.items():
        headers = message["headers"]
        assert CE_HEADERS <= set(headers["required"]), ce_type
        assert headers["properties"]["ce_type"]["const"] == ce_type
        assert headers["properties"]["ce_source"]["const"] == f"/mkutano/{service}"


def test_personal_data_erased_is_documented_on_the_registration_stream() -> None:
    sent = sent_messages(runtime_of("registration").asyncapi_document())
    assert "tz.go.ega.registration.PersonalDataErased.v1" in sent


def test_an_undeclared_event_type_is_refused_before_it_reaches_the_broker() -> None:
    runtime = runtime_of("resolutions")
    runtime.broker_connected = True  # nothing is sent: the type check comes first
    message = OutboxMessage(
        id="1",
        type="tz.go.ega.registration.ParticipantRegistered.v1",
        source="/mkutano/resolutions",
        time="2026-01-01T00:00:00Z",
        topic=REGISTRATION,
        key="k",
        data={},
    )
    with pytest.raises(UndeclaredEventType):
        asyncio.run(runtime.publish(message))


def test_a_retired_version_is_not_declared_and_cannot_be_published() -> None:
    """Version 1 of the registration events carried tickets and contact details: retired,
    it is still parsed and documented, but the relay has no publisher for it."""
    runtime = runtime_of("registration")
    retired = {c.ce_type() for c in stream_events(REGISTRATION, retired=True)} - {
        c.ce_type() for c in stream_events(REGISTRATION)
    }
    assert "tz.go.ega.registration.ParticipantRegistered.v1" in retired
    assert not retired & set(runtime.publishers)
    runtime.broker_connected = True
    message = OutboxMessage(
        id="1",
        type="tz.go.ega.registration.ParticipantRegistered.v1",
        source="/mkutano/registration",
        time="2026-01-01T00:00:00Z",
        topic=REGISTRATION,
        key="k",
        data={},
    )
    with pytest.raises(UndeclaredEventType):
        asyncio.run(runtime.publish(message))


def test_the_retired_resolution_events_are_not_declared() -> None:
    """Version 1 of the resolution events carried the focal persons' contacts: retired."""
    runtime = runtime_of("resolutions")
    retired = {c.ce_type() for c in stream_events(RESOLUTIONS, retired=True)} - {
        c.ce_type() for c in stream_events(RESOLUTIONS)
    }
    assert "tz.go.ega.resolutions.ResolutionUpdated.v1" in retired
    assert not retired & set(runtime.publishers)
