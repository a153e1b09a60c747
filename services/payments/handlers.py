"""Payments use cases: load → ask the aggregate → save (over the ``Context``).

Callbacks from GePG are applied before they are acknowledged, and each is applied once:
a bill's control number once, a payment once per transaction id / payment reference. So
when the service dies between applying and acking, GePG's retry finds the change made
and gets its 7101 without a second effect.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from services.payments import documents
from services.payments.domain import (
    Bill,
    BillLine,
    Reconciliation,
    bill_id_for,
    invoice_number,
    request_id_for,
    submission_backoff_s,
)
from services.payments.ports import (
    Callback,
    CallbackRefused,
    ControlNumberCallback,
    Gateway,
    PaymentCallback,
    PaymentsStore,
    ReconciliationCallback,
)
from shared.errors import DomainError
from shared.logging import get_logger
from shared.timeutil import EAT, utcnow

log = get_logger("payments")
T = TypeVar("T")

SUCCESS = "7101"
BILL_NOT_FOUND = "7204"
DUPLICATE_BILL = "7226"
ALREADY_CANCELLED = "7283"


@dataclass
class Context:
    store: PaymentsStore
    gateway: Gateway
    settings: Any  # PaymentsSettings
    clock: Callable[[], datetime] = utcnow
    # Told of each completed reconciliation (the /metrics gauges) and each payment.
    on_reconciled: Callable[[Reconciliation], None] | None = None
    on_payment: Callable[[Bill, list[str]], None] | None = None
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    known: dict[str, Any] = field(default_factory=dict)


async def _change(
    ctx: Context, bill_id: str, decide: Callable[[Bill], T]
) -> tuple[Bill | None, T | None]:
    """Read-decide-save of one bill, again on a concurrent change (bounded)."""
    for _ in range(20):
        bill = await ctx.store.get_bill(bill_id)
        if bill is None:
            return None, None
        result = decide(bill)
        if not result and not bill.events:
            return bill, result
        if await ctx.store.save_bill(bill):
            return bill, result
        await ctx.sleep(random.uniform(0, 0.02))
    raise DomainError("concurrent_change", "The bill kept changing; try again")


# --------------------------------------------------------------------------- bills


async def open_bill_for_registration(ctx: Context, notice: Any) -> Bill | None:
    """A registration in a paid category (``pending_payment`` with an amount due): one
    bill for it, whatever the number of deliveries of the notice."""
    amount = getattr(notice, "amount_due_tzs", None) or 0
    if notice.status != "pending_payment" or amount <= 0:
        return None
    bill_id = bill_id_for(notice.registration_id)
    existing = await ctx.store.get_bill(bill_id)
    if existing is not None:
        return existing
    now = ctx.clock()
    lifetime = timedelta(days=ctx.settings.bill_lifetime_days)
    due_by = getattr(notice, "payment_due_by", None) or min(now + lifetime, notice.event.starts_at)
    category = getattr(notice, "category", None) or getattr(notice, "cadre", None)
    bill = Bill.open(
        bill_id=bill_id,
        event=notice.event,
        lines=[
            BillLine(
                registration_id=notice.registration_id,
                reference=notice.reference,
                amount_tzs=int(amount),
                category=category,
                full_name=notice.participant.full_name,
            )
        ],
        payer=notice.participant,
        pay_option=ctx.settings.pay_option,
        expires_at=due_by,
        now=now,
        category=category,
        institution_code=getattr(notice, "institution_code", None),
    )
    if not await ctx.store.insert_bill(bill):
        return await ctx.store.get_bill(bill_id)
    log.info("bill_created", bill_id=bill_id, amount_tzs=bill.amount_tzs)
    return bill


async def submit_bill(ctx: Context, bill_id: str) -> str | None:
    """Submit one due bill to GePG; on no answer or an error, back off and retry later.
    Returns GePG's code (None if the bill was not due)."""
    bill = await ctx.store.get_bill(bill_id)
    now = ctx.clock().timestamp()
    if bill is None or bill.status != "submitting" or (bill.next_submit_at or 0) > now:
        return None
    answer = await ctx.gateway.submit_bill(bill)
    s = ctx.settings
    if answer.accepted or answer.code == DUPLICATE_BILL:
        bill.submission_accepted(recheck_at=now + s.control_number_timeout_s)
    else:
        wait = submission_backoff_s(
            bill.submit_attempts + 1, s.submit_retry_base_s, s.submit_retry_max_s
        )
        bill.submission_failed(error=answer.code, retry_at=now + wait * random.uniform(0.8, 1.2))
        log.warning(
            "bill_submission_failed",
            bill_id=bill.id,
            code=answer.code,
            attempts=bill.submit_attempts,
        )
    await ctx.store.save_bill(bill)  # a callback that came meanwhile wins: nothing lost
    return answer.code


async def submit_due_bills(ctx: Context, *, limit: int = 50) -> int:
    ids = await ctx.store.bills_to_submit(now=ctx.clock().timestamp(), limit=limit)
    sem = asyncio.Semaphore(ctx.settings.submit_concurrency)

    async def one(bill_id: str) -> None:
        async with sem:
            await submit_bill(ctx, bill_id)

    await asyncio.gather(*(one(i) for i in ids))
    return len(ids)


async def expire_and_remind(ctx: Context, *, limit: int = 200) -> int:
    """Expire the open bills past their expiry; remind the payers of those close to it."""
    now = ctx.clock()
    before = timedelta(hours=ctx.settings.reminder_before_hours)
    changed = 0
    for bill_id in await ctx.store.open_bills_due(until=now + before, limit=limit):
        bill, done = await _change(ctx, bill_id, lambda b: b.expire(now) or b.remind(now, before))
        changed += bool(done)
    return changed


async def cancel_bills_of_registration(ctx: Context, registration_id: str, reason: str) -> int:
    """A registration cancelled before paying: its open bill is cancelled (GePG told)."""
    now = ctx.clock()
    cancelled = 0
    for bill in await ctx.store.bills_of_registration(registration_id):
        if len(bill.lines) != 1:
            continue  # a group bill stays: the institution pays for the others
        _, done = await _change(ctx, bill.id, lambda b: b.cancel(now, reason))
        cancelled += bool(done)
    return cancelled


async def cancel_at_gepg(ctx: Context, *, limit: int = 50) -> int:
    """Tell GePG of the cancelled bills (retried until it has heard)."""
    done = 0
    for bill_id in await ctx.store.bills_to_cancel_at_gepg(limit=limit):
        bill = await ctx.store.get_bill(bill_id)
        if bill is None or not bill.cancel_at_gepg:
            continue
        answer = await ctx.gateway.cancel_bill(bill)
        if answer.accepted or answer.code in (ALREADY_CANCELLED, BILL_NOT_FOUND):
            bill.cancelled_at_gepg()
            done += await ctx.store.save_bill(bill)
    return done


async def erase_personal_data(ctx: Context, registration_id: str) -> int:
    erased = 0
    for bill in await ctx.store.bills_of_registration(registration_id):
        _, changed = await _change(ctx, bill.id, lambda b: b.erase_personal_data(registration_id))
        erased += bool(changed)
    return erased


async def erase_institution_contact(ctx: Context, institution_code: str, email: str) -> int:
    """``InstitutionContactErased``: the contact person's data leaves the institution's
    group bills (idempotent: a re-delivery finds nothing left to erase)."""
    erased = 0
    for bill in await ctx.store.list_bills(institution_code=institution_code, limit=100_000):
        if not bill.is_group:
            continue
        _, changed = await _change(
            ctx, bill.id, lambda b: b.erase_institution_contact(institution_code, email)
        )
        erased += bool(changed)
    log.info("institution_contact_erased", institution_code=institution_code, bills=erased)
    return erased


# --------------------------------------------------------------------------- callbacks


async def receive_callback(ctx: Context, body: bytes) -> bytes:
    """A message GePG posted: verified, applied (once), and answered with a signed ack."""
    try:
        callback = ctx.gateway.read_callback(body)
    except CallbackRefused as exc:
        # A security event: what was refused and why; never the body (personal data).
        log.warning(
            "gepg_callback_refused",
            security=True,
            code=exc.code,
            reason=exc.reason,
            kind=exc.kind,
            size=len(body),
        )
        return ctx.gateway.ack(exc.kind, exc.code)
    code = await apply_callback(ctx, callback)
    return ctx.gateway.ack(callback, code)


async def apply_callback(ctx: Context, callback: Callback) -> str:
    if isinstance(callback, ControlNumberCallback):
        return await apply_control_number(ctx, callback)
    if isinstance(callback, PaymentCallback):
        return await apply_payment(ctx, callback)
    return await apply_reconciliation(ctx, callback)


async def apply_control_number(ctx: Context, cb: ControlNumberCallback) -> str:
    now = ctx.clock()
    if cb.control_number:
        bill, issued = await _change(
            ctx, cb.bill_id, lambda b: b.issue_control_number(cb.control_number, now)
        )  # type: ignore[arg-type]
        if bill is None:
            return BILL_NOT_FOUND
        if issued:
            log.info("control_number_issued", bill_id=bill.id)
        return SUCCESS
    # GePG refused the bill (GF with a code): keep trying with backoff, and say why.
    s = ctx.settings

    def failed(b: Bill) -> bool:
        if b.status != "submitting":
            return False
        wait = submission_backoff_s(
            b.submit_attempts + 1, s.submit_retry_base_s, s.submit_retry_max_s
        )
        b.submission_failed(error=cb.code, retry_at=now.timestamp() + wait)
        return True

    bill, _ = await _change(ctx, cb.bill_id, failed)
    if bill is None:
        return BILL_NOT_FOUND
    log.warning("control_number_refused", bill_id=bill.id, code=cb.code)
    return SUCCESS


async def _find_bill(ctx: Context, bill_id: str, control_number: str) -> Bill | None:
    bill = await ctx.store.get_bill(bill_id) if bill_id else None
    if bill is None and control_number:
        bill = await ctx.store.bill_by_control_number(control_number)
    return bill


async def apply_payment(ctx: Context, cb: PaymentCallback, *, source: str = "callback") -> str:
    reported = cb.payment
    found = await _find_bill(ctx, reported.bill_id, reported.control_number)
    if found is None:
        log.warning("payment_for_unknown_bill", transaction_id=reported.transaction_id)
        return BILL_NOT_FOUND
    now = ctx.clock()
    bill, payment = await _change(
        ctx,
        found.id,
        lambda b: b.receive_payment(reported, now, source=source),  # type: ignore[arg-type]
    )
    if bill is not None and payment is not None:
        log.info(
            "payment_recorded",
            bill_id=bill.id,
            amount_tzs=payment.amount_tzs,
            status=bill.status,
            flags=list(payment.flags),
            source=source,
        )
        if ctx.on_payment:
            ctx.on_payment(bill, list(payment.flags))
    elif bill is not None:
        log.info(
            "payment_already_recorded", bill_id=bill.id, transaction_id=reported.transaction_id
        )
    return SUCCESS


async def apply_reconciliation(ctx: Context, cb: ReconciliationCallback) -> str:
    rec = await ctx.store.reconciliation_by_request(cb.request_id)
    if rec is None:
        log.warning("reconciliation_for_unknown_request", request_id=cb.request_id)
        return SUCCESS
    if rec.status == "completed":
        return SUCCESS  # a re-sent report: compared once
    known = await ctx.store.payments_on(rec.day)
    unknown = rec.complete(cb.payments, known, ctx.clock())
    # GePG has these and we did not: record each (once; a re-run finds them known).
    for row in unknown:
        await apply_payment(ctx, PaymentCallback(row), source="reconciliation")
    await ctx.store.put_reconciliation(rec)
    log.info(
        "reconciliation_completed",
        day=rec.day.isoformat(),
        reported=rec.reported,
        matched=rec.matched,
        discrepancies=len(rec.discrepancies),
    )
    if ctx.on_reconciled:
        ctx.on_reconciled(rec)
    return SUCCESS


# --------------------------------------------------------------------------- reconciliation


def previous_day(now: datetime) -> date:
    return (now.astimezone(EAT) - timedelta(days=1)).date()


async def request_reconciliation(ctx: Context, day: date, *, again: bool = False) -> Reconciliation:
    """Ask GePG for its report of ``day`` (its answer comes by callback). ``again``
    asks anew for a day already compared."""
    now = ctx.clock()
    rec = await ctx.store.get_reconciliation(day.isoformat())
    if rec is not None and rec.status == "completed" and not again:
        return rec
    attempt = (rec.attempts + 1) if rec else 0
    fresh = Reconciliation(
        id=day.isoformat(),
        day=day,
        request_id=request_id_for(day, attempt),
        requested_at=now,
        attempts=attempt,
        rev=rec.rev if rec else 0,
    )
    answer = await ctx.gateway.request_reconciliation(day, fresh.request_id)
    if not answer.accepted:
        log.warning("reconciliation_request_failed", day=day.isoformat(), code=answer.code)
    await ctx.store.put_reconciliation(fresh)
    return fresh


async def reconcile_if_due(ctx: Context) -> Reconciliation | None:
    """Daily, after ``reconcile_hour`` (local time): the previous day, once compared;
    asked again while GePG has not answered for ``reconcile_retry_s``."""
    now = ctx.clock()
    if now.astimezone(EAT).hour < ctx.settings.reconcile_hour:
        return None
    day = previous_day(now)
    rec = await ctx.store.get_reconciliation(day.isoformat())
    if rec is None or (
        rec.status == "requested"
        and (now - rec.requested_at).total_seconds() > ctx.settings.reconcile_retry_s
    ):
        return await request_reconciliation(ctx, day)
    return None


async def list_reconciliations(ctx: Context) -> list[Reconciliation]:
    return await ctx.store.list_reconciliations()


# --------------------------------------------------------------------------- documents and views


async def get_bill(ctx: Context, bill_id: str) -> Bill:
    bill = await ctx.store.get_bill(bill_id)
    if bill is None:
        raise DomainError("bill_not_found", "No such bill", field="bill_id")
    return bill


async def invoice_pdf(ctx: Context, bill_id: str, language: str) -> tuple[Bill, bytes]:
    """The proforma invoice of a bill; its number is given once, sequential per year."""
    bill = await get_bill(ctx, bill_id)
    if bill.invoice_number is None:
        year = bill.created_at.astimezone(EAT).year
        n = await ctx.store.next_invoice_number(year, bill.id)
        number = invoice_number(year, n)

        def assign(b: Bill) -> bool:
            if b.invoice_number is None:
                b.invoice_number = number
                return True
            return False

        bill, _ = await _change(ctx, bill_id, assign)
        assert bill is not None
    return bill, documents.invoice(bill, language)


async def receipt_pdf(ctx: Context, bill_id: str, payment_id: str, language: str) -> bytes:
    bill = await get_bill(ctx, bill_id)
    payment = bill.payment(payment_id)
    if payment is None:
        raise DomainError("payment_not_found", "No such payment of this bill", field="payment_id")
    return documents.receipt(bill, payment, language)


async def list_bills(ctx: Context, **filters: Any) -> list[Bill]:
    return await ctx.store.list_bills(**filters)


def totals(bills: list[Bill]) -> dict[str, Any]:
    """Collected, outstanding and expired amounts, and counts by status and category."""
    by_status: dict[str, int] = {}
    by_category: dict[str, dict[str, int]] = {}
    collected = outstanding = expired = flagged = 0
    for b in bills:
        by_status[b.status] = by_status.get(b.status, 0) + 1
        cat = by_category.setdefault(b.category or "-", {"bills": 0, "collected_tzs": 0})
        cat["bills"] += 1
        cat["collected_tzs"] += b.paid_total_tzs
        collected += b.paid_total_tzs
        if b.status in ("submitting", "issued"):
            outstanding += b.outstanding_tzs
        if b.status == "expired":
            expired += b.outstanding_tzs
        flagged += bool(b.flags)
    return {
        "bills": len(bills),
        "collected_tzs": collected,
        "outstanding_tzs": outstanding,
        "expired_tzs": expired,
        "flagged": flagged,
        "by_status": by_status,
        "by_category": by_category,
    }


# --------------------------------------------------------------------------- group bills


async def group_bill_requested(ctx: Context, notice: Any) -> Bill | None:
    """An institution's contact person asked for one bill (``GroupBillRequested`` on
    registration.notices.v1): open it. A re-delivered notice finds the same bill (the
    group bill's id is derived from its lines); one with nothing left to bill (paid
    already, or no single bill yet) is logged and dropped, never retried forever."""
    try:
        return await open_group_bill(ctx, notice.event_id, notice.institution_code, notice.payer)
    except DomainError as e:
        log.info("group_bill_not_opened", code=e.code, institution=notice.institution_code)
        return None


def group_bill_id(event_id: str, institution_code: str, registration_ids: list[str]) -> str:
    import uuid

    from services.payments.domain import BILL_NAMESPACE

    key = f"group:{event_id}:{institution_code}:{','.join(sorted(registration_ids))}"
    return str(uuid.uuid5(BILL_NAMESPACE, key))


async def open_group_bill(ctx: Context, event_id: str, institution_code: str, payer: Any) -> Bill:
    """One bill for an institution's nominees (one line each): their open, unpaid bills
    of the event are cancelled (GePG told) and replaced by it. ``payer``: the contact
    person who pays (``ParticipantContact``). Asking again for the same nominees gives
    the same bill."""
    now = ctx.clock()
    found = await ctx.store.list_bills(event_id=event_id, institution_code=institution_code)
    bills = [
        b
        for b in found
        if b.status in ("submitting", "issued") and not b.payments and len(b.lines) == 1
    ]
    groups = [b for b in found if b.status in ("submitting", "issued") and len(b.lines) > 1]
    if not bills and groups:
        return groups[0]  # asked again: the institution's open group bill
    if not bills:
        raise DomainError(
            "nothing_to_bill",
            "No unpaid bill of this institution's nominees for this event",
            field="institution_code",
        )
    lines = [line for b in bills for line in b.lines]
    bill_id = group_bill_id(event_id, institution_code, [line.registration_id for line in lines])
    existing = await ctx.store.get_bill(bill_id)
    if existing is not None:
        return existing
    group = Bill.open(
        bill_id=bill_id,
        event=bills[0].event,
        lines=lines,
        payer=payer,
        pay_option=ctx.settings.pay_option,
        expires_at=min(b.expires_at for b in bills),
        now=now,
        institution_code=institution_code,
    )
    if not await ctx.store.insert_bill(group):
        found = await ctx.store.get_bill(bill_id)
        assert found is not None
        return found
    for b in bills:
        await _change(ctx, b.id, lambda x: x.cancel(now, "grouped"))
    log.info("group_bill_created", bill_id=bill_id, lines=len(lines), amount_tzs=group.amount_tzs)
    return group
