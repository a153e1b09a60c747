"""The test stack: Kafka, MongoDB, SMTP and SMS capture, and the services as processes.

Which Kafka and MongoDB, in order (see docs/embedded-servers.md):

1. the servers named by ``MKUTANO_TEST_KAFKA_BOOTSTRAP`` / ``MKUTANO_TEST_MONGO_URL``
   (kind ``"external"``);
2. testcontainers (Apache Kafka, MongoDB 8.0) when a Docker engine answers (``"container"``);
3. the embedded servers, tansu and nx-27017, on free ports (``"embedded"``).

Fault injection (``kill()`` / ``restart()``) works on the embedded servers only; on the
others it skips the test. Convention: ``kill()`` is synchronous (SIGKILL, instant);
everything that waits (``stop``, ``start``, ``restart``, ``wait_for``) is ``async``.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import functools
import inspect
import json
import os
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from deploy import embedded
from deploy.embedded import LOCALHOST, SERVICES, Process, ProcessFailed
from shared.topics import ensure_topics

T = TypeVar("T")

KAFKA_ENV = "MKUTANO_TEST_KAFKA_BOOTSTRAP"
MONGO_ENV = "MKUTANO_TEST_MONGO_URL"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
MONGO_IMAGE = "mongo:8.0"

# One token per test session: the suffix of every database name, so that a test run never
# touches a developer's `make run` data, nor another run's.
RUN_ID = secrets.token_hex(4)


# --------------------------------------------------------------------------- which servers


@functools.cache
def docker_available(timeout_s: float = 5.0) -> bool:
    """True if a Docker engine answers ``ping`` within ``timeout_s`` (any error: False)."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            import docker

            client = docker.from_env(timeout=int(timeout_s))
            try:
                answer.append(bool(client.ping()))
            finally:
                client.close()
        except Exception:  # no socket, no permission, old API, no package: no Docker
            answer.append(False)

    # A thread bounds the whole probe, including a hanging socket.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 1)
    return bool(answer and answer[0])


def kafka_kind() -> str:
    """``"external"``, ``"container"`` or ``"embedded"``: the Kafka this session uses."""
    if os.environ.get(KAFKA_ENV):
        return "external"
    return "container" if docker_available() else "embedded"


def mongo_kind() -> str:
    """``"external"``, ``"container"`` or ``"embedded"``: the MongoDB this session uses."""
    if os.environ.get(MONGO_ENV):
        return "external"
    return "container" if docker_available() else "embedded"


def _needs_embedded(kind: str, what: str) -> None:
    if kind != "embedded":
        pytest.skip(f"fault injection on {what} needs the embedded server (this run: {kind})")


# --------------------------------------------------------------------------- Kafka


class KafkaServer:
    """The session's Kafka: ``.bootstrap``, ``.kind``; ``kill()``/``restart()`` when embedded."""

    def __init__(
        self,
        kind: str,
        bootstrap: str,
        *,
        process: Process | None = None,
        container: Any = None,
    ) -> None:
        self.kind = kind
        self.bootstrap = bootstrap
        self.process = process
        self._container = container

    @property
    def enable_idempotence(self) -> bool:
        """Idempotent producers: yes on Apache Kafka, no on tansu (it rejects them)."""
        return self.kind != "embedded"

    def kill(self) -> None:
        """SIGKILL the embedded broker (its memory storage is lost)."""
        _needs_embedded(self.kind, "Kafka")
        assert self.process is not None
        self.process.kill()

    async def restart(self) -> None:
        """Start the embedded broker again on the same port and recreate the topics.

        tansu keeps everything in memory: topics, messages and committed offsets are gone.
        """
        _needs_embedded(self.kind, "Kafka")
        assert self.process is not None
        await asyncio.to_thread(self.process.restart)
        # As early as possible: a connected producer would otherwise re-create a topic
        # with tansu's default of 4 partitions.
        await ensure_topics(self.bootstrap)

    def close(self) -> None:
        """Stop the broker or container."""
        if self.process is not None:
            self.process.kill()
        if self._container is not None:
            self._container.stop()


async def start_kafka(workdir: Path) -> KafkaServer:
    """Start (or connect to) the session's Kafka and create the topics."""
    kind = kafka_kind()
    if kind == "external":
        server = KafkaServer(kind, os.environ[KAFKA_ENV])
    elif kind == "container":
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(KAFKA_IMAGE).with_kraft()
        await asyncio.to_thread(container.start)
        server = KafkaServer(kind, container.get_bootstrap_server(), container=container)
    else:
        port = embedded.free_port()
        proc = embedded.tansu(port, log_path=workdir / "kafka.log")
        await asyncio.to_thread(proc.start)
        server = KafkaServer(kind, f"{LOCALHOST}:{port}", process=proc)
    try:
        await ensure_topics(server.bootstrap)
    except BaseException:
        server.close()
        raise
    return server


# --------------------------------------------------------------------------- MongoDB


class MongoServer:
    """The session's MongoDB: ``.url``, ``.kind``; ``kill()``/``restart()`` when embedded."""

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        process: Process | None = None,
        container: Any = None,
    ) -> None:
        self.kind = kind
        self.url = url
        self.process = process
        self._container = container

    def kill(self) -> None:
        """SIGKILL the embedded server (committed data stays on disk)."""
        _needs_embedded(self.kind, "MongoDB")
        assert self.process is not None
        self.process.kill()

    async def restart(self) -> None:
        """Stop the embedded server (if running) and start it on the same port and data dir."""
        _needs_embedded(self.kind, "MongoDB")
        assert self.process is not None
        await asyncio.to_thread(self.process.restart)

    def close(self) -> None:
        """Stop the server or container."""
        if self.process is not None:
            self.process.stop()
        if self._container is not None:
            self._container.stop()


async def start_mongo(workdir: Path) -> MongoServer:
    """Start (or connect to) the session's MongoDB."""
    kind = mongo_kind()
    if kind == "external":
        return MongoServer(kind, os.environ[MONGO_ENV])
    if kind == "container":
        from testcontainers.community.mongodb import MongoDbContainer

        container = MongoDbContainer(MONGO_IMAGE)
        await asyncio.to_thread(container.start)
        return MongoServer(kind, container.get_connection_url(), container=container)
    port = embedded.free_port()
    # A real directory, not "memory": restart() must find the data again.
    proc = embedded.nx27017(port, workdir / "mongo-data", log_path=workdir / "mongodb.log")
    await asyncio.to_thread(proc.start)
    return MongoServer(kind, f"mongodb://{LOCALHOST}:{port}", process=proc)


# --------------------------------------------------------------------------- SMTP and SMS capture


class SmtpCapture:
    """The SMTP capture server: every message it receives is an ``.eml`` file in ``.directory``."""

    def __init__(self, workdir: Path) -> None:
        self.host = LOCALHOST
        self.port = embedded.free_port()
        self.directory = workdir / "mail"
        self.process = embedded.mail_capture(
            self.port, self.directory, log_path=workdir / "smtp.log"
        )

    def paths(self) -> list[Path]:
        """The stored message files, in arrival order."""
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every stored message, parsed, in arrival order."""
        parser = email.parser.BytesParser(policy=email.policy.default)
        return [cast(EmailMessage, parser.parsebytes(p.read_bytes())) for p in self.paths()]

    def clear(self) -> None:
        """Forget the messages received so far."""
        for path in self.paths():
            path.unlink(missing_ok=True)

    async def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool] = lambda m: True,
        *,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (bounds a poll; reads better than a wrapper)
    ) -> list[EmailMessage]:
        """Wait until at least ``count`` stored messages match ``predicate``; return them."""

        def matching() -> list[EmailMessage] | None:
            found = [m for m in self.messages() if predicate(m)]
            return found if len(found) >= count else None

        return await wait_until(
            matching,
            timeout=timeout,
            message=lambda: f"{count} matching email(s); have {len(self.paths())} in total",
        )

    async def stop(self) -> None:
        """Stop the server (clients then get connection refused)."""
        await asyncio.to_thread(self.process.stop)

    async def start(self) -> None:
        """Start the server again on the same port."""
        await asyncio.to_thread(self.process.start)


class SmsCapture:
    """The SMS gateway capture: ``.url`` is the gateway endpoint (``POST /sms``)."""

    def __init__(self, workdir: Path, token: str | None = None) -> None:
        self.host = LOCALHOST
        self.port = embedded.free_port()
        self.url = f"http://{LOCALHOST}:{self.port}/sms"
        self.directory = workdir / "sms"
        self.process = embedded.sms_capture(
            self.port, self.directory, log_path=workdir / "sms.log", token=token
        )

    def paths(self) -> list[Path]:
        """The stored SMS files, in arrival order."""
        return sorted(self.directory.glob("*.json"))

    def messages(self) -> list[dict[str, Any]]:
        """Every stored SMS (``id``, ``received_at``, ``to``, ``sender``, ``text``), oldest first."""
        return [json.loads(p.read_text(encoding="utf-8")) for p in self.paths()]

    def clear(self) -> None:
        """Forget the SMS received so far."""
        for path in self.paths():
            path.unlink(missing_ok=True)

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool] = lambda m: True,
        *,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (bounds a poll; reads better than a wrapper)
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` stored SMS match ``predicate``; return them."""

        def matching() -> list[dict[str, Any]] | None:
            found = [m for m in self.messages() if predicate(m)]
            return found if len(found) >= count else None

        return await wait_until(
            matching,
            timeout=timeout,
            message=lambda: f"{count} matching SMS; have {len(self.paths())} in total",
        )

    async def stop(self) -> None:
        """Stop the gateway (clients then get connection refused)."""
        await asyncio.to_thread(self.process.stop)

    async def start(self) -> None:
        """Start the gateway again on the same port."""
        await asyncio.to_thread(self.process.start)


# --------------------------------------------------------------------------- services


class ServiceHandle:
    """One running service process: ``.url`` (``http://127.0.0.1:PORT``), ``.port``, logs."""

    def __init__(self, name: str, port: int, env: dict[str, str], process: Process) -> None:
        self.name = name
        self.port = port
        self.url = f"http://{LOCALHOST}:{port}"
        self.env = env
        self.process = process

    def __repr__(self) -> str:
        return f"<ServiceHandle {self.name} {self.url} alive={self.alive}>"

    @property
    def log_path(self) -> Path:
        """The file holding the service's stdout and stderr (all runs)."""
        return self.process.log_path

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.alive

    def logs(self) -> str:
        """Everything the service wrote so far."""
        return self.process.log_text()

    async def stop(
        self,
        sig: int = signal.SIGTERM,
        timeout: float = 15.0,  # noqa: ASYNC109 (the grace period before SIGKILL)
    ) -> int | None:
        """Send ``sig``, wait up to ``timeout`` s (then SIGKILL); return the exit code."""
        return await asyncio.to_thread(self.process.stop, sig, timeout)

    def kill(self) -> int | None:
        """SIGKILL the service: a crash, no graceful shutdown."""
        return self.process.kill()

    async def restart(self) -> None:
        """Stop (SIGTERM, bounded) and start again with the same port and environment."""
        await asyncio.to_thread(self.process.stop)
        await _start_ready(self.process)


async def _start_ready(proc: Process) -> None:
    try:
        await asyncio.to_thread(proc.start)
        return
    except ProcessFailed as exc:
        failure = str(exc)
    proc.kill()
    # Outside the except block: the report shows the service log, not a chained traceback.
    pytest.fail(f"service {proc.name} did not become ready:\n{failure}", pytrace=False)


class ServiceFactory:
    """Starts services against the session's servers; ``close()`` stops every one."""

    def __init__(
        self,
        *,
        kafka: KafkaServer,
        mongo: MongoServer,
        smtp: SmtpCapture,
        sms: SmsCapture,
        admin_key: str,
        workdir: Path,
    ) -> None:
        self.kafka = kafka
        self.mongo = mongo
        self.smtp = smtp
        self.sms = sms
        self.admin_key = admin_key
        self.workdir = workdir
        self.handles: list[ServiceHandle] = []

    def env_for(
        self,
        http_ports: Mapping[str, int],
        *,
        db_suffix: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The service environment contract pointing at this session's servers."""
        return embedded.service_env(
            admin_key=self.admin_key,
            kafka_bootstrap=self.kafka.bootstrap,
            mongo_url=self.mongo.url,
            http_ports=http_ports,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            sms_gateway_url=self.sms.url,
            mkutano_env="test",
            kafka_enable_idempotence=self.kafka.enable_idempotence,
            seed_demo=False,
            log_format="json",
            db_suffix=f"_t{RUN_ID}" if db_suffix is None else db_suffix,
            # Tests post hundreds of requests from one address: limits are off unless a
            # test turns them on (tests/e2e/test_rate_limits.py does).
            overrides={
                **{f"{s.upper()}_RATE_LIMITS": "false" for s in SERVICES},
                **(overrides or {}),
            },
        )

    async def start(
        self,
        name: str,
        *,
        port: int | None = None,
        db_suffix: str | None = None,
        ready_timeout: float = 60.0,
        **env_overrides: str,
    ) -> ServiceHandle:
        """Start ``python -m services.<name>`` on a free port and wait for /health/ready.

        Databases are ``mkutano_<service>_t<RUN_ID>`` unless ``db_suffix`` is given (pass
        :func:`unique_suffix` for a service with databases of its own). ``env_overrides``
        replace any contract variable, e.g. ``SMTP_PORT="1"``.
        """
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; expected one of {SERVICES}")
        port = port or embedded.free_port()
        env = self.env_for({name: port}, db_suffix=db_suffix, overrides=env_overrides)
        index = sum(1 for h in self.handles if h.name == name)
        log_path = self.workdir / f"{name}-{index}.log"
        proc = embedded.service(name, env, log_path=log_path, ready_timeout=ready_timeout)
        handle = ServiceHandle(name, port, env, proc)
        self.handles.append(handle)
        await _start_ready(proc)
        return handle

    async def start_many(self, *specs: tuple[str, Mapping[str, Any]]) -> list[ServiceHandle]:
        """Start several services side by side: ``(name, keyword arguments of start)`` each.

        Each start waits for its own /health/ready (a consumer group join takes a second
        or more on tansu), so together they take as long as the slowest, not the sum.
        Every start finishes before a failure is raised, so none is orphaned (``close()``
        stops them all). Returns the handles in the order of ``specs``.
        """
        outcomes = await asyncio.gather(
            *(self.start(name, **dict(kwargs)) for name, kwargs in specs),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [cast(ServiceHandle, h) for h in outcomes]

    async def close(self) -> None:
        """Stop every service started here (SIGTERM, bounded, then SIGKILL)."""
        await asyncio.gather(*(asyncio.to_thread(h.process.stop) for h in self.handles))
        self.handles.clear()


class Platform:
    """The three services running once for the session, plus the servers they use."""

    def __init__(self, factory: ServiceFactory, services: dict[str, ServiceHandle]) -> None:
        self.factory = factory
        self.services = services
        self.admin_key = factory.admin_key
        self.kafka = factory.kafka
        self.mongo = factory.mongo
        self.smtp = factory.smtp
        self.sms = factory.sms

    @property
    def registration(self) -> ServiceHandle:
        """The registration service."""
        return self.services["registration"]

    @property
    def notification(self) -> ServiceHandle:
        """The notification service."""
        return self.services["notification"]

    @property
    def resolutions(self) -> ServiceHandle:
        """The resolutions service."""
        return self.services["resolutions"]

    @property
    def admin_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <admin key>``."""
        return {"Authorization": f"Bearer {self.admin_key}"}


def unique_suffix() -> str:
    """A fresh database-name suffix, for a service that must not share data."""
    return f"_t{RUN_ID}_{secrets.token_hex(3)}"


def new_admin_key() -> str:
    """A bootstrap admin key in the same shape as the dev stack's."""
    return "mk_" + secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- waiting


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (bounds a poll; reads better than a wrapper)
    interval: float = 0.1,
    message: str | Callable[[], str] = "",
) -> T:
    """Call ``predicate`` (sync or async) until it returns something truthy; return that.

    Raises AssertionError after ``timeout`` seconds, with ``message`` (a string or a
    callable giving one, evaluated at that moment) and the last exception if any.

    The first polls come quickly (20 ms, then doubling up to ``interval``): a condition
    met soon is seen soon, and a long wait still polls every ``interval``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    delay = min(interval, 0.02)
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return cast(T, result)
            last_error = None
        except Exception as exc:  # e.g. an assert, or connection refused during a restart
            last_error = exc
        if loop.time() >= deadline:
            text = message() if callable(message) else message
            detail = f"; last error: {last_error!r}" if last_error else ""
            raise AssertionError(
                f"condition not met within {timeout:.1f}s: {text or predicate!r}{detail}"
            )
        await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
        delay = min(delay * 2, interval)


# --------------------------------------------------------------------------- private stacks


class PrivateStack:
    """Services of some e2e modules' own, beside the session's ``platform``: their own
    databases, consumer groups and mail/SMS captures, started once for every module that
    uses them (a package fixture in tests/e2e/conftest.py) and stopped after the last one
    (:func:`release_after_last_user`), not left running through the rest of the session.

    ``.services`` by name (also as attributes: ``stack.registration``), ``.smtp``,
    ``.sms``, ``.admin`` (the admin key's header) and ``.extras`` (other processes, e.g.
    the GePG simulator, stopped with the services).
    """

    def __init__(
        self,
        factory: ServiceFactory,
        services: Mapping[str, ServiceHandle],
        *,
        extras: Mapping[str, Process] | None = None,
        **attributes: Any,
    ) -> None:
        self.factory = factory
        self.services = dict(services)
        self.extras = dict(extras or {})
        self.smtp = factory.smtp
        self.sms = factory.sms
        self.admin_key = factory.admin_key
        self.admin = {"Authorization": f"Bearer {factory.admin_key}"}
        self.attributes = attributes
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        services = self.__dict__.get("services", {})
        if name in services:
            return services[name]
        attributes = self.__dict__.get("attributes", {})
        if name in attributes:
            return attributes[name]
        raise AttributeError(name)

    async def close(self) -> None:
        """Stop every service and extra process (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.factory.close()
        finally:
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.extras.values()))


def used_after(request: pytest.FixtureRequest, fixture_name: str) -> bool:
    """True if a test after the requesting module (in this session's order) uses
    ``fixture_name``, directly or through another fixture."""
    items = request.session.items
    module = request.node
    last = max(
        (i for i, item in enumerate(items) if item.getparent(pytest.Module) is module),
        default=-1,
    )
    return any(fixture_name in getattr(item, "fixturenames", ()) for item in items[last + 1 :])


async def release_after_last_user(
    request: pytest.FixtureRequest, fixture_name: str, stack: PrivateStack
) -> None:
    """In a module fixture's teardown: stop ``stack`` unless a later module needs it."""
    if not used_after(request, fixture_name):
        await stack.close()


def gepg_simulator(keys: Path, port: int, callback_url: str, log: Path) -> Process:
    """The GePG simulator for tests (not started yet): quick control numbers and retries."""
    return embedded.gepg_simulator(port, keys, callback_url=callback_url, log_path=log,
                                   control_number_delay_s=0.2, retry_s=0.5)  # fmt: skip


async def start_gepg(keys: Path, port: int, callback_url: str, log: Path) -> Process:
    """Start the GePG simulator for tests; returns the running process."""
    proc = gepg_simulator(keys, port, callback_url, log)
    await asyncio.to_thread(proc.start)  # off the loop: other starts go on meanwhile
    return proc


async def consumer_group_at_end(bootstrap: str, topics: tuple[str, ...], *, prefix: str) -> str:
    """A fresh consumer group whose committed offsets are the current ends of ``topics``:
    a service started with it sees only what is published from now on, without first
    reading (and waiting for) the session's whole history."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    group = f"{prefix}-t-{secrets.token_hex(4)}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: offset for tp, offset in ends.items()})
    finally:
        await consumer.stop()
    return group
