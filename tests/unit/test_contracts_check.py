"""The committed contracts (docs/contracts/) match the code, and a breaking change of a
published event version fails the check (this test is what makes CI fail)."""

from __future__ import annotations

import copy
import json

import pytest

from deploy import contracts

REGISTERED = "tz.go.ega.registration.ParticipantRegistered.v1"
REL = f"events/{REGISTERED}.schema.json"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return contracts.generate_documents()


def test_committed_contracts_match_the_code(generated) -> None:
    breaking, drift = contracts.check(generated, contracts.committed_documents())
    assert not breaking, "\n".join(breaking)
    assert not drift, (
        "docs/contracts/ differs from the code; run `make contracts` and commit:\n"
        + "\n".join(drift)[:4000]
    )


def test_generation_is_deterministic_and_has_every_part(generated) -> None:
    assert contracts.generate_documents() == generated
    for service in contracts.SERVICES:
        asyncapi = json.loads(generated[f"asyncapi/{service}.json"])
        assert asyncapi["asyncapi"] == "3.0.0"
        assert all(s["host"] == "kafka:9092" for s in asyncapi["servers"].values())
        openapi = json.loads(generated[f"openapi/{service}.json"])
        assert "/api/v1/admin/api-keys" in openapi["paths"]
    assert REL in generated
    assert "ParticipantRegistered" in generated["asyncapi/registration.json"]


def _with(generated: dict[str, str], schema: dict) -> dict[str, str]:
    return {**generated, REL: json.dumps(schema, indent=2, sort_keys=True) + "\n"}


def _schema(generated) -> dict:
    return json.loads(generated[REL])


def test_removing_a_field_is_breaking(generated) -> None:
    new = _schema(generated)
    victim = sorted(new["properties"])[0]
    del new["properties"][victim]
    new["required"] = [r for r in new.get("required", []) if r != victim]
    breaking, _ = contracts.check(_with(generated, new), generated)
    assert breaking == [f"breaking: {REGISTERED}: {victim}: property removed"]


def test_retyping_a_field_is_breaking(generated) -> None:
    new = _schema(generated)
    new["properties"]["reference"] = {"type": "integer"}
    breaking, _ = contracts.check(_with(generated, new), generated)
    assert len(breaking) == 1 and "reference: type changed" in breaking[0]


def test_a_new_required_field_is_breaking(generated) -> None:
    new = _schema(generated)
    new["properties"]["badge_colour"] = {"type": "string"}
    new["required"] = [*new.get("required", []), "badge_colour"]
    breaking, _ = contracts.check(_with(generated, new), generated)
    assert breaking == [f"breaking: {REGISTERED}: badge_colour: newly required"]


def test_removing_an_event_type_is_breaking(generated) -> None:
    fewer = {k: v for k, v in generated.items() if k != REL}
    breaking, _ = contracts.check(fewer, generated)
    assert breaking == [f"breaking: {REGISTERED}: event type removed"]


def test_an_optional_new_field_is_additive_but_still_drift(generated) -> None:
    new = copy.deepcopy(_schema(generated))
    new["properties"]["badge_colour"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }
    breaking, drift = contracts.check(_with(generated, new), generated)
    assert breaking == []
    # Additive is allowed, but the committed documents must still be regenerated.
    assert len(drift) == 1 and "badge_colour" in drift[0]


def test_nested_changes_are_followed_through_refs(generated) -> None:
    new = _schema(generated)
    nested = [n for n, p in new["properties"].items() if "$ref" in p]
    assert nested, "ParticipantRegistered has a nested model"
    target = new["$defs"][new["properties"][nested[0]]["$ref"].split("/")[-1]]
    field = sorted(target["properties"])[0]
    del target["properties"][field]
    breaking, _ = contracts.check(_with(generated, new), generated)
    assert breaking == [f"breaking: {REGISTERED}: {nested[0]}.{field}: property removed"]
