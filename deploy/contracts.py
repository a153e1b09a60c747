"""Generate and check the committed contracts under docs/contracts/.

    python -m deploy.contracts generate   # rewrite docs/contracts/ from the code
    python -m deploy.contracts check      # exit 1 on drift or on a breaking event change

What is written (deterministic: sorted keys, no timestamps, servers normalised):
- ``asyncapi/<service>.json``: each service's AsyncAPI 3.0 document (FastStream, from its
  declared subscribers and publishers), built with ``create_runtime()`` without starting it;
- ``openapi/<service>.json``: each service's OpenAPI document;
- ``events/<ce_type>.schema.json``: the JSON Schema of every event type and version.

The compatibility rule for a published event version: additive changes only. A removed
property, a changed type, or a property that became required is "breaking" (a breaking
change is a new version: a new class and a new ce_type).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "docs" / "contracts"
SERVICES = ("registration", "notification", "resolutions", "webhooks", "payments")
# Frontend services (the staff console, issue 15): an HTTP API, no stream: OpenAPI only.
FRONTENDS = ("console",)
NORMALISED_SERVER = {"host": "kafka:9092", "protocol": "kafka"}


def _runtime(service: str) -> Any:
    # The documents must not depend on the environment of whoever generates them; "test"
    # lets a service derive dev secrets instead of refusing to construct.
    os.environ["MKUTANO_ENV"] = "test"
    module = importlib.import_module(f"services.{service}.app")
    return module.create_runtime()  # constructed, never started: no connection is made


def _normalise_asyncapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Servers name the deployment's broker, not the one of the machine that generated."""
    servers = doc.get("servers") or {}
    for server in servers.values():
        server.update(NORMALISED_SERVER)
        server.pop("pathname", None)
    return doc


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_documents() -> dict[str, str]:
    """Every contract file, as relative path -> text, generated from the code now."""
    from shared.contracts import json_schemas

    files: dict[str, str] = {}
    for service in SERVICES:
        runtime = _runtime(service)
        files[f"asyncapi/{service}.json"] = _dump(_normalise_asyncapi(runtime.asyncapi_document()))
        files[f"openapi/{service}.json"] = _dump(runtime.app.openapi())
    for frontend in FRONTENDS:
        files[f"openapi/{frontend}.json"] = _dump(_runtime(frontend).app.openapi())
    for ce_type, schema in json_schemas().items():
        files[f"events/{ce_type}.schema.json"] = _dump(schema)
    return files


def committed_documents(root: Path = CONTRACTS) -> dict[str, str]:
    """The contract files on disk, as relative path -> text."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*.json"))
    }


def write(files: dict[str, str], root: Path = CONTRACTS) -> list[str]:
    """Write the generated files; remove stale ones, except event schemas (see below)."""
    changed = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    for rel in committed_documents(root):
        # A published event version is never deleted silently: removing one is breaking.
        if rel not in files and not rel.startswith("events/"):
            (root / rel).unlink()
            changed.append(rel)
    return changed


# --------------------------------------------------------------------------- compatibility


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref.split("/")[-1], {})
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> frozenset[str]:
    """The JSON types a (sub)schema allows, following $ref and anyOf/oneOf."""
    schema = _resolve(schema, root)
    if "type" in schema:
        t = schema["type"]
        return frozenset(t if isinstance(t, list) else [t])
    if "const" in schema or "enum" in schema:
        values = schema.get("enum", [schema.get("const")])
        return frozenset(type(v).__name__ for v in values)
    out: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            out |= _types(option, root)
    return frozenset(out) if out else frozenset({"any"})


def breaking_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str = "",
    *,
    old_root: dict[str, Any] | None = None,
    new_root: dict[str, Any] | None = None,
) -> list[str]:
    """Why ``new`` is not an additive change of ``old`` (empty when it is)."""
    old_root = old_root if old_root is not None else old
    new_root = new_root if new_root is not None else new
    old = _resolve(old, old_root)
    new = _resolve(new, new_root)
    problems: list[str] = []
    where = path or "(root)"
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in old_types and not old_types <= new_types | {"any"}:
        problems.append(f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}")
    old_enum, new_enum = old.get("enum"), new.get("enum")
    if old_enum is not None and new_enum is not None:
        removed = [v for v in old_enum if v not in new_enum]
        if removed:
            problems.append(f"{where}: enum values removed {removed}")
    old_props = old.get("properties", {})
    new_props = new.get("properties", {})
    for name, sub in old_props.items():
        child = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{child}: property removed")
            continue
        problems += breaking_changes(
            sub, new_props[name], child, old_root=old_root, new_root=new_root
        )
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        child = f"{path}.{name}" if path else name
        problems.append(f"{child}: newly required")
    if "items" in old and "items" in new:
        problems += breaking_changes(
            old["items"], new["items"], f"{path}[]", old_root=old_root, new_root=new_root
        )
    return problems


def check(generated: dict[str, str], committed: dict[str, str]) -> tuple[list[str], list[str]]:
    """(breaking problems, drift diffs) between generated and committed contracts."""
    breaking: list[str] = []
    for rel, text in sorted(committed.items()):
        if not rel.startswith("events/"):
            continue
        ce_type = rel.removeprefix("events/").removesuffix(".schema.json")
        if rel not in generated:
            breaking.append(f"breaking: {ce_type}: event type removed")
            continue
        for problem in breaking_changes(json.loads(text), json.loads(generated[rel])):
            breaking.append(f"breaking: {ce_type}: {problem}")
    drift: list[str] = []
    for rel in sorted(set(generated) | set(committed)):
        a, b = committed.get(rel, ""), generated.get(rel, "")
        if a != b:
            diff = difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"committed/{rel}",
                tofile=f"generated/{rel}",
                n=2,
            )
            drift.append("".join(list(diff)[:80]))
    return breaking, drift


def main(argv: list[str] | None = None) -> int:
    """``generate`` or ``check``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deploy.contracts", description=__doc__)
    parser.add_argument("command", choices=("generate", "check"))
    args = parser.parse_args(argv)
    generated = generate_documents()
    committed = committed_documents()
    breaking, drift = check(generated, committed)
    if args.command == "generate":
        for line in breaking:  # still written: the version must change, say so loudly
            print(line, file=sys.stderr)
        changed = write(generated)
        print(f"contracts: {len(changed)} file(s) written under {CONTRACTS.relative_to(REPO)}")
        return 1 if breaking else 0
    for line in breaking:
        print(line, file=sys.stderr)
    for diff in drift:
        print(diff, file=sys.stderr)
    if drift:
        print(
            f"contracts: {len(drift)} file(s) differ from the code; run `make contracts` "
            "and commit docs/contracts/",
            file=sys.stderr,
        )
    return 1 if breaking or drift else 0


if __name__ == "__main__":
    sys.exit(main())
