"""docker-compose.yml and the Dockerfiles stay consistent with the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SERVICES = ("registration", "notification", "resolutions", "webhooks")
ONE_SHOT = {"topics"}
CONTRACT_KEYS = {
    "MKUTANO_ENV",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_ENABLE_IDEMPOTENCE",
    "KAFKA_SESSION_TIMEOUT_MS",
    "KAFKA_HEARTBEAT_INTERVAL_MS",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_FROM",
    "SMS_GATEWAY_URL",
    "MKUTANO_BOOTSTRAP_ADMIN_KEY",
    "MKUTANO_SEED_DEMO",
    "LOG_FORMAT",
    *(f"{s.upper()}_{k}" for s in SERVICES for k in ("MONGO_URL", "MONGO_DB", "HTTP_PORT")),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and "services" in data
    return data


def _builds(compose: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    """service name -> (context dir, Dockerfile path)."""
    out = {}
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (REPO / build.get("context", ".")).resolve()
        out[name] = (context, context / build.get("dockerfile", "Dockerfile"))
    return out


def test_every_component_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {name: str(svc.get("image", "")) for name, svc in services.items()}
    for name in SERVICES:
        assert name in services
    assert any(img.startswith("apache/kafka") for img in images.values()), "Apache Kafka"
    assert {"mongo-registration", "mongo-notification", "mongo-resolutions"} <= set(services)
    for name in ("mongo-registration", "mongo-notification", "mongo-resolutions"):
        assert images[name].startswith("mongo:")
    assert any("mailpit" in img for img in images.values()), "a mail catcher"
    assert "topics" in services


def test_every_long_running_container_has_a_healthcheck(compose: dict[str, Any]) -> None:
    builds = _builds(compose)
    for name, svc in compose["services"].items():
        if name in ONE_SHOT:
            continue
        check = svc.get("healthcheck")
        if check is None and name in builds:
            # A HEALTHCHECK in the image counts too.
            check = "HEALTHCHECK" in builds[name][1].read_text()
        assert check and not (isinstance(check, dict) and check.get("disable")), name


def test_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    builds = _builds(compose)
    assert set(SERVICES) <= set(builds)
    for name, (context, dockerfile) in builds.items():
        assert context.is_dir(), f"{name}: context {context}"
        assert dockerfile.is_file(), f"{name}: {dockerfile}"


def test_python_modules_run_by_compose_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        command = svc.get("command")
        if command is None:
            continue
        argv = shlex.split(command) if isinstance(command, str) else command
        if "-m" in argv:
            module = argv[argv.index("-m") + 1]
            path = REPO / module.replace(".", "/")
            assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), (
                f"{name}: python -m {module}"
            )


def test_services_get_the_env_contract_and_wait_for_their_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert isinstance(env, dict)
        missing = CONTRACT_KEYS - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert env["MKUTANO_ENV"] == "production"
        assert str(env["KAFKA_ENABLE_IDEMPOTENCE"]) == "true"
        assert "${MKUTANO_BOOTSTRAP_ADMIN_KEY:?" in env["MKUTANO_BOOTSTRAP_ADMIN_KEY"], (
            "no default admin credential in production"
        )
        deps = svc["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["topics"]["condition"] == "service_completed_successfully"
        assert deps[f"mongo-{name}"]["condition"] == "service_healthy"
        # Each service owns its database: its URL names its own MongoDB.
        assert f"mongo-{name}" in env[f"{name.upper()}_MONGO_URL"]


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^\s*(COPY|ADD)\s+(.*)$", line, re.IGNORECASE)
        if not match:
            continue
        args = [a for a in shlex.split(match.group(2)) if not a.startswith("--")]
        sources += args[:-1]  # the last argument is the destination
    return sources


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copy_sources_exist(service: str) -> None:
    dockerfile = REPO / "deploy" / f"{service}.Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    assert re.search(r"^USER (?!root)\S+", text, re.MULTILINE), "runs as a non-root user"
    assert f'CMD ["python", "-m", "services.{service}"]' in text
    assert "/health/ready" in text
    sources = _copy_sources(dockerfile)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"


def _compose_spec_check(path: Path) -> subprocess.CompletedProcess[str]:
    """The compose-spec JSON schema, as vendored by check-jsonschema (no network)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_against_the_compose_spec_schema(tmp_path: Path) -> None:
    result = _compose_spec_check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check bites: a misspelt key is refused.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("name: x\nservices:\n  web:\n    imagee: nginx\n")
    result = _compose_spec_check(broken)
    assert result.returncode != 0 and "imagee" in result.stdout + result.stderr


def test_compose_v2_is_required_and_said_so(compose: dict[str, Any]) -> None:
    # A top-level name: is Compose v2 (the v1 docker-compose refuses it); no obsolete version:.
    assert compose.get("name") == "mkutano" and "version" not in compose
    readme = (REPO / "README.md").read_text()
    assert re.search(r"Compose v2[^\n]*docker compose|docker compose[^\n]*Compose v2", readme), (
        "the README says the stack needs Docker Compose v2"
    )


def test_the_console_runs_with_its_own_database_and_every_service_trusts_its_tokens(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    console = services["console"]
    assert console["build"]["dockerfile"] == "deploy/console.Dockerfile"
    assert (REPO / "deploy" / "console.Dockerfile").is_file()
    assert services["mongo-console"]["image"].startswith("mongo:")
    assert console["depends_on"]["mongo-console"]["condition"] == "service_healthy"
    env = console["environment"]
    assert "mongo-console" in env["CONSOLE_MONGO_URL"]
    assert env["CONSOLE_PAYMENTS_URL"] == "http://payments:8004"
    # Only the console holds the signing key, and it has no default.
    assert "${CONSOLE_SIGNING_KEY:?" in env["CONSOLE_SIGNING_KEY"]
    for name in (*SERVICES, "payments"):
        theirs = services[name]["environment"]
        assert "CONSOLE_SIGNING_KEY" not in theirs, name
        assert theirs["MKUTANO_JWT_JWKS_URL"] == "http://console:8005/.well-known/jwks.json"
        # The tokens' issuer is the console's public URL, as the console signs them.
        assert theirs["MKUTANO_JWT_ISSUER"] == env["CONSOLE_PUBLIC_URL"]
        assert theirs["MKUTANO_JWT_AUDIENCE"] == "mkutano"
        assert "EdDSA" in theirs["MKUTANO_JWT_ALGORITHMS"]
