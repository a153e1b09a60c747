"""The architecture of docs/architecture.md, enforced: a build fails when a module
reaches MongoDB outside a store, when a domain module imports a framework, or when one
service imports another.

Two checks: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) on the
import graph, and a reading of every module's code for MongoDB collection calls, which
need no import (``ctx.store.registrations.find(...)``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Collection methods of PyMongo; a call of one of these outside a store is a leak.
MONGO_METHODS = {
    "find",
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "aggregate",
    "bulk_write",
    "count_documents",
    "estimated_document_count",
    "distinct",
    "create_index",
    "watch",
}

# The platform's own stores in shared/: each owns one kind of record every service has.
SHARED_STORES = {
    "outbox.py",  # the outbox fields of aggregate documents, and the relay
    "consumer.py",  # processed_events: the consumers' idempotency keys
    "apikeys.py",  # api_keys
    "audit.py",  # audit_log
    "ratelimit.py",  # rate_limits
}


def mongo_calls(path: Path) -> list[str]:
    """``file:line method`` for every call of a collection method in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MONGO_METHODS
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()")
    return found


def test_only_a_store_touches_mongodb() -> None:
    leaks: list[str] = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        if path.name != "store.py":
            leaks += mongo_calls(path)
    for path in sorted((ROOT / "shared").rglob("*.py")):
        if path.name not in SHARED_STORES:
            leaks += mongo_calls(path)
    assert not leaks, "MongoDB reached outside a store:\n" + "\n".join(leaks)


def test_the_check_sees_a_leak() -> None:
    """The reader above finds a collection call where one is written (it can fail)."""
    sample = ROOT / "services" / "registration" / "store.py"
    assert mongo_calls(sample), "the store itself must show collection calls"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
