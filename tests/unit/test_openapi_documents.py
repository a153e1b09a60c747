"""The OpenAPI documents say what the services really answer: the credential of each
operation with its 401/403, the 429 of every rate-limited route, servers and licence."""

from __future__ import annotations

import importlib
import os

import pytest

SERVICES = ("registration", "notification", "resolutions", "webhooks")


def openapi_of(service: str) -> dict:
    os.environ.setdefault("MKUTANO_ENV", "test")
    return importlib.import_module(f"services.{service}.app").create_runtime().app.openapi()


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_names_its_credential_and_guarded_ones_answer_401_and_403(
    service: str,
) -> None:
    document = openapi_of(service)
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert document["servers"] and document["info"]["license"]["identifier"] == "MIT"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "security" in operation, (method, path)
            if operation["security"]:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    audit = document["paths"]["/api/v1/admin/audit"]["get"]
    assert audit["security"] and {"401", "403"} <= set(audit["responses"])


def test_rate_limited_self_service_documents_its_429() -> None:
    paths = openapi_of("registration")["paths"]
    assert "429" in paths["/api/v1/registrations/{reference}"]["get"]["responses"]
    assert "429" in paths["/api/v1/checkins"]["post"]["responses"]
    assert "429" not in paths["/api/v1/events"]["get"]["responses"]
