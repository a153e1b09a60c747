"""GePG version 1: the gateway adapter (``ports.Gateway``) over HTTP and signed XML.

The XML, the signatures and GePG's codes stay here (and in ``gepgxml``); the use cases
see bills, payments and integer TZS. Requests carry ``Gepg-Code`` (the SP code) and
``Gepg-Com``; every answer and callback is verified against GePG's certificate before a
field of it is read.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from services.payments import gepgxml as gx
from services.payments.domain import Bill, ReportedPayment
from services.payments.ports import (
    Callback,
    CallbackRefused,
    ControlNumberCallback,
    GatewayAnswer,
    PaymentCallback,
    ReconciliationCallback,
)
from shared.logging import get_logger

log = get_logger("payments")

SUBMIT_PATH = "/api/bill/sigqrequest"
CANCEL_PATH = "/api/bill/sigcancel_request"
RECONCILE_PATH = "/api/reconciliations/sig_sp_qrequest"
# What answers each callback (by its inner element).
ACKS = {
    "gepgBillSubResp": ("gepgBillSubRespAck", "TrxStsCode"),
    "gepgPmtSpInfo": ("gepgPmtSpInfoAck", "TrxStsCode"),
    "gepgSpReconcResp": ("gepgSpReconcRespAck", "ReconcStsCode"),
}


def bill_submission(
    bill: Bill, *, sp_code: str, sub_sp_code: str, sp_sys_id: str, gfs_code: str
) -> str:
    """``gepgBillSubReq`` of a bill: one BillTrxInf, one BillItem per line."""
    e = gx.el
    payer = bill.payer
    items = [
        e(
            "BillItem",
            e("BillItemRef", text=line.reference),
            e("UseItemRefOnPay", text="N"),
            e("BillItemAmt", text=gx.amount(line.amount_tzs)),
            e("BillItemEqvAmt", text=gx.amount(line.amount_tzs)),
            e("BillItemMiscAmt", text=gx.amount(0)),
            e("GfsCode", text=gfs_code),
        )
        for line in bill.lines
    ]
    phone = (payer.phone if payer else "").lstrip("+")
    trx = e(
        "BillTrxInf",
        e("BillId", text=bill.id),
        e("SubSpCode", text=sub_sp_code),
        e("SpSysId", text=sp_sys_id),
        e("BillAmt", text=gx.amount(bill.amount_tzs)),
        e("MiscAmt", text=gx.amount(0)),
        e("BillExprDt", text=gx.local_time(bill.expires_at)),
        e("PyrId", text=bill.lines[0].reference),
        e("PyrName", text=payer.full_name if payer else "-"),
        e("BillDesc", text=f"{bill.event.code} {bill.reference}"),
        e("BillGenDt", text=gx.local_time(bill.created_at)),
        e("BillGenBy", text=sp_sys_id),
        e("BillApprBy", text=sp_sys_id),
        e("PyrCellNum", text=phone),
        e("PyrEmail", text=payer.email if payer else ""),
        e("Ccy", text=bill.currency),
        e("BillEqvAmt", text=gx.amount(bill.amount_tzs)),
        e("RemFlag", text="true"),
        e("BillPayOpt", text=gx.PAY_OPTIONS[bill.pay_option]),
        e("BillItems", *items),
    )
    return e(
        "gepgBillSubReq",
        e("BillHdr", e("SpCode", text=sp_code), e("RtrRespFlg", text="true")),
        trx,
    )


def reported_payment(trx: Any, *, prefix: str = "") -> ReportedPayment:
    """A ``PymtTrxInf`` (payment notification) as the domain sees it."""
    return ReportedPayment(
        bill_id=gx.text_of(trx, "BillId", "") or "",
        control_number=gx.required(trx, "PayCtrNum"),
        transaction_id=gx.required(trx, "TrxId"),
        payment_reference=gx.required(trx, "PayRefId"),
        amount_tzs=gx.parse_amount(gx.text_of(trx, "PaidAmt")),
        channel=gx.text_of(trx, "UsdPayChnl", "UNKNOWN") or "UNKNOWN",
        paid_at=gx.parse_local_time(gx.required(trx, "TrxDtTm")),  # type: ignore[arg-type]
        psp_name=gx.text_of(trx, "PspName"),
        psp_receipt=gx.text_of(trx, "PspReceiptNumber"),
    )


def reconciled_payment(row: Any) -> ReportedPayment:
    """A ``ReconcTrxInf`` row of GePG's daily report."""
    return ReportedPayment(
        bill_id=gx.text_of(row, "SpBillId", "") or "",
        control_number=gx.text_of(row, "BillCtrNum", "") or "",
        transaction_id=gx.required(row, "pspTrxId"),
        payment_reference=gx.required(row, "PayRefId"),
        amount_tzs=gx.parse_amount(gx.text_of(row, "PaidAmt")),
        channel=gx.text_of(row, "UsdPayChnl", "UNKNOWN") or "UNKNOWN",
        paid_at=gx.parse_local_time(gx.required(row, "TrxDtTm")),  # type: ignore[arg-type]
        psp_name=gx.text_of(row, "PspName"),
    )


class GepgV1Gateway:
    """GePG's version-1 XML API (``ports.Gateway``)."""

    name = "gepg-v1"

    def __init__(self, settings: Any, *, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.base_url = settings.gepg_url.rstrip("/")
        self.keys = gx.load_pkcs12(settings.gepg_key_file, _secret(settings.gepg_key_password))
        self.gepg_cert = gx.load_certificate(
            settings.gepg_certificate_file, _secret(settings.gepg_certificate_password)
        )
        self.client = client or httpx.AsyncClient(timeout=settings.gepg_timeout_s)

    async def close(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------------ outgoing

    async def _post(self, path: str, inner: str, com: str, answer_field: str) -> GatewayAnswer:
        body = gx.envelope(inner, self.keys.private_key)
        headers = {
            "Content-Type": "application/xml",
            "Gepg-Code": self.settings.sp_code,
            "Gepg-Com": com,
        }
        try:
            response = await self.client.post(self.base_url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return GatewayAnswer(False, f"unreachable:{type(exc).__name__}", retry=True)
        if response.status_code >= 500 or response.status_code == 429:
            return GatewayAnswer(False, f"http:{response.status_code}", retry=True)
        try:
            message = gx.read_message(response.content)
        except gx.MessageRefused as exc:
            return GatewayAnswer(False, f"unreadable:{exc}", retry=True)
        if not message.verified_by(self.gepg_cert):
            log.warning("gepg_answer_bad_signature", security=True, path=path)
            return GatewayAnswer(False, gx.INVALID_SIGNATURE, retry=True)
        code = gx.first_code(gx.text_of(message.element, f".//{answer_field}"))
        return GatewayAnswer(code == gx.SUCCESS, code, retry=code != gx.SUCCESS)

    async def submit_bill(self, bill: Bill) -> GatewayAnswer:
        s = self.settings
        inner = bill_submission(
            bill,
            sp_code=s.sp_code,
            sub_sp_code=s.sub_sp_code,
            sp_sys_id=s.sp_sys_id,
            gfs_code=s.gfs_code,
        )
        return await self._post(SUBMIT_PATH, inner, "default.sp.in", "TrxStsCode")

    async def cancel_bill(self, bill: Bill) -> GatewayAnswer:
        e = gx.el
        inner = e(
            "gepgBillCanclReq",
            e("SpCode", text=self.settings.sp_code),
            e("SpSysId", text=self.settings.sp_sys_id),
            e("CanclReasn", text=bill.cancel_reason or "cancelled"),
            e("BillId", text=bill.id),
        )
        return await self._post(CANCEL_PATH, inner, "default.sp.in", "TrxStsCode")

    async def request_reconciliation(self, day: date, request_id: int) -> GatewayAnswer:
        e = gx.el
        inner = e(
            "gepgSpReconcReq",
            e("SpReconcReqId", text=request_id),
            e("SpCode", text=self.settings.sp_code),
            e("SpSysId", text=self.settings.sp_sys_id),
            e("TnxDt", text=day.isoformat()),
            e("ReconcOpt", text="1"),
        )
        return await self._post(RECONCILE_PATH, inner, "default.sp.in", "ReconcStsCode")

    # ------------------------------------------------------------------ incoming

    def read_callback(self, body: bytes) -> Callback:
        try:
            message = gx.read_message(body)
        except gx.MessageRefused as exc:
            raise CallbackRefused(gx.INVALID_REQUEST, str(exc)) from None
        kind = message.tag if message.tag in ACKS else None
        # Before any field is read: the signature over the exact bytes received.
        if not message.verified_by(self.gepg_cert):
            raise CallbackRefused(gx.INVALID_SIGNATURE, "signature does not verify", kind)
        el = message.element
        try:
            if message.tag == "gepgBillSubResp":
                trx = gx.first(el, "BillTrxInf")
                if trx is None:
                    raise gx.MessageRefused("BillTrxInf missing")
                ok = (gx.text_of(trx, "TrxSts") or "").upper() == "GS"
                code = gx.first_code(gx.text_of(trx, "TrxStsCode"))
                number = gx.text_of(trx, "PayCntrNum")
                if code == gx.DUPLICATE_BILL and number:
                    ok = True  # a re-submission: GePG repeats the bill's control number
                return ControlNumberCallback(
                    bill_id=gx.required(trx, "BillId"),
                    control_number=number if ok and number and number != "0" else None,
                    code=code,
                )
            if message.tag == "gepgPmtSpInfo":
                trx = gx.first(el, "PymtTrxInf")
                if trx is None:
                    raise gx.MessageRefused("PymtTrxInf missing")
                return PaymentCallback(reported_payment(trx))
            if message.tag == "gepgSpReconcResp":
                batch = gx.first(el, "ReconcBatchInfo")
                if batch is None:
                    raise gx.MessageRefused("ReconcBatchInfo missing")
                rows = el.findall("ReconcTrans/ReconcTrxInf")
                return ReconciliationCallback(
                    request_id=int(gx.required(batch, "SpReconcReqId")),
                    code=gx.first_code(gx.text_of(batch, "ReconcStsCode")),
                    payments=[reconciled_payment(r) for r in rows],
                )
        except (gx.MessageRefused, ValueError) as exc:
            raise CallbackRefused(gx.INVALID_REQUEST, str(exc), kind) from None
        raise CallbackRefused(gx.INVALID_REQUEST, f"unexpected message {message.tag}", None)

    def ack(self, callback: Callback | str | None, code: str) -> bytes:
        if isinstance(callback, ControlNumberCallback):
            kind = "gepgBillSubResp"
        elif isinstance(callback, PaymentCallback):
            kind = "gepgPmtSpInfo"
        elif isinstance(callback, ReconciliationCallback):
            kind = "gepgSpReconcResp"
        else:
            kind = callback or "gepgPmtSpInfo"
        tag, field = ACKS.get(kind, ACKS["gepgPmtSpInfo"])
        return gx.envelope(gx.ack(tag, code, field=field), self.keys.private_key)


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
