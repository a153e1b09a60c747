"""REGISTRATION_PUBLIC_URL: the base of the self-service links in participants' emails."""

from __future__ import annotations

import pytest

from services.registration.app import public_url
from services.registration.settings import RegistrationSettings
from shared.settings import CoreSettings


def settings(env: str, **values: object) -> RegistrationSettings:
    return RegistrationSettings(core=CoreSettings(env=env), **values)


def test_dev_and_test_default_to_the_local_port() -> None:
    assert public_url(settings("dev", http_port=8101)) == "http://127.0.0.1:8101"
    assert public_url(settings("test")) == "http://127.0.0.1:8001"


def test_production_must_set_it() -> None:
    with pytest.raises(RuntimeError, match="REGISTRATION_PUBLIC_URL"):
        public_url(settings("production"))
    url = "https://mkutano.ega.go.tz/"
    assert public_url(settings("production", public_url=url)) == "https://mkutano.ega.go.tz"


@pytest.mark.parametrize(
    "url", ["mkutano.ega.go.tz", "ftp://mkutano.ega.go.tz", "https://x.tz/?a=1", "https://x/#f"]
)
def test_it_is_an_http_url_without_query(url: str) -> None:
    with pytest.raises(RuntimeError, match="REGISTRATION_PUBLIC_URL"):
        public_url(settings("dev", public_url=url))
