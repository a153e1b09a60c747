"""The payments service's MongoDB: bills, reconciliations, the invoice counters. The ONLY
module here that touches MongoDB.

A bill document holds its lines, payer, payments and its outbox, so a change and its
events are one atomic, revision-checked write. ``MongoPaymentsStore`` implements
``ports.PaymentsStore``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.payments.domain import (
    Bill,
    BillLine,
    KnownPayment,
    Payment,
    Reconciliation,
    bill_id_for,
    invoice_number,
)
from shared import outbox
from shared.contracts.payments import Discrepancy
from shared.contracts.registration import EventDetails, ParticipantContact
from shared.envelope import wrap
from shared.outbox import ConcurrentUpdate, WriteSignal, ensure_outbox_indexes, new_document
from shared.timeutil import EAT, iso

SERVICE = "payments"
BILLS = "bills"
RECONCILIATIONS = "reconciliations"
COUNTERS = "counters"
# The write signal's kind of work for bills due for submission (the submitter listens).
SUBMIT = "submit"


def _t(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _bill_fields(bill: Bill) -> dict[str, Any]:
    return {
        "event": bill.event.model_dump(mode="json"),
        "event_id": bill.event_id,
        "lines": [asdict(line) for line in bill.lines],
        "registration_ids": bill.registration_ids,
        "payer": bill.payer.model_dump(mode="json") if bill.payer else None,
        "amount_tzs": bill.amount_tzs,
        "currency": bill.currency,
        "pay_option": bill.pay_option,
        "status": bill.status,
        "category": bill.category,
        "institution_code": bill.institution_code,
        "created_at": _t(bill.created_at),
        "expires_at": _t(bill.expires_at),
        "control_number": bill.control_number,
        "issued_at": _t(bill.issued_at),
        "submit_attempts": bill.submit_attempts,
        "next_submit_at": bill.next_submit_at,
        "last_error": bill.last_error,
        "payments": [
            {**asdict(p), "paid_at": _t(p.paid_at), "flags": list(p.flags)} for p in bill.payments
        ],
        "has_payments": bool(bill.payments),
        "paid_total_tzs": bill.paid_total_tzs,
        "closed_at": _t(bill.closed_at),
        "cancel_reason": bill.cancel_reason,
        "cancel_at_gepg": bill.cancel_at_gepg,
        "reminded": bill.reminded,
        "invoice_number": bill.invoice_number,
        "flags": list(bill.flags),
        "flagged": bool(bill.flags),
        "open": bill.status in ("submitting", "issued"),
    }


def _bill(doc: dict[str, Any]) -> Bill:
    return Bill(
        id=doc["_id"],
        rev=doc["rev"],
        event=EventDetails.model_validate(doc["event"]),
        lines=[BillLine(**line) for line in doc["lines"]],
        payer=ParticipantContact.model_validate(doc["payer"]) if doc.get("payer") else None,
        amount_tzs=doc["amount_tzs"],
        currency=doc.get("currency", "TZS"),
        pay_option=doc["pay_option"],
        status=doc["status"],
        category=doc.get("category"),
        institution_code=doc.get("institution_code"),
        created_at=_dt(doc["created_at"]),  # type: ignore[arg-type]
        expires_at=_dt(doc["expires_at"]),  # type: ignore[arg-type]
        control_number=doc.get("control_number"),
        issued_at=_dt(doc.get("issued_at")),
        submit_attempts=doc.get("submit_attempts", 0),
        next_submit_at=doc.get("next_submit_at"),
        last_error=doc.get("last_error"),
        payments=[
            Payment(**{**p, "paid_at": _dt(p["paid_at"]), "flags": tuple(p.get("flags") or ())})
            for p in doc.get("payments") or []
        ],
        closed_at=_dt(doc.get("closed_at")),
        cancel_reason=doc.get("cancel_reason"),
        cancel_at_gepg=doc.get("cancel_at_gepg", False),
        reminded=doc.get("reminded", False),
        invoice_number=doc.get("invoice_number"),
        flags=list(doc.get("flags") or []),
    )


def _rec_fields(rec: Reconciliation) -> dict[str, Any]:
    return {
        "day": rec.day.isoformat(),
        "request_id": rec.request_id,
        "requested_at": _t(rec.requested_at),
        "status": rec.status,
        "completed_at": _t(rec.completed_at),
        "reported": rec.reported,
        "matched": rec.matched,
        "discrepancies": [d.model_dump(mode="json") for d in rec.discrepancies],
        "attempts": rec.attempts,
    }


def _rec(doc: dict[str, Any]) -> Reconciliation:
    return Reconciliation(
        id=doc["_id"],
        rev=doc["rev"],
        day=date.fromisoformat(doc["day"]),
        request_id=doc["request_id"],
        requested_at=_dt(doc["requested_at"]),  # type: ignore[arg-type]
        status=doc["status"],
        completed_at=_dt(doc.get("completed_at")),
        reported=doc.get("reported", 0),
        matched=doc.get("matched", 0),
        discrepancies=[Discrepancy.model_validate(d) for d in doc.get("discrepancies") or []],
        attempts=doc.get("attempts", 0),
    )


class MongoPaymentsStore:
    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.db = db
        self.bills = db[BILLS]
        self.reconciliations = db[RECONCILIATIONS]
        self.counters = db[COUNTERS]

    async def ensure_indexes(self) -> None:
        await self.bills.create_index([("control_number", ASCENDING)])
        await self.bills.create_index([("status", ASCENDING), ("next_submit_at", ASCENDING)])
        await self.bills.create_index([("open", ASCENDING), ("expires_at", ASCENDING)])
        await self.bills.create_index([("registration_ids", ASCENDING)])
        await self.bills.create_index([("event_id", ASCENDING)])
        await self.reconciliations.create_index([("request_id", ASCENDING)])
        await ensure_outbox_indexes(self.bills)
        await ensure_outbox_indexes(self.reconciliations)

    # ------------------------------------------------------------------ bills

    async def insert_bill(self, bill: Bill) -> bool:
        messages = [wrap(e, SERVICE) for e in bill.take_events()]
        doc = new_document({"_id": bill.id, **_bill_fields(bill)}, messages)
        try:
            await outbox.insert(self.bills, doc, signal=self.signal)
        except DuplicateKeyError:
            return False
        bill.rev = doc["rev"]
        self.signal.written(BILLS, bill.id, work=SUBMIT)
        return True

    async def get_bill(self, bill_id: str) -> Bill | None:
        doc = await self.bills.find_one({"_id": bill_id})
        return None if doc is None else _bill(doc)

    async def save_bill(self, bill: Bill) -> bool:
        current = await self.bills.find_one({"_id": bill.id})
        if current is None or current.get("rev") != bill.rev:
            return False
        messages = [wrap(e, SERVICE) for e in bill.take_events()]
        try:
            await outbox.save(self.bills, current, _bill_fields(bill), messages, signal=self.signal)
        except ConcurrentUpdate:
            return False
        bill.rev += 1
        return True

    async def bill_by_control_number(self, control_number: str) -> Bill | None:
        doc = await self.bills.find_one({"control_number": control_number})
        return None if doc is None else _bill(doc)

    async def bills_of_registration(self, registration_id: str) -> list[Bill]:
        # By _id first: a registration's own bill id is derived from it (the hot path,
        # and the embedded stand-in does not match array elements reliably); then any
        # bill listing it among others (a group bill, on MongoDB).
        own = await self.bills.find_one({"_id": bill_id_for(registration_id)})
        docs = [own] if own else []
        for doc in await self.bills.find({"registration_ids": registration_id}).to_list():
            if own is None or doc["_id"] != own["_id"]:
                docs.append(doc)
        return [_bill(d) for d in docs]

    async def bills_to_submit(self, *, now: float, limit: int) -> list[str]:
        docs = await self.bills.find(
            {"status": "submitting", "next_submit_at": {"$lte": now}},
            {"_id": 1},
            sort=[("next_submit_at", ASCENDING)],
            limit=limit,
        ).to_list()
        return [d["_id"] for d in docs]

    async def open_bills_due(self, *, until: datetime, limit: int) -> list[str]:
        docs = await self.bills.find(
            {"open": True, "expires_at": {"$lte": iso(until)}},
            {"_id": 1},
            sort=[("expires_at", ASCENDING)],
            limit=limit,
        ).to_list()
        return [d["_id"] for d in docs]

    async def bills_to_cancel_at_gepg(self, *, limit: int) -> list[str]:
        docs = await self.bills.find({"cancel_at_gepg": True}, {"_id": 1}, limit=limit).to_list()
        return [d["_id"] for d in docs]

    async def list_bills(
        self,
        *,
        event_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        institution_code: str | None = None,
        flagged: bool | None = None,
        limit: int = 1000,
    ) -> list[Bill]:
        flt: dict[str, Any] = {}
        for name, value in (
            ("event_id", event_id),
            ("status", status),
            ("category", category),
            ("institution_code", institution_code),
            ("flagged", flagged),
        ):
            if value is not None:
                flt[name] = value
        docs = await self.bills.find(flt, sort=[("created_at", ASCENDING)], limit=limit).to_list()
        return [_bill(d) for d in docs]

    async def payments_on(self, day: date) -> list[KnownPayment]:
        docs = await self.bills.find({"has_payments": True}).to_list()
        out = []
        for doc in docs:
            bill = _bill(doc)
            for p in bill.payments:
                if p.paid_at.astimezone(EAT).date() == day:
                    out.append(KnownPayment(bill.id, bill.control_number, p))
        return out

    async def next_invoice_number(self, year: int, bill_id: str) -> int:
        counter_id = f"invoice:{year}"
        for _ in range(50):
            counter = await self.counters.find_one({"_id": counter_id})
            if counter is None:
                try:
                    await self.counters.insert_one({"_id": counter_id, "value": 0, "bill_id": None})
                except DuplicateKeyError:
                    pass
                continue
            value, holder = counter["value"], counter.get("bill_id")
            if holder == bill_id:
                return int(value)  # given before a crash kept it off the bill
            if holder is not None:
                # The last number's bill must carry it before the next is given: so a
                # crash between the counter and the bill never leaves a gap.
                await self.bills.update_one(
                    {"_id": holder, "invoice_number": None},
                    {
                        "$set": {"invoice_number": invoice_number(year, int(value))},
                        "$inc": {"rev": 1},
                    },
                )
            result = await self.counters.update_one(
                {"_id": counter_id, "value": value},
                {"$set": {"value": value + 1, "bill_id": bill_id}},
            )
            if result.matched_count == 1:
                return int(value) + 1
        raise ConcurrentUpdate(counter_id)

    # ------------------------------------------------------------------ reconciliations

    async def get_reconciliation(self, reconciliation_id: str) -> Reconciliation | None:
        doc = await self.reconciliations.find_one({"_id": reconciliation_id})
        return None if doc is None else _rec(doc)

    async def reconciliation_by_request(self, request_id: int) -> Reconciliation | None:
        doc = await self.reconciliations.find_one({"request_id": request_id})
        return None if doc is None else _rec(doc)

    async def put_reconciliation(self, rec: Reconciliation) -> bool:
        messages = [wrap(e, SERVICE) for e in rec.take_events()]
        if rec.rev == 0:
            doc = new_document({"_id": rec.id, **_rec_fields(rec)}, messages)
            try:
                await outbox.insert(self.reconciliations, doc, signal=self.signal)
            except DuplicateKeyError:
                return False
            rec.rev = 1
            return True
        current = await self.reconciliations.find_one({"_id": rec.id})
        if current is None or current.get("rev") != rec.rev:
            return False
        try:
            await outbox.save(
                self.reconciliations, current, _rec_fields(rec), messages, signal=self.signal
            )
        except ConcurrentUpdate:
            return False
        rec.rev += 1
        return True

    async def list_reconciliations(self, limit: int = 60) -> list[Reconciliation]:
        docs = await self.reconciliations.find({}, sort=[("day", -1)], limit=limit).to_list()
        return [_rec(d) for d in docs]
