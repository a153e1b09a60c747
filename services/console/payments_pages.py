"""The organisers' payments page: an event's bills from the payments service, as the
person signed in sees them (organisers with the payer's name, auditors without: the
payments API decides), filtered by status, category and institution with a plain GET
form (no JavaScript), the totals of payments' summary above the table, and the CSV and
each bill's invoice and receipt PDFs downloaded through the console (the person's token
never reaches the browser).

Payments' API: ``GET /api/v1/bills``, ``/bills/summary``, ``/bills.csv`` (the filters
``event_id``, ``status``, ``category``, ``institution_code``), ``GET /api/v1/bills/{id}``
and its ``invoice.pdf`` and ``payments/{payment_id}/receipt.pdf`` (organisers only).
When payments does not answer, the page says so instead of the table.

The pure parts: ``tzs`` (the amounts), ``filters_of`` (the query kept to what is offered)
and ``bill_params`` (the filters as payments' query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import handlers, web
from services.console.domain import StaffSession
from services.console.ports import Answer, ServiceUnavailable

router = APIRouter(include_in_schema=False)

# Payments' bill statuses (services/payments/domain.py BILL_STATUSES), in the page's order.
BILL_STATUSES = ("issued", "paid", "expired", "cancelled", "submitting")
# Who may download the PDFs: payments gives the invoice and receipts to organisers only.
DOCUMENT_ROLES = frozenset({"organiser", "admin"})
MAX_INSTITUTION = 32

LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "title": "Malipo",
        "link": "Malipo ya tukio",
        "bills": "Bili za tukio",
        "filter": "Chuja bili",
        "status": "Hali",
        "category": "Kundi",
        "institution": "Taasisi (msimbo)",
        "institution_hint": "msimbo wa taasisi, mf. MOF",
        "any": "Zote",
        "apply": "Chuja",
        "clear": "Ondoa vichujio",
        "totals": "Jumla ya bili zinazoonyeshwa",
        "collected": "Zilizokusanywa",
        "outstanding": "Zinazodaiwa",
        "expired": "Zilizokwisha muda",
        "count": "Idadi ya bili",
        "csv": "Pakua CSV ya bili hizi",
        "reference": "Namba ya usajili",
        "payer": "Mlipaji",
        "due": "Kiasi (TZS)",
        "paid": "Kilicholipwa (TZS)",
        "control_number": "Namba ya malipo",
        "pay_by": "Lipa kabla ya (EAT)",
        "flags": "Tahadhari",
        "documents": "Nyaraka",
        "invoice": "Ankara (PDF)",
        "receipt": "Stakabadhi {n} (PDF)",
        "none_yet": "bado",
        "none_found": "Hakuna bili zinazolingana na vichujio hivi.",
        "hidden_name": "jina linaonekana kwa waandaaji tu",
        "unavailable": (
            "Bili hazipatikani kwa sasa (huduma ya malipo haikujibu). Jaribu tena baadaye."
        ),
        "statuses": {
            "submitting": "Inatumwa GePG",
            "issued": "Inadaiwa",
            "paid": "Imelipwa",
            "expired": "Muda umekwisha",
            "cancelled": "Imefutwa",
        },
        "flag_names": {
            "overpaid": "Imelipwa zaidi",
            "after_expiry": "Imelipwa baada ya muda wa kulipa",
            "after_cancellation": "Imelipwa baada ya kufutwa",
        },
    },
    "en": {
        "title": "Payments",
        "link": "The event's payments",
        "bills": "The event's bills",
        "filter": "Filter the bills",
        "status": "Status",
        "category": "Category",
        "institution": "Institution (code)",
        "institution_hint": "the institution's code, e.g. MOF",
        "any": "Any",
        "apply": "Filter",
        "clear": "Clear the filters",
        "totals": "Totals of the bills shown",
        "collected": "Collected",
        "outstanding": "Outstanding",
        "expired": "Expired",
        "count": "Bills",
        "csv": "Download these bills as CSV",
        "reference": "Reference",
        "payer": "Payer",
        "due": "Due (TZS)",
        "paid": "Paid (TZS)",
        "control_number": "Control number",
        "pay_by": "Pay by (EAT)",
        "flags": "Flags",
        "documents": "Documents",
        "invoice": "Invoice (PDF)",
        "receipt": "Receipt {n} (PDF)",
        "none_yet": "not yet",
        "none_found": "No bill matches these filters.",
        "hidden_name": "the name is shown to organisers only",
        "unavailable": (
            "The bills are unavailable just now (the payments service did not answer). "
            "Try again later."
        ),
        "statuses": {
            "submitting": "Being sent to GePG",
            "issued": "Outstanding",
            "paid": "Paid",
            "expired": "Expired",
            "cancelled": "Cancelled",
        },
        "flag_names": {
            "overpaid": "Over-paid",
            "after_expiry": "Paid after the pay-by date",
            "after_cancellation": "Paid after cancellation",
        },
    },
}


# -- pure ------------------------------------------------------------------------------------


def tzs(amount: Any) -> str:
    """A whole amount of shillings with thousands separators (``400,000``)."""
    try:
        return f"{int(amount):,}"
    except (TypeError, ValueError):
        return ""


def filters_of(query: Mapping[str, str], categories: Sequence[str]) -> dict[str, str]:
    """The page's filters from its query, kept to what the form offers: a known status,
    one of the event's categories, an institution code (letters, digits, ``_`` and ``-``,
    upper-cased as the registry writes them); anything else is no filter."""
    status = (query.get("status") or "").strip()
    category = (query.get("category") or "").strip()
    institution = (query.get("institution") or "").strip().upper()[:MAX_INSTITUTION]
    if not all(c.isalnum() or c in "_-" for c in institution):
        institution = ""
    return {
        "status": status if status in BILL_STATUSES else "",
        "category": category if category in categories else "",
        "institution": institution,
    }


def bill_params(event_id: str, filters: Mapping[str, str]) -> dict[str, str]:
    """The filters as payments' query (``institution`` is its ``institution_code``)."""
    names = {"status": "status", "category": "category", "institution": "institution_code"}
    params = {"event_id": event_id}
    params.update({names[k]: v for k, v in filters.items() if v and k in names})
    return params


def flag_words(flags: Sequence[str], lang: str) -> list[str]:
    names = LABELS[lang]["flag_names"]
    return [names.get(f, f) for f in flags]


def payer_of(bill: Mapping[str, Any]) -> str | None:
    """The payer's name where payments gives it (organisers): the bill's payer, else the
    names on its lines; None for those who do not see names (auditors)."""
    payer = bill.get("payer") or {}
    if payer.get("full_name"):
        return str(payer["full_name"])
    names = [str(line["full_name"]) for line in bill.get("lines") or [] if line.get("full_name")]
    return ", ".join(names) or None


def may_download(session: StaffSession) -> bool:
    return bool(set(session.roles) & DOCUMENT_ROLES)


# -- the pages ---------------------------------------------------------------------------------


async def _payments(
    request: Request, session: StaffSession, path: str, params: dict[str, str]
) -> Answer | None:
    """Payments' answer, or None when it does not answer (down, or failing)."""
    try:
        answer = await handlers.call(
            web._ctx(request), session, "payments", "GET", path, params=params
        )
    except ServiceUnavailable:
        return None
    return None if answer.status >= 500 else answer


@router.get("/events/{event_id}/payments", response_class=HTMLResponse)
async def payments_page(event_id: str, request: Request) -> Response:
    session = await web._require(request, "payments")
    event = await web._event(request, session, event_id)
    lang = web._lang(request, session)
    categories = {
        str(c.get("code")): (c.get("name_en") if lang == "en" else c.get("name_sw")) or c["code"]
        for c in event.get("categories") or []
        if c.get("code")
    }
    filters = filters_of(request.query_params, list(categories))
    params = bill_params(event_id, filters)
    bills = await _payments(request, session, "/api/v1/bills", params)
    summary = await _payments(request, session, "/api/v1/bills/summary", params)
    if bills is not None and not bills.ok:
        web._or_fail(request, session, bills)  # a refusal (403, 422) shown as such
    available = bills is not None and isinstance(bills.body, list)
    chosen = {k: v for k, v in filters.items() if v}
    return web.render(
        request,
        "pay_bills.html.j2",
        session,
        status=200 if available else 503,
        p=LABELS[lang],
        event=event,
        filters=filters,
        statuses=BILL_STATUSES,
        categories=categories,
        bills=bills.body if available and bills is not None else [],
        available=available,
        summary=summary.body if summary is not None and summary.ok else None,
        tzs=tzs,
        flag_words=lambda flags: flag_words(flags, lang),
        payer_of=payer_of,
        documents=may_download(session),
        csv_url=f"/events/{event_id}/payments.csv" + ("?" + urlencode(chosen) if chosen else ""),
        quote=quote,
    )


@router.get("/events/{event_id}/payments.csv")
async def payments_csv(event_id: str, request: Request) -> Response:
    """Payments' CSV of the event's bills with the page's filters."""
    session = await web._require(request, "payments")
    event = await web._event(request, session, event_id)
    codes = [str(c.get("code")) for c in event.get("categories") or []]
    params = bill_params(event_id, filters_of(request.query_params, codes))
    answer = await web._call(
        request, session, "payments", "GET", "/api/v1/bills.csv", params=params
    )
    if not answer.ok:
        web._or_fail(request, session, answer)
    return Response(
        answer.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event_id}-bills.csv"'},
    )


async def _bill(request: Request, session: StaffSession, event_id: str, bill_id: str) -> Any:
    """The bill, if it is this event's (another event's bill is not found here)."""
    answer = await web._call(
        request, session, "payments", "GET", f"/api/v1/bills/{quote(bill_id, safe='')}"
    )
    bill = web._or_fail(request, session, answer)
    if not isinstance(bill, dict) or bill.get("event_id") != event_id:
        raise web._not_found(request, session)
    return bill


def _pdf(request: Request, session: StaffSession, answer: Answer, filename: str) -> Response:
    if not answer.ok:
        web._or_fail(request, session, answer)
    return Response(
        answer.content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/events/{event_id}/payments/{bill_id}/invoice.pdf")
async def invoice_pdf(event_id: str, bill_id: str, request: Request) -> Response:
    session = await web._require(request, "payments")
    bill = await _bill(request, session, event_id, bill_id)
    lang = web._lang(request, session)
    answer = await web._call(
        request,
        session,
        "payments",
        "GET",
        f"/api/v1/bills/{quote(bill['id'], safe='')}/invoice.pdf",
        params={"lang": lang},
    )
    return _pdf(request, session, answer, f"invoice-{bill.get('control_number') or 'bill'}.pdf")


@router.get("/events/{event_id}/payments/{bill_id}/receipt.pdf")
async def receipt_pdf(event_id: str, bill_id: str, request: Request) -> Response:
    """A payment's receipt (``?payment=`` its id, one of the bill's payments)."""
    session = await web._require(request, "payments")
    bill = await _bill(request, session, event_id, bill_id)
    wanted = request.query_params.get("payment", "")
    payment = next((p for p in bill.get("payments") or [] if p.get("id") == wanted), None)
    if payment is None:
        raise web._not_found(request, session)
    answer = await web._call(
        request,
        session,
        "payments",
        "GET",
        f"/api/v1/bills/{quote(bill['id'], safe='')}/payments/{quote(wanted, safe='')}/receipt.pdf",
        params={"lang": web._lang(request, session)},
    )
    return _pdf(request, session, answer, f"receipt-{payment.get('receipt_number') or 'bill'}.pdf")
