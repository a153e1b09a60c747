"""The committed contracts pass their standards' own tools: the official AsyncAPI parser
(@asyncapi/parser), Redocly's OpenAPI linter, and the JSON Schema 2020-12 metaschema.

`make test` installs the npm tools (`make deps-node`, from package-lock.json); run
alone without them, the two npm checks are skipped with the reason, except in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "docs" / "contracts"
NODE_TOOLS = ROOT / "node_modules"


def _needs_node_tools() -> None:
    if shutil.which("node") and (NODE_TOOLS / ".bin" / "redocly").exists():
        return
    if os.environ.get("CI"):
        pytest.fail("the npm contract tools are missing: make deps-node installs them")
    pytest.skip("the npm contract tools are not installed (make deps-node)")


def test_asyncapi_documents_pass_the_official_parser() -> None:
    _needs_node_tools()
    files = sorted(str(p) for p in (CONTRACTS / "asyncapi").glob("*.json"))
    assert files
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "tools" / "validate-asyncapi.mjs"), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    diagnostics = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    errors = [d for d in diagnostics if d["severity"] == 0]
    assert result.returncode == 0 and not errors, errors or result.stderr[-2000:]


def test_openapi_documents_pass_redocly_lint() -> None:
    _needs_node_tools()
    files = sorted(str(p) for p in (CONTRACTS / "openapi").glob("*.json"))
    assert files
    result = subprocess.run(
        [str(NODE_TOOLS / ".bin" / "redocly"), "lint", "--format=stylish", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_event_schemas_are_valid_2020_12_schemas_with_an_id() -> None:
    files = sorted((CONTRACTS / "events").glob("*.schema.json"))
    assert files
    ids = set()
    for path in files:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"urn:mkutano:event:{path.name.removesuffix('.schema.json')}"
        ids.add(schema["$id"])
    assert len(ids) == len(files)
