"""Fault-injection fixtures: a private stack per test, and the figures for RELIABILITY.md.

Every fault test kills or restarts servers, so it gets servers of its own (Kafka,
MongoDB, SMTP and SMS capture on free ports, plus its own ServiceFactory): the
session's ``kafka``/``mongo`` used by ``platform`` are never touched.

Each test reports what it injected and what users saw through the ``reliability``
fixture; at the end of the session the figures are rendered to ``docs/RELIABILITY.md``
(from the run, never by hand) — but only when every scenario of the suite ran in this
session. A partial run (one file, ``-k``, ``::name``, ``-x`` stopping early) writes its
report to ``.data/RELIABILITY.partial.md`` instead and says so in the terminal summary,
so the committed report is always a whole run's.
"""

from __future__ import annotations

import ast
import asyncio
import os
import platform as pyplatform
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deploy.embedded import REPO_ROOT
from tests.stack import (
    KafkaServer,
    MongoServer,
    ServiceFactory,
    SmsCapture,
    SmtpCapture,
    kafka_kind,
    mongo_kind,
    new_admin_key,
    start_kafka,
    start_mongo,
)

RELIABILITY_MD = REPO_ROOT / "docs" / "RELIABILITY.md"
# Where a partial run's report goes (.data/ is not committed).
PARTIAL_REPORT = REPO_ROOT / ".data" / "RELIABILITY.partial.md"
FAULTS_DIR = Path(__file__).resolve().parent

# Fast, bounded retries for every service a fault test starts (production defaults are
# slower; the mechanisms are the same).
FAST_ENV: dict[str, str] = {
    "NOTIFICATION_RETRY_BASE_S": "0.2",
    "NOTIFICATION_RETRY_MAX_S": "1.0",
    "NOTIFICATION_SEND_LEASE_S": "5",
    "NOTIFICATION_DISPATCHER_POLL_S": "0.1",
    "NOTIFICATION_CONSUMER_RETRY_BASE_S": "0.05",
    "NOTIFICATION_CONSUMER_MAX_ATTEMPTS": "3",
    "REGISTRATION_OUTBOX_POLL_INTERVAL_S": "0.1",
    "REGISTRATION_SHUTDOWN_GRACE_S": "6",
    "NOTIFICATION_SHUTDOWN_GRACE_S": "6",
    "RESOLUTIONS_SHUTDOWN_GRACE_S": "6",
    "SMTP_TIMEOUT_S": "3",
    # Load from one test client on a private stack: the per-address limits would answer 429.
    "REGISTRATION_RATE_LIMITS": "false",
    # Email only: the SMS channel has its own tests, and halves the senders' work here.
    "SMS_GATEWAY_URL": "",
}


@dataclass
class FaultStack:
    """Servers of one fault test and the factory that starts services against them."""

    kafka: KafkaServer
    mongo: MongoServer
    smtp: SmtpCapture
    sms: SmsCapture
    factory: ServiceFactory
    workdir: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.factory.admin_key}"}

    async def start(self, name: str, **env: str) -> Any:
        """Start a service with the fast retry settings (``env`` overrides them)."""
        return await self.factory.start(name, **{**FAST_ENV, **env})


@pytest.fixture
async def fault_stack(tmp_path: Path) -> AsyncIterator[FaultStack]:
    """Kafka, MongoDB, SMTP and SMS capture of this test alone; everything stopped after.

    The four start side by side (each waits for its own readiness); whatever started is
    stopped afterwards, also when another failed to start.
    """
    smtp = SmtpCapture(tmp_path)
    sms = SmsCapture(tmp_path)
    outcomes = await asyncio.gather(
        start_kafka(tmp_path),
        start_mongo(tmp_path),
        smtp.start(),
        sms.start(),
        return_exceptions=True,
    )
    kafka = outcomes[0] if isinstance(outcomes[0], KafkaServer) else None
    mongo = outcomes[1] if isinstance(outcomes[1], MongoServer) else None
    factory: ServiceFactory | None = None
    try:
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        assert kafka is not None and mongo is not None
        factory = ServiceFactory(
            kafka=kafka,
            mongo=mongo,
            smtp=smtp,
            sms=sms,
            admin_key=new_admin_key(),
            workdir=tmp_path / "services",
        )
        yield FaultStack(kafka, mongo, smtp, sms, factory, tmp_path)
    finally:
        if factory is not None:
            await factory.close()
        for capture in (smtp, sms):
            capture.process.stop()
        if mongo is not None:
            mongo.close()
        if kafka is not None:
            kafka.close()


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What one fault test injected and what users saw."""

    scenario: str
    issue: int = 0  # the scenario's number in the issue (the table's order)
    fault: str = ""
    messages: int = 0
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)
    outcome: str = "not run"
    duration_s: float = 0.0


_FIGURES: dict[str, Figures] = {}


class Recorder:
    """``reliability.record(...)`` in a test; the last call per field wins."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def record(self, **values: Any) -> None:
        for key, value in values.items():
            if key == "note":
                self.figures.notes.append(str(value))
            elif not hasattr(self.figures, key):
                raise AttributeError(f"unknown figure {key!r}")
            else:
                setattr(self.figures, key, value)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Recorder:
    """Record this test's figures for docs/RELIABILITY.md."""
    doc = (request.function.__doc__ or request.node.name).strip().splitlines()[0]
    figures = _FIGURES.setdefault(request.node.nodeid, Figures(scenario=doc))
    return Recorder(figures)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    figures = _FIGURES.get(item.nodeid)
    if figures is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        figures.outcome = "skipped" if report.skipped else report.outcome
        figures.duration_s += report.duration
    elif report.when == "setup":
        figures.duration_s += report.duration


def fault_scenarios(rootdir: Path, directory: Path = FAULTS_DIR) -> set[str]:
    """The suite's scenarios, whatever this session selected: the node ids (relative to
    ``rootdir``) of the test functions in ``directory``'s test files that take the
    ``reliability`` fixture, read from their source."""
    scenarios: set[str] = set()
    for path in sorted(directory.glob("test_*.py")):
        module = path.resolve().relative_to(rootdir.resolve()).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
        scopes += [
            (f"{node.name}::", node.body)
            for node in tree.body
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test")
        ]
        for prefix, body in scopes:
            for node in body:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                args = node.args
                names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
                if node.name.startswith("test") and "reliability" in names:
                    scenarios.add(f"{module}::{prefix}{node.name}")
    return scenarios


def whole_suite_ran(scenarios: set[str], outcomes: Mapping[str, str]) -> bool:
    """Whether every scenario ran this session (passed, failed or skipped: its outcome is
    the report's to show); ``outcomes`` by node id, "not run" for one set up but never
    reported. A parametrized scenario counts once any of its cases ran."""
    ran = {
        node_id.split("[", 1)[0] for node_id, outcome in outcomes.items() if outcome != "not run"
    }
    return bool(scenarios) and scenarios <= ran


def report_path(scenarios: set[str], outcomes: Mapping[str, str]) -> Path:
    """docs/RELIABILITY.md for a whole run of the suite; the partial report otherwise."""
    return RELIABILITY_MD if whole_suite_ran(scenarios, outcomes) else PARTIAL_REPORT


# What the session's report became, for the terminal summary.
_WRITTEN: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def reliability_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the session: render the collected figures to docs/RELIABILITY.md when every
    scenario ran, else to the partial report (the committed file is left as it is)."""
    started = time.monotonic()
    yield
    if _FIGURES and os.environ.get("MKUTANO_RELIABILITY_REPORT", "1") != "0":
        rows = sorted(_FIGURES.values(), key=lambda f: f.issue)
        scenarios = fault_scenarios(request.config.rootpath)
        outcomes = {node_id: f.outcome for node_id, f in _FIGURES.items()}
        path = report_path(scenarios, outcomes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(rows, time.monotonic() - started))
        if path == RELIABILITY_MD:
            _WRITTEN.append(f"fault suite: all {len(scenarios)} scenarios ran; wrote {path}")
        else:
            ran = sum(1 for f in _FIGURES.values() if f.outcome != "not run")
            _WRITTEN.append(
                f"fault suite: {ran} of {len(scenarios)} scenarios ran, so "
                f"{RELIABILITY_MD.relative_to(REPO_ROOT)} was left as it is; this partial "
                f"report went to {path}"
            )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _WRITTEN:
        terminalreporter.write_line(line)


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(os.cpu_count())


def render(rows: list[Figures], wall_s: float) -> str:
    """The markdown report: a table of figures, then each scenario's notes."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability: fault-injection results",
        "",
        "Generated by `tests/faults/` (`make test`, or "
        "`.venv/bin/python -m pytest tests/faults`) — do not edit by hand.",
        "",
        f"- Run: {when}; {len(rows)} scenario(s), {wall_s:.0f} s wall clock",
        f"- Machine: {_nproc()} CPU(s), {pyplatform.system()} {pyplatform.machine()}, "
        f"Python {sys.version.split()[0]}",
        f"- Stack: kafka={kafka_kind()}, mongo={mongo_kind()} (each scenario on servers "
        "of its own)",
        "",
        "| # | scenario | fault injected | messages | accepted | delivered | lost | "
        "duplicated | recovery | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in rows:
        recovery = "—" if f.recovery_s is None else f"{f.recovery_s:.1f} s"
        lines.append(
            f"| {f.issue} | {f.scenario} | {f.fault} | {f.messages} | {f.accepted} | {f.delivered} "
            f"| {f.lost} | {f.duplicated} | {recovery} | {f.outcome} ({f.duration_s:.0f} s) |"
        )
    lines += [
        "",
        "Counting: an email is identified by its `Message-ID` "
        "(`<notification_id@mkutano.ega.go.tz>`, stable per notification, so a re-sent copy "
        "carries the same id) and a registration by the reference in the subject. "
        "*lost* = accepted but never delivered; *duplicated* = delivered copies beyond the "
        "first. *recovery* = from the end of the fault to the last delivery.",
        "",
        "## Notes per scenario",
        "",
    ]
    for f in rows:
        lines.append(f"{f.issue}. **{f.scenario}**")
        for note in f.notes:
            lines.append(f"   - {note}")
        if not f.notes:
            lines.append("   - (no notes)")
    return "\n".join(lines + OPERATING.splitlines()) + "\n"


OPERATING = """
## What the platform guarantees, and how to operate it

- **Accepted means kept.** A registration answered 201 is in MongoDB with its events in
  the same document (the outbox); the relay publishes them when Kafka is reachable, in
  order per registration. While Kafka or MongoDB is away, `/health/ready` answers 503
  (liveness stays 200, so an orchestrator does not restart a healthy process), requests
  that need MongoDB answer `503 service_unavailable` with `Retry-After`, and every
  service recovers by itself when the dependency returns.
- **At-least-once, applied once.** Consumers commit an offset only after the event was
  applied or dead-lettered, and skip a `ce_id` they applied before; an older event for
  a registration (a redelivery or a replay) does not roll the notification projection
  back or send an out-of-date email.
- **Email is at-least-once at the SMTP boundary.** A crash between the SMTP server
  accepting a message and the sender marking it sent re-sends it after the claim's lease
  (`NOTIFICATION_SEND_LEASE_S`, 60 s by default). The copy carries the same `Message-ID`
  (`<notification_id@mkutano.ega.go.tz>`), so mail systems can recognise it; a MongoDB
  outage at that moment no longer causes a re-send (the outcome is retried until written).
- **Retries are bounded.** A failing handler is retried `<SERVICE>_CONSUMER_MAX_ATTEMPTS`
  times (default 5) with backoff from `<SERVICE>_CONSUMER_RETRY_BASE_S`, then goes to the
  dead-letter topic `<service>.dlq` with `dlq_reason`, `dlq_error`, `dlq_attempts`,
  `dlq_group` and the original topic/partition/offset in its headers. An invalid payload
  or an unknown type goes there at once. Email sending retries with exponential backoff
  and jitter (`NOTIFICATION_RETRY_BASE_S`, `NOTIFICATION_RETRY_MAX_S`,
  `NOTIFICATION_MAX_SEND_ATTEMPTS`).
- **SIGTERM** stops taking requests, finishes those in flight, stops the consumers (each
  applied record is committed), flushes the outbox and exits within
  `<SERVICE>_SHUTDOWN_GRACE_S` plus a few seconds.

### Replaying a dead-letter topic after a fix

```
python -m deploy.dlq replay --group notification --dry-run   # list what would go back
python -m deploy.dlq replay --group notification             # republish, with progress
python -m deploy.dlq replay --group notification --since 42  # from DLQ offset 42
```

Each record goes back to its `dlq_original_topic` with its key, value and headers minus
`dlq_*`; the CloudEvent keeps its `ce_id`, so groups that applied it already skip it.
Progress is committed in the group `mkutano-dlq-replay.<service>`, so a second run does
not replay the same records again (`--since` overrides). The broker is
`$KAFKA_BOOTSTRAP_SERVERS` (or `--bootstrap`).

### Known limits (found by these tests)

- On the embedded tansu broker a restart loses topics and committed offsets; the test
  fixture recreates the topics and consumers rejoin and restart from the beginning of
  the new, empty topics. Apache Kafka keeps both, so this does not arise in production.
- Registration (intermittent, reported to its owner): an `Idempotency-Key` claimed just
  before MongoDB went away can stay "in progress" (409 `request_in_progress`) for all the
  client's retries, and a registration can be stored whose client never saw its 201 — a
  crash between claiming the key and completing or releasing it. When a run hits it,
  scenario 6's notes say so; it does not lose an acknowledged registration.
"""
