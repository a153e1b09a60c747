"""The payments' PDFs: a receipt per payment and a proforma invoice per bill, in
Swahili or English, with fpdf2 (a maintained PDF library; its core fonts carry every
letter Swahili and English need). The wording is in ``LABELS`` (one template per
language), the layout here; nothing else.
"""

from __future__ import annotations

from datetime import datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from services.payments.domain import Bill, Payment
from shared.timeutil import EAT

ISSUER = "e-Government Authority (e-GA)"
LABELS: dict[str, dict[str, str]] = {
    "sw": {
        "receipt": "STAKABADHI YA MALIPO",
        "invoice": "ANKARA YA AWALI (PROFORMA)",
        "number": "Namba",
        "date": "Tarehe",
        "event": "Tukio",
        "payer": "Mlipaji",
        "control_number": "Namba ya malipo",
        "reference": "Namba ya usajili",
        "description": "Maelezo",
        "amount": "Kiasi (TZS)",
        "paid": "Kilicholipwa (TZS)",
        "paid_total": "Jumla iliyolipwa (TZS)",
        "outstanding": "Kiasi kilichobaki (TZS)",
        "channel": "Njia ya malipo",
        "psp_receipt": "Stakabadhi ya mtoa huduma",
        "expires": "Mwisho wa kulipa",
        "fee": "Ada ya ushiriki",
        "how_to_pay": "Lipa kwa M-Pesa, Tigo Pesa, Airtel Money, HaloPesa au benki ukitumia "
        "namba ya malipo hapo juu (GePG).",
        "total": "Jumla",
        "erased": "(imefutwa)",
    },
    "en": {
        "receipt": "PAYMENT RECEIPT",
        "invoice": "PROFORMA INVOICE",
        "number": "Number",
        "date": "Date",
        "event": "Event",
        "payer": "Payer",
        "control_number": "Control number",
        "reference": "Registration reference",
        "description": "Description",
        "amount": "Amount (TZS)",
        "paid": "Paid (TZS)",
        "paid_total": "Total paid (TZS)",
        "outstanding": "Outstanding (TZS)",
        "channel": "Payment channel",
        "psp_receipt": "Provider's receipt",
        "expires": "Pay by",
        "fee": "Participation fee",
        "how_to_pay": "Pay by M-Pesa, Tigo Pesa, Airtel Money, HaloPesa or a bank with the "
        "control number above (GePG).",
        "total": "Total",
        "erased": "(erased)",
    },
}


def money(tzs: int) -> str:
    return f"{tzs:,}"


def _when(dt: datetime) -> str:
    return dt.astimezone(EAT).strftime("%d/%m/%Y %H:%M")


def _latin1(text: str) -> str:
    """The core fonts are Latin-1: anything else is replaced, never a failure."""
    return text.encode("latin-1", "replace").decode("latin-1")


class _Doc(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.set_title(title)
        self.set_author(ISSUER)
        self.set_creator("Mkutano payments")
        self.add_page()
        self.set_font("Helvetica", "B", 15)
        self.cell(0, 9, _latin1(ISSUER), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "B", 13)
        self.cell(0, 9, _latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def row(self, label: str, value: str) -> None:
        self.set_font("Helvetica", "B", 10)
        self.cell(60, 7, _latin1(label))
        self.set_font("Helvetica", "", 10)
        self.multi_cell(0, 7, _latin1(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _lang(language: str) -> dict[str, str]:
    return LABELS.get(language, LABELS["sw"])


def _title(bill: Bill, language: str) -> str:
    return bill.event.title_sw if language == "sw" else bill.event.title_en


def _payer(bill: Bill, t: dict[str, str]) -> str:
    if bill.payer is None:
        return t["erased"]
    return f"{bill.payer.full_name}, {bill.payer.institution}"


def receipt(bill: Bill, payment: Payment, language: str) -> bytes:
    """The receipt of one payment."""
    t = _lang(language)
    doc = _Doc(t["receipt"])
    doc.row(t["number"], payment.receipt_number)
    doc.row(t["date"], _when(payment.paid_at))
    doc.row(t["event"], _title(bill, language))
    doc.row(t["payer"], _payer(bill, t))
    doc.row(t["reference"], bill.reference)
    doc.row(t["control_number"], bill.control_number or "-")
    doc.row(t["paid"], money(payment.amount_tzs))
    doc.row(t["channel"], f"{payment.channel} {payment.psp_name or ''}".strip())
    if payment.psp_receipt:
        doc.row(t["psp_receipt"], payment.psp_receipt)
    paid_until_then = sum(p.amount_tzs for p in bill.payments[: bill.payments.index(payment) + 1])
    doc.row(t["amount"], money(bill.amount_tzs))
    doc.row(t["paid_total"], money(paid_until_then))
    doc.row(t["outstanding"], money(max(0, bill.amount_tzs - paid_until_then)))
    return bytes(doc.output())


def invoice(bill: Bill, language: str) -> bytes:
    """The proforma invoice of a bill: one line per registration it pays for."""
    t = _lang(language)
    doc = _Doc(t["invoice"])
    doc.row(t["number"], bill.invoice_number or "-")
    doc.row(t["date"], _when(bill.created_at))
    doc.row(t["event"], _title(bill, language))
    doc.row(t["payer"], _payer(bill, t))
    doc.row(t["control_number"], bill.control_number or "-")
    doc.row(t["expires"], _when(bill.expires_at))
    doc.ln(3)
    doc.set_font("Helvetica", "B", 10)
    doc.cell(120, 7, _latin1(t["description"]), border=1)
    doc.cell(0, 7, _latin1(t["amount"]), border=1, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.set_font("Helvetica", "", 10)
    for line in bill.lines:
        who = line.full_name or t["erased"]
        text = f"{t['fee']} - {line.category or ''} - {who} ({line.reference})"
        doc.cell(120, 7, _latin1(text[:70]), border=1)
        doc.cell(
            0, 7, money(line.amount_tzs), border=1, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    doc.set_font("Helvetica", "B", 10)
    doc.cell(120, 7, _latin1(t["total"]), border=1)
    doc.cell(0, 7, money(bill.amount_tzs), border=1, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.ln(4)
    doc.set_font("Helvetica", "", 10)
    doc.multi_cell(0, 6, _latin1(t["how_to_pay"]))
    return bytes(doc.output())
