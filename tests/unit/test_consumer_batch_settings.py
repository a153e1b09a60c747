"""One batch setting for every service's consumer (``shared.settings.ServiceSettings``).

``<SERVICE>_CONSUMER_BATCH_MAX_RECORDS`` / ``<SERVICE>_CONSUMER_BATCH_TIMEOUT_MS`` are read
under each service's own prefix; ``BatchOptions.of`` turns them into the consumer's
batches (None for 0: one record at a time), and ``ServiceRuntime.add_consumer`` uses it,
so what the settings say is what the subscribers do.
"""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from services.notification.settings import NotificationSettings
from services.payments.settings import PaymentsSettings
from services.registration.settings import RegistrationSettings
from services.webhooks.settings import WebhooksSettings
from shared.consumer import BatchOptions
from shared.settings import ServiceSettings

BATCHING = {
    "notification": NotificationSettings,
    "payments": PaymentsSettings,
    "webhooks": WebhooksSettings,
}


def test_zero_records_means_one_by_one() -> None:
    assert BatchOptions.of(ServiceSettings(consumer_batch_max_records=0)) is None


def test_the_values_pass_through() -> None:
    settings = ServiceSettings(consumer_batch_max_records=37, consumer_batch_timeout_ms=9)
    assert BatchOptions.of(settings) == BatchOptions(max_records=37, timeout_ms=9)


def test_the_base_consumes_one_by_one_and_the_busy_services_in_batches_of_200() -> None:
    assert BatchOptions.of(ServiceSettings()) is None
    assert BatchOptions.of(RegistrationSettings()) is None
    for cls in BATCHING.values():
        assert BatchOptions.of(cls()) == BatchOptions(max_records=200, timeout_ms=50), cls


@pytest.mark.parametrize("cls", [ServiceSettings, *BATCHING.values()])
@pytest.mark.parametrize(
    ("field", "value"), [("consumer_batch_max_records", -1), ("consumer_batch_timeout_ms", 0)]
)
def test_out_of_range_values_are_refused(
    cls: type[ServiceSettings], field: str, value: int
) -> None:
    with pytest.raises(ValidationError) as raised:
        cls(**{field: value})
    assert raised.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("service", sorted(BATCHING))
def test_each_service_reads_its_own_prefix(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = service.upper()
    monkeypatch.setenv(f"{prefix}_CONSUMER_BATCH_MAX_RECORDS", "7")
    monkeypatch.setenv(f"{prefix}_CONSUMER_BATCH_TIMEOUT_MS", "3")
    # Another service's setting is not this one's.
    other = next(s for s in sorted(BATCHING) if s != service).upper()
    monkeypatch.setenv(f"{other}_CONSUMER_BATCH_MAX_RECORDS", "0")
    assert BatchOptions.of(BATCHING[service]()) == BatchOptions(max_records=7, timeout_ms=3)
    monkeypatch.setenv(f"{prefix}_CONSUMER_BATCH_MAX_RECORDS", "0")
    assert BatchOptions.of(BATCHING[service]()) is None


def runtime_of(service: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MKUTANO_ENV", "test")
    return importlib.import_module(f"services.{service}.app").create_runtime()


@pytest.mark.parametrize("service", sorted(BATCHING))
def test_the_runtime_subscribes_as_the_settings_say(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (consumer,) = runtime_of(service, monkeypatch).consumers
    assert consumer.batch == BatchOptions(max_records=200, timeout_ms=50)
    monkeypatch.setenv(f"{service.upper()}_CONSUMER_BATCH_MAX_RECORDS", "0")
    (consumer,) = runtime_of(service, monkeypatch).consumers
    assert consumer.batch is None


def test_registration_consumes_one_by_one_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    (consumer,) = runtime_of("registration", monkeypatch).consumers
    assert consumer.batch is None
    monkeypatch.setenv("REGISTRATION_CONSUMER_BATCH_MAX_RECORDS", "20")
    (consumer,) = runtime_of("registration", monkeypatch).consumers
    assert consumer.batch == BatchOptions(max_records=20, timeout_ms=50)
