"""GePG simulator: a real HTTP server speaking GePG's version-1 XML, for the dev stack
and the tests. Run: ``python -m deploy.gepgsim --port 1027 --callback-url URL
--keys-dir .data/gepg``.

It has its own keypair (``gepg.p12``, generated on first start in ``--keys-dir``) and
verifies the service provider's signatures with ``sp.crt`` from the same directory.

GePG's side (what the payments service calls):
- ``POST /api/bill/sigqrequest``: a signed ``gepgBillSubReq`` → ``gepgBillSubReqAck``
  (7101; 7303 for a bad signature); after ``--control-number-delay`` seconds the signed
  ``gepgBillSubResp`` with the control number goes to the callback URL, retried until
  acknowledged. A BillId it knows gets its control number again.
- ``POST /api/bill/sigcancel_request``: ``gepgBillCanclReq`` → ``gepgBillCanclResp``.
- ``POST /api/reconciliations/sig_sp_qrequest``: ``gepgSpReconcReq`` → ack, then the
  day's ``gepgSpReconcResp`` by callback.

The payer's side (what people and tests call):
- ``POST /api/v1/payments`` ``{"control_number", "amount", "channel"}`` (full, partial
  or over; ``channel`` as GePG names them: MOBILE, BANK, IB…) → 201 with the transaction
  id and payment reference; the signed ``gepgPmtSpInfo`` is sent and retried until
  acknowledged. Test extras: ``"notify": false`` (GePG has it, the provider is never
  told: a reconciliation finds it), ``"omit_from_report": true`` (left out of the daily
  report), ``"paid_at"`` (ISO time).
- ``GET /`` a page to pay a control number; ``GET /api/v1/bills``, ``GET /api/v1/payments``.
- ``GET/POST /api/v1/controls`` test controls: ``duplicate_notifications`` (extra copies
  of each payment notification), ``notification_delay_s``, ``bad_signature`` (callbacks
  signed with a wrong key), ``down`` (503 to every GePG call, no callbacks sent).
- ``GET /health``.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from services.payments import gepgxml as gx
from shared.timeutil import EAT

MAX_BODY = 1024 * 1024
CHANNELS = ("MOBILE", "BANK", "IB", "CARD")
PSPS = {"MOBILE": "M-Pesa", "BANK": "NMB Bank", "IB": "CRDB Internet Banking", "CARD": "Visa"}


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: twenty payers at once had connections
    # reset before they were accepted (the bench's 1,000 payments met it).
    request_queue_size = 128


@dataclass
class Controls:
    duplicate_notifications: int = 0
    notification_delay_s: float = 0.0
    control_number_delay_s: float = 0.5
    bad_signature: bool = False
    down: bool = False
    retry_s: float = 1.0


@dataclass
class SimBill:
    bill_id: str
    control_number: str
    amount: int
    pay_option: str
    expires: str
    cancelled: bool = False
    paid: int = 0


@dataclass
class SimPayment:
    transaction_id: str
    payment_reference: str
    bill_id: str
    control_number: str
    amount: int
    channel: str
    paid_at: datetime
    notify: bool = True
    omit_from_report: bool = False
    acknowledged: bool = False
    attempts: int = 0


@dataclass
class Simulator:
    callback_url: str
    key: rsa.RSAPrivateKey
    sp_cert: Any
    controls: Controls = field(default_factory=Controls)
    bills: dict[str, SimBill] = field(default_factory=dict)
    payments: list[SimPayment] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    _next_cn: int = field(default_factory=lambda: random.randint(10**8, 9 * 10**8))
    # One client for every callback thread: a new httpx client builds its TLS context
    # (about 50 ms of CPU), which made the simulator the bench's slowest part.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    # ------------------------------------------------------------------ callbacks

    def _sign(self, inner: str) -> bytes:
        if self.controls.bad_signature:
            wrong = rsa.generate_private_key(public_exponent=65537, key_size=1024)
            return gx.envelope(inner, wrong)
        return gx.envelope(inner, self.key)

    def deliver(self, inner: str, what: str, *, until_acked: bool = True) -> bool:
        """POST a signed callback until the provider answers a verified 7101."""
        delay = self.controls.retry_s
        attempts = 0
        while not self.stopping.is_set():
            if not self.controls.down:
                attempts += 1
                try:
                    response = self.http.post(
                        self.callback_url,
                        content=self._sign(inner),
                        headers={"Content-Type": "application/xml"},
                    )
                    message = gx.read_message(response.content)
                    code = gx.first_code(
                        gx.text_of(message.element, ".//TrxStsCode")
                        or gx.text_of(message.element, ".//ReconcStsCode")
                    )
                    good = message.verified_by(self.sp_cert)
                    print(f"callback {what}: HTTP {response.status_code} ack {code} "
                          f"signature {'ok' if good else 'BAD'} (attempt {attempts})", flush=True)  # fmt: skip
                    if good and code == gx.SUCCESS:
                        return True
                    if not until_acked:
                        return False
                except (httpx.HTTPError, gx.MessageRefused) as exc:
                    print(f"callback {what}: {type(exc).__name__} (attempt {attempts})", flush=True)
            self.stopping.wait(delay)
            delay = min(delay * 2, 30.0)
        return False

    def later(self, delay_s: float, fn: Any, *args: Any) -> None:
        def run() -> None:
            if delay_s:
                self.stopping.wait(delay_s)
            fn(*args)

        threading.Thread(target=run, daemon=True).start()

    def send_control_number(self, bill: SimBill) -> None:
        e = gx.el
        inner = e(
            "gepgBillSubResp",
            e(
                "BillTrxInf",
                e("BillId", text=bill.bill_id),
                e("TrxSts", text="GS"),
                e("PayCntrNum", text=bill.control_number),
                e("TrxStsCode", text=gx.SUCCESS),
            ),
        )
        self.deliver(inner, f"control number {bill.control_number}")

    def payment_inner(self, p: SimPayment) -> str:
        e = gx.el
        bill = self.bills[p.bill_id]
        return e(
            "gepgPmtSpInfo",
            e(
                "PymtTrxInf",
                e("TrxId", text=p.transaction_id),
                e("SpCode", text="SP19988"),
                e("PayRefId", text=p.payment_reference),
                e("BillId", text=p.bill_id),
                e("PayCtrNum", text=p.control_number),
                e("BillAmt", text=gx.amount(bill.amount)),
                e("PaidAmt", text=gx.amount(p.amount)),
                e("BillPayOpt", text=bill.pay_option),
                e("CCy", text="TZS"),
                e("TrxDtTm", text=gx.local_time(p.paid_at)),
                e("UsdPayChnl", text=p.channel),
                e("PyrCellNum", text="255700000000"),
                e("PyrName", text="Payer"),
                e("PyrEmail", text="payer@example.invalid"),
                e("PspReceiptNumber", text=f"PSP{p.transaction_id[-8:]}"),
                e("PspName", text=PSPS.get(p.channel, p.channel)),
                e("CtrAccNum", text="0150000000000"),
            ),
        )

    def send_payment(self, p: SimPayment) -> None:
        if self.controls.notification_delay_s:
            self.stopping.wait(self.controls.notification_delay_s)
        inner = self.payment_inner(p)
        if self.deliver(inner, f"payment {p.transaction_id}"):
            p.acknowledged = True
        for n in range(self.controls.duplicate_notifications):
            self.deliver(
                inner, f"payment {p.transaction_id} (duplicate {n + 1})", until_acked=False
            )

    def send_report(self, request_id: str, day: str) -> None:
        e = gx.el
        rows = [
            e(
                "ReconcTrxInf",
                e("SpBillId", text=p.bill_id),
                e("BillCtrNum", text=p.control_number),
                e("pspTrxId", text=p.transaction_id),
                e("PaidAmt", text=gx.amount(p.amount)),
                e("CCy", text="TZS"),
                e("PayRefId", text=p.payment_reference),
                e("TrxDtTm", text=gx.local_time(p.paid_at)),
                e("CtrAccNum", text="0150000000000"),
                e("UsdPayChnl", text=p.channel),
                e("PspName", text=PSPS.get(p.channel, p.channel)),
                e("PspCode", text="PSP001"),
                e("DptCellNum", text="255700000000"),
                e("DptName", text="Payer"),
                e("DptEmailAddr", text="payer@example.invalid"),
                e("Remarks", text="Successful"),
            )
            for p in self.payments
            if p.paid_at.astimezone(EAT).date().isoformat() == day and not p.omit_from_report
        ]
        inner = e(
            "gepgSpReconcResp",
            e(
                "ReconcBatchInfo",
                e("SpReconcReqId", text=request_id),
                e("SpCode", text="SP19988"),
                e("SpName", text="e-GA"),
                e("ReconcStsCode", text=gx.SUCCESS),
            ),
            e("ReconcTrans", *rows),
        )
        self.deliver(inner, f"reconciliation {day}")

    # ------------------------------------------------------------------ GePG's API

    def _new_control_number(self) -> str:
        self._next_cn += random.randint(1, 97)
        return f"99{self._next_cn:010d}"

    def receive(self, path: str, body: bytes) -> tuple[int, bytes]:
        """A signed request from the provider: verify, act, answer a signed ack."""
        try:
            message = gx.read_message(body)
        except gx.MessageRefused:
            return 400, gx.envelope(gx.ack("gepgBillSubReqAck", gx.INVALID_REQUEST), self.key)
        if path == "/api/bill/sigqrequest":
            ack_tag, field_name = "gepgBillSubReqAck", "TrxStsCode"
        elif path == "/api/bill/sigcancel_request":
            ack_tag, field_name = "gepgBillCanclResp", "TrxStsCode"
        else:
            ack_tag, field_name = "gepgSpReconcReqAck", "ReconcStsCode"
        if not message.verified_by(self.sp_cert):
            print(f"{path}: bad signature, answered 7303", flush=True)
            return 200, gx.envelope(
                gx.ack(ack_tag, gx.INVALID_SIGNATURE, field=field_name), self.key
            )
        el = message.element
        if path == "/api/bill/sigqrequest" and message.tag == "gepgBillSubReq":
            for trx in el.findall("BillTrxInf"):
                bill_id = gx.required(trx, "BillId")
                with self.lock:
                    bill = self.bills.get(bill_id)
                    if bill is None:
                        bill = SimBill(
                            bill_id=bill_id,
                            control_number=self._new_control_number(),
                            amount=gx.parse_amount(gx.text_of(trx, "BillAmt")),
                            pay_option=gx.text_of(trx, "BillPayOpt", "2") or "2",
                            expires=gx.text_of(trx, "BillExprDt", "") or "",
                        )
                        self.bills[bill_id] = bill
                self.later(self.controls.control_number_delay_s, self.send_control_number, bill)
            return 200, gx.envelope(gx.ack(ack_tag, gx.SUCCESS), self.key)
        if path == "/api/bill/sigcancel_request" and message.tag == "gepgBillCanclReq":
            bill_id = gx.required(el, "BillId")
            with self.lock:
                bill = self.bills.get(bill_id)
                if bill is not None:
                    bill.cancelled = True
            code = gx.SUCCESS if bill else gx.BILL_NOT_FOUND
            inner = gx.el(
                ack_tag,
                gx.el("BillCanclTrxDt", gx.el("BillId", text=bill_id),
                      gx.el("TrxSts", text="GS" if bill else "GF"), gx.el("TrxStsCode", text=code)),
            )  # fmt: skip
            return 200, gx.envelope(inner, self.key)
        if message.tag == "gepgSpReconcReq":
            request_id = gx.required(el, "SpReconcReqId")
            day = gx.required(el, "TnxDt")
            self.later(self.controls.control_number_delay_s, self.send_report, request_id, day)
            return 200, gx.envelope(gx.ack(ack_tag, gx.SUCCESS, field=field_name), self.key)
        return 200, gx.envelope(gx.ack(ack_tag, gx.INVALID_REQUEST, field=field_name), self.key)

    # ------------------------------------------------------------------ the payer's side

    def pay(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        number = str(payload.get("control_number") or "").strip()
        amount = payload.get("amount")
        channel = str(payload.get("channel") or "MOBILE").upper()
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return 400, {"error": "amount must be a positive whole number of TZS"}
        with self.lock:
            bill = next((b for b in self.bills.values() if b.control_number == number), None)
            if bill is None:
                return 404, {"error": f"unknown control number {number!r}"}
            if bill.cancelled:
                return 409, {"error": "the bill was cancelled (7283)"}
            paid_at = datetime.now(UTC)
            if payload.get("paid_at"):
                paid_at = datetime.fromisoformat(str(payload["paid_at"]).replace("Z", "+00:00"))
            p = SimPayment(
                transaction_id=f"TRX{uuid.uuid4().hex[:14].upper()}",
                payment_reference=f"PR{uuid.uuid4().hex[:14].upper()}",
                bill_id=bill.bill_id,
                control_number=number,
                amount=amount,
                channel=channel,
                paid_at=paid_at,
                notify=payload.get("notify", True) is not False,
                omit_from_report=bool(payload.get("omit_from_report")),
            )
            bill.paid += amount
            self.payments.append(p)
        if p.notify:
            self.later(0, self.send_payment, p)
        return 201, self.payment_json(p)

    def payment_json(self, p: SimPayment) -> dict[str, Any]:
        return {
            "transaction_id": p.transaction_id,
            "payment_reference": p.payment_reference,
            "bill_id": p.bill_id,
            "control_number": p.control_number,
            "amount": p.amount,
            "channel": p.channel,
            "paid_at": p.paid_at.isoformat(),
            "notified": p.notify,
            "acknowledged": p.acknowledged,
        }


PAGE = """<!doctype html>
<html lang="sw"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>GePG simulator / Kiigaji cha GePG</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:1rem auto;padding:0 1rem;line-height:1.5}}
label{{display:block;margin-top:1rem;font-weight:bold}}input,select,button{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}}
button{{margin-top:1rem;background:#00703c;color:#fff;border:0}}</style></head>
<body><main><h1>Lipa kwa namba ya malipo / Pay a control number</h1>
<p>Kiigaji cha GePG cha mazingira ya majaribio. / The GePG simulator of the dev stack.</p>
{message}
<form method="post" action="/pay">
<label for="cn">Namba ya malipo / Control number</label><input id="cn" name="control_number" inputmode="numeric" required>
<label for="amount">Kiasi (TZS) / Amount (TZS)</label><input id="amount" name="amount" inputmode="numeric" required>
<label for="channel">Njia / Channel</label><select id="channel" name="channel">{channels}</select>
<button type="submit">Lipa / Pay</button></form></main></body></html>"""


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class GepgSimHandler(BaseHTTPRequestHandler):
        server_version = "MkutanoGepgSim/1.0"

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json")

        def _page(self, message: str = "") -> None:
            channels = "".join(f'<option value="{c}">{c}</option>' for c in CHANNELS)
            self._send(
                200,
                PAGE.format(message=message, channels=channels).encode(),
                "text/html; charset=utf-8",
            )

        def _body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._json(400, {"error": "bad Content-Length"})
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/health":
                self._json(200, {"status": "ok"})
            elif self.path == "/":
                self._page()
            elif self.path == "/api/v1/controls":
                self._json(200, sim.controls.__dict__)
            elif self.path == "/api/v1/bills":
                with sim.lock:
                    self._json(200, [b.__dict__ for b in sim.bills.values()])
            elif self.path == "/api/v1/payments":
                with sim.lock:
                    self._json(200, [sim.payment_json(p) for p in sim.payments])
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            if body is None:
                return
            if self.path.startswith("/api/bill/") or self.path.startswith("/api/reconciliations/"):
                if sim.controls.down:
                    self._send(503, b"GePG unavailable", "text/plain")
                    return
                status, answer = sim.receive(self.path, body)
                self._send(status, answer, "application/xml")
            elif self.path == "/api/v1/payments":
                try:
                    payload = json.loads(body or b"null")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._json(400, {"error": "body is not JSON"})
                    return
                if not isinstance(payload, dict):
                    self._json(400, {"error": "body must be a JSON object"})
                    return
                self._json(*sim.pay(payload))
            elif self.path == "/pay":
                form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                try:
                    amount: Any = int(form.get("amount", "").replace(",", ""))
                except ValueError:
                    amount = None
                status, answer = sim.pay({**form, "amount": amount})
                if status == 201:
                    msg = (f'<p role="status">Imelipwa / Paid: {answer["amount"]:,} TZS, '
                           f'{html.escape(answer["transaction_id"])}</p>')  # fmt: skip
                else:
                    msg = f'<p role="alert">{html.escape(answer["error"])}</p>'
                self._page(msg)
            elif self.path == "/api/v1/controls":
                try:
                    payload = json.loads(body or b"{}")
                    for name, value in payload.items():
                        if not hasattr(sim.controls, name):
                            raise ValueError(name)
                        setattr(sim.controls, name, type(getattr(sim.controls, name))(value))
                except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
                    self._json(400, {"error": f"bad control: {exc}"})
                    return
                self._json(200, sim.controls.__dict__)
            else:
                self._json(404, {"error": "not found"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stdout.write(f"{self.address_string()} {format % args}\n")
            sys.stdout.flush()

    return GepgSimHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1027)
    parser.add_argument("--callback-url", default="http://127.0.0.1:8004/api/v1/gepg/callback")
    parser.add_argument("--keys-dir", type=Path, default=Path(".data/gepg"))
    parser.add_argument("--control-number-delay", type=float, default=0.5)
    parser.add_argument(
        "--retry", type=float, default=1.0, help="first wait between callback tries"
    )
    args = parser.parse_args(argv)
    p12, _crt = gx.generate_dev_keys(args.keys_dir, "gepg")
    gx.generate_dev_keys(args.keys_dir, "sp")  # the provider's, if it did not start first
    keys = gx.load_pkcs12(p12, None)
    sp_cert = gx.load_certificate(args.keys_dir / "sp.crt")
    sim = Simulator(args.callback_url, keys.private_key, sp_cert)
    sim.controls.control_number_delay_s = args.control_number_delay
    sim.controls.retry_s = args.retry
    server = _Server((args.host, args.port), make_handler(sim))
    server.daemon_threads = True

    def shutdown(signum: int, frame: object) -> None:
        sim.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(
        f"GePG simulator on http://{args.host}:{args.port}/ calling back {args.callback_url}",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        sim.http.close()
        time.sleep(0)


if __name__ == "__main__":
    main()
