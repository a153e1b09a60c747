"""Payments HTTP API (``/api/v1``): GePG's callbacks, the organisers' views and the PDFs.

GePG's callbacks (``POST /api/v1/gepg/callback``, ``application/xml``) carry no API key:
their signature is their credential, verified before anything is read. Every other
route needs a role: ``organiser`` (or ``admin``) sees the bills with the payer's name and
contacts; ``auditor`` sees them without.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.payments import handlers
from services.payments.domain import BILL_STATUSES, Bill, Reconciliation
from shared.auth import Principal, require_roles
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1")

ERROR_STATUSES: dict[str, int] = {
    "nothing_to_bill": 422,
    "bill_already_expired": 422,
    "invalid_amount": 422,
}
MAX_CALLBACK_BYTES = 1024 * 1024
CALLBACK_PATH = r"^/api/v1/gepg/callback$"

Viewer = Annotated[Principal, Depends(require_roles("organiser", "auditor"))]
Organiser = Annotated[Principal, Depends(require_roles("organiser"))]
StatusFilter = Literal["submitting", "issued", "paid", "expired", "cancelled"]
Language = Literal["sw", "en"]


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


class PaymentView(BaseModel):
    id: str
    transaction_id: str
    payment_reference: str
    amount_tzs: int
    channel: str
    psp_name: str | None
    psp_receipt: str | None
    paid_at: datetime
    receipt_number: str
    flags: list[str]
    source: str


class LineView(BaseModel):
    registration_id: str
    reference: str
    amount_tzs: int
    category: str | None
    full_name: str | None = None


class PayerView(BaseModel):
    full_name: str
    email: str
    phone: str
    institution: str
    language: str


class BillView(BaseModel):
    id: str
    event_id: str
    status: str
    amount_tzs: int
    currency: str
    pay_option: str
    paid_total_tzs: int
    outstanding_tzs: int
    control_number: str | None
    expires_at: datetime
    created_at: datetime
    category: str | None
    institution_code: str | None
    invoice_number: str | None
    flags: list[str]
    last_error: str | None
    submit_attempts: int
    lines: list[LineView]
    payments: list[PaymentView]
    payer: PayerView | None = Field(None, description="Organisers and admins only.")


def bill_view(bill: Bill, principal: Principal) -> BillView:
    personal = principal.has_any(("organiser", "admin"))
    return BillView(
        id=bill.id,
        event_id=bill.event_id,
        status=bill.status,
        amount_tzs=bill.amount_tzs,
        currency=bill.currency,
        pay_option=bill.pay_option,
        paid_total_tzs=bill.paid_total_tzs,
        outstanding_tzs=bill.outstanding_tzs,
        control_number=bill.control_number,
        expires_at=bill.expires_at,
        created_at=bill.created_at,
        category=bill.category,
        institution_code=bill.institution_code,
        invoice_number=bill.invoice_number,
        flags=list(bill.flags),
        last_error=bill.last_error,
        submit_attempts=bill.submit_attempts,
        lines=[
            LineView(
                registration_id=line.registration_id,
                reference=line.reference,
                amount_tzs=line.amount_tzs,
                category=line.category,
                full_name=line.full_name if personal else None,
            )
            for line in bill.lines
        ],
        payments=[PaymentView(**{**p.__dict__, "flags": list(p.flags)}) for p in bill.payments],
        payer=(
            PayerView(**bill.payer.model_dump(include=set(PayerView.model_fields)))
            if personal and bill.payer
            else None
        ),
    )


class DiscrepancyView(BaseModel):
    kind: str
    bill_id: str | None
    control_number: str | None
    transaction_id: str | None
    payment_reference: str | None
    amount_tzs: int | None
    reported_amount_tzs: int | None


class ReconciliationView(BaseModel):
    id: str
    day: date
    status: str
    requested_at: datetime
    completed_at: datetime | None
    reported: int
    matched: int
    discrepancies: list[DiscrepancyView]


def reconciliation_view(rec: Reconciliation) -> ReconciliationView:
    return ReconciliationView(
        id=rec.id,
        day=rec.day,
        status=rec.status,
        requested_at=rec.requested_at,
        completed_at=rec.completed_at,
        reported=rec.reported,
        matched=rec.matched,
        discrepancies=[DiscrepancyView(**d.model_dump()) for d in rec.discrepancies],
    )


# --------------------------------------------------------------------------- GePG


@router.post(
    "/gepg/callback",
    tags=["gepg"],
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string"}}},
        }
    },
)
async def gepg_callback(request: Request) -> Response:
    """GePG's control-number, payment and reconciliation callbacks (version 1 XML).

    Answered with a signed ack: 7101 once applied (again 7101 for a re-sent one, which
    changes nothing), 7303 for a signature that does not verify (nothing recorded),
    7242 for a message that cannot be read."""
    body = await request.body()
    ack = await handlers.receive_callback(_ctx(request), body[: MAX_CALLBACK_BYTES + 1])
    return Response(ack, media_type="application/xml")


# --------------------------------------------------------------------------- organisers


async def _filters(
    event_id: Annotated[str | None, Query(max_length=100)] = None,
    status: StatusFilter | None = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    institution_code: Annotated[str | None, Query(max_length=100)] = None,
    flagged: bool | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "status": status,
        "category": category,
        "institution_code": institution_code,
        "flagged": flagged,
    }


@router.get("/bills", tags=["organisers"], responses=error_responses(401, 403, 422))
async def list_bills(
    request: Request, principal: Viewer, filters: Annotated[dict[str, Any], Depends(_filters)]
) -> list[BillView]:
    """Bills by event, status, category, institution, or flagged (over-paid, late)."""
    return [bill_view(b, principal) for b in await handlers.list_bills(_ctx(request), **filters)]


@router.get("/bills/summary", tags=["organisers"], responses=error_responses(401, 403, 422))
async def bills_summary(
    request: Request, _: Viewer, filters: Annotated[dict[str, Any], Depends(_filters)]
) -> dict[str, Any]:
    """Totals: collected, outstanding and expired TZS; counts by status and category."""
    return handlers.totals(await handlers.list_bills(_ctx(request), **filters))


CSV_COLUMNS = [
    "bill_id", "event_id", "status", "category", "institution_code", "references",
    "amount_tzs", "paid_total_tzs", "outstanding_tzs", "control_number", "expires_at",
    "invoice_number", "flags", "payer",
]  # fmt: skip


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet must not run a cell as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get(
    "/bills.csv",
    tags=["organisers"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 422)},
)
async def export_bills(
    request: Request, principal: Viewer, filters: Annotated[dict[str, Any], Depends(_filters)]
) -> Response:
    """The bills as CSV (UTF-8 with BOM); the payer's name for organisers only."""
    personal = principal.has_any(("organiser", "admin"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for b in await handlers.list_bills(_ctx(request), **filters):
        row = [
            b.id, b.event_id, b.status, b.category, b.institution_code,
            " ".join(line.reference for line in b.lines), b.amount_tzs, b.paid_total_tzs,
            b.outstanding_tzs, b.control_number, b.expires_at.isoformat(), b.invoice_number,
            " ".join(b.flags), b.payer.full_name if personal and b.payer else "",
        ]  # fmt: skip
        writer.writerow([_cell(v) for v in row])
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="bills.csv"'},
    )


@router.get("/bills/{bill_id}", tags=["organisers"], responses=error_responses(401, 403, 404))
async def get_bill(bill_id: str, request: Request, principal: Viewer) -> BillView:
    return bill_view(await handlers.get_bill(_ctx(request), bill_id), principal)


@router.get(
    "/bills/{bill_id}/invoice.pdf",
    tags=["organisers"],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **error_responses(401, 403, 404, 422)},
)
async def invoice_pdf(
    bill_id: str, request: Request, _: Organiser, lang: Language = "sw"
) -> Response:
    """The proforma invoice (its number is given on first request, sequential per year)."""
    bill, pdf = await handlers.invoice_pdf(_ctx(request), bill_id, lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{bill.invoice_number}.pdf"'},
    )


@router.get(
    "/bills/{bill_id}/payments/{payment_id}/receipt.pdf",
    tags=["organisers"],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **error_responses(401, 403, 404, 422)},
)
async def receipt_pdf(
    bill_id: str, payment_id: str, request: Request, _: Organiser, lang: Language = "sw"
) -> Response:
    pdf = await handlers.receipt_pdf(_ctx(request), bill_id, payment_id, lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": 'inline; filename="receipt.pdf"'},
    )


class PayerBody(BaseModel):
    full_name: str = Field(min_length=2, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str = Field(min_length=9, max_length=16, pattern=r"^\+?[0-9]{9,15}$")
    institution: str = Field(min_length=2, max_length=200)
    language: Language = "sw"


class GroupBillRequest(BaseModel):
    event_id: str = Field(min_length=1, max_length=100)
    institution_code: str = Field(min_length=1, max_length=32)
    payer: PayerBody = Field(description="The institution's contact person who pays.")


@router.post(
    "/group-bills",
    status_code=201,
    tags=["organisers"],
    responses=error_responses(401, 403, 409, 422),
)
async def open_group_bill(
    body: GroupBillRequest, request: Request, principal: Organiser
) -> BillView:
    """One bill for an institution's nominees of an event (one line each), replacing
    their unpaid bills; paid, it confirms them all."""
    from shared.contracts.registration import ParticipantContact

    payer = ParticipantContact(**body.payer.model_dump())
    bill = await handlers.open_group_bill(
        _ctx(request), body.event_id, body.institution_code, payer
    )
    return bill_view(bill, principal)


class ReconcileRequest(BaseModel):
    day: date = Field(description="The day (Tanzanian date) to ask GePG's report of.")


@router.get("/reconciliations", tags=["organisers"], responses=error_responses(401, 403))
async def list_reconciliations(request: Request, _: Viewer) -> list[ReconciliationView]:
    """The daily reconciliations, newest first, with their discrepancies."""
    return [reconciliation_view(r) for r in await handlers.list_reconciliations(_ctx(request))]


@router.post(
    "/reconciliations",
    status_code=202,
    tags=["organisers"],
    responses=error_responses(401, 403, 422),
)
async def request_reconciliation(
    body: ReconcileRequest, request: Request, _: Organiser
) -> ReconciliationView:
    """Ask GePG for a day's report now (again, if that day was compared already)."""
    rec = await handlers.request_reconciliation(_ctx(request), body.day, again=True)
    return reconciliation_view(rec)


__all__ = ["BILL_STATUSES", "CALLBACK_PATH", "ERROR_STATUSES", "router"]
