"""deploy.run and deploy.embedded helpers that need no server."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from deploy import embedded, run


def test_admin_key_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "dev-admin-key"
    key = run.load_or_create_admin_key(path)
    assert key.startswith("mk_") and len(key) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run.load_or_create_admin_key(path) == key


def test_ports_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PORT", "19092")
    ports = run.read_ports()
    assert ports["KAFKA_PORT"] == 19092
    assert ports["MONGO_PORT"] == 27017
    assert ports["REGISTRATION_HTTP_PORT"] == 8001

    monkeypatch.setenv("SMTP_PORT", "smtp")
    with pytest.raises(SystemExit, match="SMTP_PORT"):
        run.read_ports()


def test_port_in_use_sees_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert embedded.port_in_use(port)
    assert not embedded.port_in_use(embedded.free_port())


def test_service_env_holds_the_whole_contract() -> None:
    env = embedded.service_env(
        admin_key="mk_x",
        db_suffix="_t1",
        http_ports={"notification": 9002},
        overrides={"LOG_FORMAT": "json"},
    )
    assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "false"
    assert env["KAFKA_SESSION_TIMEOUT_MS"] == "2000"
    assert env["KAFKA_HEARTBEAT_INTERVAL_MS"] == "500"
    assert env["NOTIFICATION_HTTP_PORT"] == "9002"
    assert env["REGISTRATION_HTTP_PORT"] == "8001"
    assert env["RESOLUTIONS_MONGO_DB"] == "mkutano_resolutions_t1"
    assert env["SMTP_FROM"] == "Mkutano <no-reply@mkutano.ega.go.tz>"
    assert env["SMS_GATEWAY_URL"] == "http://127.0.0.1:1026/sms"
    assert env["MKUTANO_BOOTSTRAP_ADMIN_KEY"] == "mk_x"
    assert env["LOG_FORMAT"] == "json"
    assert all(isinstance(v, str) for v in env.values())
