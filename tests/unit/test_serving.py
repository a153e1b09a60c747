"""shared/serving.py: which proxies a service believes, and its slow-client bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.serving import HeaderTimeoutH11Protocol, ServingSettings, uvicorn_config

REPO = Path(__file__).resolve().parents[2]


async def app(scope, receive, send) -> None:  # a bare ASGI app
    pass


def _config(monkeypatch: pytest.MonkeyPatch, **env: str):
    for name in ("FORWARDED_ALLOW_IPS", "HTTP_HEADER_TIMEOUT_S", "HTTP_KEEP_ALIVE_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = uvicorn_config(app, host="127.0.0.1", port=0, graceful_shutdown_s=10)
    config.load()
    return config


def _proxy_middleware(config) -> ProxyHeadersMiddleware | None:
    layer = config.loaded_app
    while layer is not None and not isinstance(layer, ProxyHeadersMiddleware):
        layer = getattr(layer, "app", None)
    return layer


def test_no_proxy_is_trusted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch)
    assert config.proxy_headers is False
    assert _proxy_middleware(config) is None


def test_only_the_configured_proxies_are_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch, FORWARDED_ALLOW_IPS="10.244.0.0/16, 192.0.2.10")
    assert config.proxy_headers is True
    proxy = _proxy_middleware(config)
    assert proxy is not None
    trusted = proxy.trusted_hosts
    assert "10.244.3.7" in trusted and "192.0.2.10" in trusted
    assert "127.0.0.1" not in trusted and "192.0.2.11" not in trusted


def test_slow_client_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch, HTTP_HEADER_TIMEOUT_S="3", HTTP_KEEP_ALIVE_TIMEOUT_S="4")
    assert config.timeout_keep_alive == 4
    assert config.h11_max_incomplete_event_size == 16 * 1024
    assert issubclass(config.http_protocol_class, HeaderTimeoutH11Protocol)
    assert config.http_protocol_class.header_timeout_s == 3.0
    with pytest.raises(ValueError):
        ServingSettings(http_header_timeout_s=0)


def test_compose_and_k8s_set_the_trusted_proxies() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name in ("registration", "notification", "resolutions"):
        assert "FORWARDED_ALLOW_IPS" in compose["services"][name]["environment"]
    config = yaml.safe_load((REPO / "deploy" / "k8s" / "config.yaml").read_text())
    assert ServingSettings(
        forwarded_allow_ips=config["data"]["FORWARDED_ALLOW_IPS"]
    ).trusted_proxies()
