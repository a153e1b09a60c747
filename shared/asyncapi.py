"""The AsyncAPI document of a service, as it runs.

FastStream generates the document from the declared publishers and subscribers. Two
things it cannot know are added here: the CloudEvents headers of every message (binary
mode: the attributes are Kafka headers), and, for a consumer group, the event types it
really handles on each topic (its subscriber takes raw bytes, because the runtime
validates the CloudEvent itself, so FastStream would document ``string/binary``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.contracts import event_class
from shared.envelope import CONTENT_TYPE, SPECVERSION

SCHEMA_REF = "#/components/schemas/{model}"


def cloudevents_headers_schema(ce_type: str | list[str], source: str | None) -> dict[str, Any]:
    """JSON Schema of the Kafka headers of an event type (CloudEvents binary mode)."""
    types = [ce_type] if isinstance(ce_type, str) else sorted(ce_type)
    type_schema: dict[str, Any] = (
        {"type": "string", "const": types[0]}
        if len(types) == 1
        else {"type": "string", "enum": types}
    )
    source_schema: dict[str, Any] = (
        {"type": "string", "const": source}
        if source
        else {"type": "string", "description": "The publishing service, /mkutano/<service>."}
    )
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
        "properties": {
            "ce_specversion": {"type": "string", "const": SPECVERSION},
            "ce_id": {
                "type": "string",
                "description": "Unique per event; the idempotency key of every consumer.",
            },
            "ce_source": source_schema,
            "ce_type": type_schema,
            "ce_time": {"type": "string", "format": "date-time"},
            "content-type": {"type": "string", "const": CONTENT_TYPE},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the request that caused the event.",
            },
        },
    }


def add_published_headers(document: dict[str, Any], published: Iterable[str], source: str) -> None:
    """Give every published message of the document its CloudEvents headers schema."""
    published = set(published)
    for title, message in document.get("components", {}).get("messages", {}).items():
        ce_type = title.removesuffix(":Message").partition(":")[2]
        if ce_type in published:
            message["headers"] = cloudevents_headers_schema(ce_type, source)


def add_consumed_messages(
    document: dict[str, Any], group_title: str, handled_by_topic: Mapping[str, list[str]]
) -> None:
    """Replace a raw-bytes subscriber's message with one message per handled event type.

    ``group_title`` is the subscriber's title (``<group>:<topic>+<topic>``);
    ``handled_by_topic`` maps each topic to the ce_types the group handles on it.
    """
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    messages = components.setdefault("messages", {})
    for topic, ce_types in handled_by_topic.items():
        channel_name = f"{group_title}:{topic}"
        channel = document.get("channels", {}).get(channel_name)
        if channel is None or not ce_types:
            continue
        # FastStream's generic message and payload for this subscriber go.
        for ref in channel.get("messages", {}).values():
            old = messages.pop(ref["$ref"].rsplit("/", 1)[-1], None)
            if old and "$ref" in old.get("payload", {}):
                schemas.pop(old["payload"]["$ref"].rsplit("/", 1)[-1], None)
        channel["messages"] = {}
        escaped = channel_name.replace("+", "%2B")
        operation_refs = []
        for ce_type in sorted(ce_types):
            cls = event_class(ce_type)
            if cls is None:
                continue
            schema = cls.model_json_schema(ref_template=SCHEMA_REF)
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas.setdefault(cls.__name__, schema)
            key = f"{channel_name}:{ce_type}"
            messages[key] = {
                "name": ce_type,
                "title": ce_type,
                "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "contentType": CONTENT_TYPE,
                "payload": {"$ref": SCHEMA_REF.format(model=cls.__name__)},
                "headers": cloudevents_headers_schema(ce_type, None),
            }
            channel["messages"][ce_type] = {"$ref": f"#/components/messages/{key}"}
            operation_refs.append({"$ref": f"#/channels/{escaped}/messages/{ce_type}"})
        for operation in document.get("operations", {}).values():
            if operation.get("action") == "receive" and operation["channel"]["$ref"] == (
                f"#/channels/{escaped}"
            ):
                operation["messages"] = operation_refs
