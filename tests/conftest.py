"""Stack fixtures: Kafka, MongoDB, SMTP/SMS capture and the services (see tests/stack.py).

The servers are session fixtures: started once, on free ports, torn down at the end
(with every service process). Tests marked ``real_kafka`` / ``real_mongo`` are skipped,
with the reason shown in the summary, when the embedded stand-ins are in use.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.stack import (
    RUN_ID,
    KafkaServer,
    MongoServer,
    Platform,
    ServiceFactory,
    ServiceHandle,
    SmsCapture,
    SmtpCapture,
    kafka_kind,
    mongo_kind,
    new_admin_key,
    start_kafka,
    start_mongo,
)

StartService = Callable[..., Awaitable[ServiceHandle]]


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a CI timeout, ``kill``) ends the run as Ctrl-C does: the interpreter's
    exit handlers then stop every server and service this run started
    (``deploy.embedded``'s leftover guard), instead of leaving them running."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def pytest_report_header(config: pytest.Config) -> str:
    """Say which Kafka and MongoDB this run uses, at the top of the output."""
    return f"mkutano stack: kafka={kafka_kind()} mongo={mongo_kind()} run_id={RUN_ID}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the stack kinds at the end (the header is hidden under -q)."""
    terminalreporter.write_line(
        f"mkutano stack: kafka={kafka_kind()} mongo={mongo_kind()} run_id={RUN_ID}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests that need real Kafka/MongoDB behaviour when the stand-ins run."""
    # Decided here, before any fixture runs, with the same checks the fixtures use.
    skips = {
        "real_kafka": (
            kafka_kind() == "embedded",
            "needs Apache Kafka; this run uses the embedded tansu broker "
            "(set MKUTANO_TEST_KAFKA_BOOTSTRAP or provide a Docker engine)",
        ),
        "real_mongo": (
            mongo_kind() == "embedded",
            "needs MongoDB; this run uses the embedded nx-27017 server "
            "(set MKUTANO_TEST_MONGO_URL or provide a Docker engine)",
        ),
    }
    for item in items:
        for marker, (skip, reason) in skips.items():
            if skip and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's directory for server data, captured mail/SMS and every log."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
async def kafka(stack_dir: Path) -> AsyncIterator[KafkaServer]:
    """The session's Kafka, with every topic of shared.topics created."""
    server = await start_kafka(stack_dir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
async def mongo(stack_dir: Path) -> AsyncIterator[MongoServer]:
    """The session's MongoDB."""
    server = await start_mongo(stack_dir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
async def smtp(stack_dir: Path) -> AsyncIterator[SmtpCapture]:
    """The SMTP capture server (messages as .eml files)."""
    capture = SmtpCapture(stack_dir)
    await capture.start()
    try:
        yield capture
    finally:
        capture.process.stop()


@pytest.fixture(scope="session")
async def sms(stack_dir: Path) -> AsyncIterator[SmsCapture]:
    """The SMS gateway capture (messages as .json files)."""
    capture = SmsCapture(stack_dir)
    await capture.start()
    try:
        yield capture
    finally:
        capture.process.stop()


@pytest.fixture(scope="module")
async def private_smtp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SmtpCapture]:
    """An SMTP capture of one module's own, for a module that starts a notification
    service of its own (its own consumer group): the session's notification, if a
    `platform` test started it, reads the same topics and sends its own copy of every
    message to the session's capture. A module that counts messages uses this one."""
    capture = SmtpCapture(tmp_path_factory.mktemp("smtp"))
    await capture.start()
    try:
        yield capture
    finally:
        capture.process.stop()


@pytest.fixture(scope="module")
async def private_sms(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SmsCapture]:
    """An SMS capture of one module's own (see ``private_smtp``)."""
    capture = SmsCapture(tmp_path_factory.mktemp("sms"))
    await capture.start()
    try:
        yield capture
    finally:
        capture.process.stop()


@pytest.fixture(scope="session")
def admin_key() -> str:
    """The bootstrap admin API key every service of this session gets."""
    return new_admin_key()


def _factory(
    kafka: KafkaServer,
    mongo: MongoServer,
    smtp: SmtpCapture,
    sms: SmsCapture,
    admin_key: str,
    workdir: Path,
) -> ServiceFactory:
    return ServiceFactory(
        kafka=kafka, mongo=mongo, smtp=smtp, sms=sms, admin_key=admin_key, workdir=workdir
    )


@pytest.fixture
async def start_service(
    kafka: KafkaServer,
    mongo: MongoServer,
    smtp: SmtpCapture,
    sms: SmsCapture,
    admin_key: str,
    stack_dir: Path,
) -> AsyncIterator[StartService]:
    """``await start_service("registration", **env_overrides)`` → a ServiceHandle.

    Every service started through it is stopped when the test ends.
    """
    factory = _factory(kafka, mongo, smtp, sms, admin_key, stack_dir)
    try:
        yield factory.start
    finally:
        await factory.close()


@pytest.fixture(scope="module")
async def start_module_service(
    kafka: KafkaServer,
    mongo: MongoServer,
    smtp: SmtpCapture,
    sms: SmsCapture,
    admin_key: str,
    stack_dir: Path,
) -> AsyncIterator[StartService]:
    """``start_service`` for a module fixture: the services live until the module ends.

    For a service that every test of a module reads and none changes (e.g. one seeded
    with the demo data), started once instead of once a test.
    """
    factory = _factory(kafka, mongo, smtp, sms, admin_key, stack_dir / "module")
    try:
        yield factory.start
    finally:
        await factory.close()


@pytest.fixture(scope="session")
async def platform(
    kafka: KafkaServer,
    mongo: MongoServer,
    smtp: SmtpCapture,
    sms: SmsCapture,
    admin_key: str,
    stack_dir: Path,
) -> AsyncIterator[Platform]:
    """All three services, started once for the session."""
    factory = _factory(kafka, mongo, smtp, sms, admin_key, stack_dir / "platform")
    try:
        # Side by side: each consumer group join takes a second or more on tansu.
        started = await factory.start_many(
            ("registration", {}), ("notification", {}), ("resolutions", {})
        )
        yield Platform(factory, {h.name: h for h in started})
    finally:
        await factory.close()


@pytest.fixture
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves a stack process of its own running (for fixture tests)."""
    from deploy import embedded

    before = set(embedded._LIVE)
    yield
    leaked = set(embedded._LIVE) - before
    assert not leaked, f"processes left running: {leaked}"


@pytest.fixture(scope="session", autouse=True)
async def _shared_chromium() -> AsyncIterator[None]:
    """Close the session's one Chromium (tests/browser.py) at the end, if a test started it."""
    yield
    from tests.browser import close_shared_browser

    await close_shared_browser()
