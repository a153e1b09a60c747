"""GePG v1 XML: signing over the exact inner element, verification, hardened parsing,
and the adapter's reading of callbacks (a bad signature is refused before any field)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.payments import gepgxml as gx
from services.payments.adapters import GepgV1Gateway
from services.payments.ports import CallbackRefused, ControlNumberCallback, PaymentCallback


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("gepg")
    sp_p12, sp_crt = gx.generate_dev_keys(d, "sp")
    gepg_p12, gepg_crt = gx.generate_dev_keys(d, "gepg")
    return SimpleNamespace(
        dir=d,
        sp=gx.load_pkcs12(sp_p12, None),
        gepg=gx.load_pkcs12(gepg_p12, None),
        sp_crt=sp_crt,
        gepg_crt=gepg_crt,
    )


@pytest.fixture(scope="module")
def gateway(keys):
    settings = SimpleNamespace(
        gepg_url="http://127.0.0.1:9",
        gepg_key_file=str(keys.dir / "sp.p12"),
        gepg_key_password=None,
        gepg_certificate_file=str(keys.gepg_crt),
        gepg_certificate_password=None,
        gepg_timeout_s=1.0,
        sp_code="SP19988",
        sub_sp_code="1001",
        sp_sys_id="MKUTANO01",
        gfs_code="140206",
    )
    return GepgV1Gateway(settings)


def payment_inner(trx="TRX1", ref="PR1", paid="400000.00") -> str:
    e = gx.el
    return e(
        "gepgPmtSpInfo",
        e(
            "PymtTrxInf",
            e("TrxId", text=trx),
            e("SpCode", text="SP19988"),
            e("PayRefId", text=ref),
            e("BillId", text="bill-1"),
            e("PayCtrNum", text="991080222529"),
            e("BillAmt", text="400000.00"),
            e("PaidAmt", text=paid),
            e("BillPayOpt", text="2"),
            e("CCy", text="TZS"),
            e("TrxDtTm", text="2026-12-01T10:15:00"),
            e("UsdPayChnl", text="MOBILE"),
            e("PspName", text="M-Pesa"),
        ),
    )


def test_signature_is_sha1withrsa_over_the_exact_inner_bytes(keys):
    inner = "<gepgBillSubReqAck><TrxStsCode>7101</TrxStsCode></gepgBillSubReqAck>"
    body = gx.envelope(inner, keys.sp.private_key)
    assert body.startswith(b"<Gepg><gepgBillSubReqAck>")
    message = gx.read_message(body)
    assert message.raw == inner.encode()
    assert message.verified_by(keys.sp.certificate)
    assert not message.verified_by(keys.gepg.certificate)
    # One byte changed in the signed element: the signature no longer verifies.
    tampered = body.replace(b"7101", b"7102")
    assert not gx.read_message(tampered).verified_by(keys.sp.certificate)


def test_entity_expansion_bomb_and_external_entities_are_refused():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b"<Gepg><gepgPmtSpInfo>&lol3;</gepgPmtSpInfo><gepgSignature>x</gepgSignature></Gepg>"
    )
    with pytest.raises(gx.MessageRefused):
        gx.read_message(bomb)
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<Gepg><gepgPmtSpInfo>&e;</gepgPmtSpInfo><gepgSignature>x</gepgSignature></Gepg>"
    )
    with pytest.raises(gx.MessageRefused):
        gx.read_message(external)
    with pytest.raises(gx.MessageRefused):
        gx.read_message(b"<Gepg><oops>")


def test_amounts_are_whole_tzs_never_floats():
    assert gx.amount(400000) == "400000.00"
    assert gx.parse_amount("7885.0") == 7885
    with pytest.raises(gx.MessageRefused):
        gx.parse_amount("10.50")
    assert gx.first_code("7201;7227") == "7227"


def test_adapter_reads_a_signed_payment_and_refuses_a_bad_signature(keys, gateway):
    good = gx.envelope(payment_inner(), keys.gepg.private_key)
    cb = gateway.read_callback(good)
    assert isinstance(cb, PaymentCallback)
    assert cb.payment.amount_tzs == 400000
    assert cb.payment.transaction_id == "TRX1"
    assert cb.payment.paid_at.utcoffset().total_seconds() == 3 * 3600
    # Signed by someone else (the provider's own key, not GePG's): 7303.
    forged = gx.envelope(payment_inner(paid="1.00"), keys.sp.private_key)
    with pytest.raises(CallbackRefused) as refused:
        gateway.read_callback(forged)
    assert refused.value.code == gx.INVALID_SIGNATURE
    ack = gx.read_message(gateway.ack(refused.value.kind, refused.value.code))
    assert ack.tag == "gepgPmtSpInfoAck"
    assert gx.text_of(ack.element, "TrxStsCode") == "7303"
    assert ack.verified_by(keys.sp.certificate)


def test_adapter_reads_a_control_number_and_writes_a_bill_submission(keys, gateway):
    e = gx.el
    inner = e(
        "gepgBillSubResp",
        e(
            "BillTrxInf",
            e("BillId", text="bill-1"),
            e("TrxSts", text="GS"),
            e("PayCntrNum", text="991080222529"),
            e("TrxStsCode", text="7101"),
        ),
    )
    cb = gateway.read_callback(gx.envelope(inner, keys.gepg.private_key))
    assert cb == ControlNumberCallback("bill-1", "991080222529", "7101")
    from tests.unit.test_payments_domain import new_bill

    bill = new_bill(datetime(2026, 12, 1, 8, tzinfo=UTC))
    from services.payments.adapters import bill_submission

    xml = bill_submission(
        bill, sp_code="SP19988", sub_sp_code="1001", sp_sys_id="S", gfs_code="140206"
    )
    message = gx.read_message(gx.envelope(xml, keys.sp.private_key))
    trx = message.element.find("BillTrxInf")
    assert gx.text_of(trx, "BillAmt") == "400000.00"
    assert gx.text_of(trx, "BillPayOpt") == "2"
    assert gx.text_of(trx, "BillExprDt") == "2026-12-08T11:00:00"
    assert message.verified_by(keys.sp.certificate)


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe<Gepg/>", b"<Gepg></Gepg>", b"<Other/>", b"<Gepg><a/><b/></Gepg>", b"x" * 10],
)
def test_anything_else_is_refused_never_an_error(body):
    with pytest.raises(gx.MessageRefused):
        gx.read_message(body)
