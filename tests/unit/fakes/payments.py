"""An in-memory ``PaymentsStore`` and ``Gateway`` (services/payments/ports.py) for unit tests.

The store keeps copies of the aggregates (never the caller's objects), a revision per
document (a stale save returns False), and the events saved, in order, in ``events``.
The gateway records what was sent and answers what the test says (``answers``: a list of
codes, the last repeated; ``down`` raises nothing but answers "unreachable").
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

from services.payments.domain import Bill, KnownPayment, Reconciliation, invoice_number
from services.payments.ports import Callback, CallbackRefused, GatewayAnswer
from shared.contracts import IntegrationEvent
from shared.timeutil import EAT


class FakePaymentsStore:
    def __init__(self) -> None:
        self.bills: dict[str, Bill] = {}
        self.recs: dict[str, Reconciliation] = {}
        self.events: list[IntegrationEvent] = []
        self.counters: dict[int, tuple[int, str | None]] = {}

    def _keep(self, agg: Any) -> Any:
        self.events.extend(agg.take_events())
        agg.rev += 1
        return copy.deepcopy(agg)

    async def insert_bill(self, bill: Bill) -> bool:
        if bill.id in self.bills:
            return False
        self.bills[bill.id] = self._keep(bill)
        return True

    async def get_bill(self, bill_id: str) -> Bill | None:
        bill = self.bills.get(bill_id)
        return copy.deepcopy(bill) if bill else None

    async def save_bill(self, bill: Bill) -> bool:
        current = self.bills.get(bill.id)
        if current is None or current.rev != bill.rev:
            return False
        self.bills[bill.id] = self._keep(bill)
        return True

    async def bill_by_control_number(self, control_number: str) -> Bill | None:
        return next(
            (copy.deepcopy(b) for b in self.bills.values() if b.control_number == control_number),
            None,
        )

    async def bills_of_registration(self, registration_id: str) -> list[Bill]:
        return [
            copy.deepcopy(b) for b in self.bills.values() if registration_id in b.registration_ids
        ]

    async def bills_to_submit(self, *, now: float, limit: int) -> list[str]:
        return [
            b.id
            for b in self.bills.values()
            if b.status == "submitting" and (b.next_submit_at or 0) <= now
        ][:limit]

    async def open_bills_due(self, *, until: datetime, limit: int) -> list[str]:
        return [
            b.id
            for b in self.bills.values()
            if b.status in ("submitting", "issued") and b.expires_at <= until
        ][:limit]

    async def bills_to_cancel_at_gepg(self, *, limit: int) -> list[str]:
        return [b.id for b in self.bills.values() if b.cancel_at_gepg][:limit]

    async def list_bills(self, **filters: Any) -> list[Bill]:
        filters.pop("limit", None)
        out = []
        for b in self.bills.values():
            if filters.get("event_id") and b.event_id != filters["event_id"]:
                continue
            if filters.get("status") and b.status != filters["status"]:
                continue
            if filters.get("category") and b.category != filters["category"]:
                continue
            if (
                filters.get("institution_code")
                and b.institution_code != filters["institution_code"]
            ):
                continue
            if filters.get("flagged") is not None and bool(b.flags) != filters["flagged"]:
                continue
            out.append(copy.deepcopy(b))
        return out

    async def payments_on(self, day: date) -> list[KnownPayment]:
        return [
            KnownPayment(b.id, b.control_number, p)
            for b in self.bills.values()
            for p in b.payments
            if p.paid_at.astimezone(EAT).date() == day
        ]

    async def next_invoice_number(self, year: int, bill_id: str) -> int:
        value, holder = self.counters.get(year, (0, None))
        if holder == bill_id:
            return value
        if holder is not None and self.bills[holder].invoice_number is None:
            self.bills[holder].invoice_number = invoice_number(year, value)
        self.counters[year] = (value + 1, bill_id)
        return value + 1

    async def get_reconciliation(self, reconciliation_id: str) -> Reconciliation | None:
        rec = self.recs.get(reconciliation_id)
        return copy.deepcopy(rec) if rec else None

    async def reconciliation_by_request(self, request_id: int) -> Reconciliation | None:
        return next(
            (copy.deepcopy(r) for r in self.recs.values() if r.request_id == request_id), None
        )

    async def put_reconciliation(self, rec: Reconciliation) -> bool:
        current = self.recs.get(rec.id)
        if (current.rev if current else 0) != rec.rev:
            return False
        self.recs[rec.id] = self._keep(rec)
        return True

    async def list_reconciliations(self, limit: int = 60) -> list[Reconciliation]:
        return sorted(self.recs.values(), key=lambda r: r.day, reverse=True)[:limit]


class FakeGateway:
    name = "fake"

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.reconciliations: list[tuple[date, int]] = []
        self.answers: list[str] = ["7101"]
        self.callbacks: dict[bytes, Callback | CallbackRefused] = {}

    def _answer(self) -> GatewayAnswer:
        code = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return GatewayAnswer(code == "7101", code, retry=code != "7101")

    async def submit_bill(self, bill: Bill) -> GatewayAnswer:
        self.submitted.append(bill.id)
        return self._answer()

    async def cancel_bill(self, bill: Bill) -> GatewayAnswer:
        self.cancelled.append(bill.id)
        return self._answer()

    async def request_reconciliation(self, day: date, request_id: int) -> GatewayAnswer:
        self.reconciliations.append((day, request_id))
        return self._answer()

    def read_callback(self, body: bytes) -> Callback:
        found = self.callbacks[body]
        if isinstance(found, CallbackRefused):
            raise found
        return found

    def ack(self, callback: Any, code: str) -> bytes:
        return f"ack:{code}".encode()
