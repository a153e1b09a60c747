"""Schemathesis against each service's OpenAPI: no 5xx, every answer matches the schema.

Each service runs as its own process with its own databases (fuzzed writes do not
touch other tests' data), driven by the schemathesis CLI with an admin key, so the
authenticated operations are fuzzed too. Bounded by examples and time.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.stack import unique_suffix

SERVICES = ("registration", "notification", "resolutions", "payments", "webhooks")
ROOT = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.mark.parametrize("name", SERVICES)
async def test_openapi_fuzz(name: str, start_service, admin_key: str, tmp_path: Path) -> None:
    # Rate limits off: the fuzzer is one client sending hundreds of requests on purpose.
    service = await start_service(
        name, db_suffix=unique_suffix(), **{f"{name.upper()}_RATE_LIMITS": "false"}
    )
    for attempt in range(2):
        returncode, report = await _run_schemathesis(
            service.url, admin_key, tmp_path, seed=20250211 + attempt
        )
        (tmp_path / f"schemathesis-{attempt}.txt").write_text(report)
        # CPython 3.11's AST constructor can fail its recursion check while Hypothesis
        # describes a lambda (tests/fuzz/schemathesis_cli.py catches the known place): a
        # crash of the tool, not a finding. Run once more then.
        tool_crash = INTERPRETER_BUG in report and "Failures:" not in report
        if not (returncode != 0 and tool_crash):
            break
    assert returncode == 0, report[-6000:]
    tested = re.search(r"Tested:\s+(\d+)", report)
    assert tested and int(tested.group(1)) >= 10, report[-2000:]
    assert "unhandled_error" not in service.logs()


INTERPRETER_BUG = "AST constructor recursion depth mismatch"


async def _run_schemathesis(
    url: str, admin_key: str, workdir: Path, *, seed: int
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fuzz.schemathesis_cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        os.environ.get("MKUTANO_FUZZ_EXAMPLES", "15"),
        "--max-time",
        os.environ.get("MKUTANO_FUZZ_SECONDS", "20"),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--no-color",
        "-H",
        f"Authorization: Bearer {admin_key}",
        "--exclude-path-regex",
        "^/(metrics|asyncapi|docs)",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "PYTHONPATH": str(ROOT)},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode(errors="replace")
