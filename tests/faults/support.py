"""Load and counting helpers of the fault tests (what users would see)."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import re
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from tests.helpers import participant
from tests.stack import SmtpCapture

REFERENCE = re.compile(r"MK-[A-Z0-9-]+")


@dataclass
class Delivery:
    """The emails for a set of registrations, counted by reference and by Message-ID."""

    expected: set[str]
    per_reference: Counter[str] = field(default_factory=Counter)
    per_message_id: Counter[str] = field(default_factory=Counter)

    @property
    def delivered(self) -> int:
        """References that got at least one email."""
        return sum(1 for r in self.expected if self.per_reference[r] > 0)

    @property
    def lost(self) -> int:
        return len(self.expected) - self.delivered

    @property
    def duplicated(self) -> int:
        """Copies beyond the first, over the expected references."""
        return sum(max(0, self.per_reference[r] - 1) for r in self.expected)

    @property
    def duplicate_message_ids(self) -> list[str]:
        return [m for m, n in self.per_message_id.items() if n > 1]


class MailIndex:
    """The (Subject, Message-ID) of each captured email, each file parsed once.

    Parsing only the headers, and each file once, keeps the polling cheap while the
    services under test compete for the same two cores.
    """

    def __init__(self, smtp: SmtpCapture) -> None:
        self.smtp = smtp
        self._seen: dict[str, tuple[str, str]] = {}
        self._parser = email.parser.BytesHeaderParser(policy=email.policy.default)

    def headers(self) -> list[tuple[str, str]]:
        """(subject, message id) of every stored email so far, in arrival order."""
        for path in self.smtp.paths():
            if path.name not in self._seen:
                with path.open("rb") as fh:
                    msg = self._parser.parse(fh)
                self._seen[path.name] = (str(msg["Subject"] or ""), str(msg["Message-ID"]))
        return list(self._seen.values())


def count_deliveries(mail: MailIndex | list[EmailMessage], references: set[str]) -> Delivery:
    """Count the confirmation emails of ``references`` (by subject) and their Message-IDs."""
    if isinstance(mail, MailIndex):
        pairs = mail.headers()
    else:
        pairs = [(str(m["Subject"] or ""), str(m["Message-ID"])) for m in mail]
    result = Delivery(set(references))
    for subject, message_id in pairs:
        found = REFERENCE.search(subject)
        if found and found.group(0) in references:
            result.per_reference[found.group(0)] += 1
            result.per_message_id[message_id] += 1
    return result


async def wait_all_delivered(
    smtp: SmtpCapture,
    references: set[str],
    *,
    timeout: float,  # noqa: ASYNC109 (bounds a poll)
    settle_s: float = 0.0,
) -> Delivery:
    """Wait until every reference has an email (bounded); then, optionally, wait
    ``settle_s`` more so that a late duplicate would be counted too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    index = MailIndex(smtp)
    while True:
        delivery = count_deliveries(index, references)
        if delivery.lost == 0 or loop.time() > deadline:
            break
        await asyncio.sleep(0.2)
    if settle_s and delivery.lost == 0:
        await asyncio.sleep(settle_s)  # nothing to wait *for*: watching for extra copies
        delivery = count_deliveries(index, references)
    return delivery


async def register_many(
    base_url: str,
    event_id: str,
    count: int,
    *,
    concurrency: int = 20,
    language: str = "en",
    retry_until_s: float = 0.0,
) -> list[dict[str, Any]]:
    """POST ``count`` registrations (each with an Idempotency-Key); returns the answers.

    With ``retry_until_s`` a request that failed (connection error, 5xx) is retried with
    the same key until that many seconds passed, as a well-behaved client would.
    Each answer is ``{"status": int | None, "body": dict, "error": str | None, "history":
    [every answer, e.g. "503 service_unavailable"]}``.
    """
    sem = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def one(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        body = participant(language=language, full_name=f"Fault Test Participant {i}")
        key = f"fault-{event_id}-{i}"
        deadline = loop.time() + retry_until_s
        history: list[str] = []  # every answer this client got, in order
        while True:
            async with sem:
                try:
                    r = await client.post(
                        f"/api/v1/events/{event_id}/registrations",
                        json=body,
                        headers={"Idempotency-Key": key},
                    )
                    answer: dict[str, Any] = {
                        "status": r.status_code,
                        "body": r.json() if r.content else {},
                        "error": None,
                    }
                except httpx.HTTPError as exc:
                    answer = {"status": None, "body": {}, "error": type(exc).__name__}
            code = answer["body"].get("error", {}).get("code") if answer["body"] else None
            history.append(f"{answer['status'] or answer['error']}" + (f" {code}" if code else ""))
            answer["history"] = history
            retryable = (
                answer["status"] is None
                or answer["status"] >= 500
                or (
                    answer["status"] == 409
                    and answer["body"].get("error", {}).get("code") == "request_in_progress"
                )
            )
            if not retryable or loop.time() >= deadline:
                return answer
            await asyncio.sleep(0.3)

    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        return await asyncio.gather(*(one(client, i) for i in range(count)))


def references_of(answers: list[dict[str, Any]]) -> set[str]:
    """The references of the 201 answers."""
    return {a["body"]["reference"] for a in answers if a["status"] == 201}


async def ready_status(url: str) -> int | None:
    """The HTTP status of ``GET /health/ready`` (None if the process does not answer)."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=3) as client:
            return (await client.get("/health/ready")).status_code
    except httpx.HTTPError:
        return None
