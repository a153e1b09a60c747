"""The console's payments page (services/console/payments_pages.py): its pure parts —
amounts in whole TZS with separators, the filters kept to what the form offers and
turned into payments' query, flags and statuses in words in both languages, the payer
only where payments gives a name — and the table as the template renders it."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.console import handlers, web
from services.console import payments_pages as pay
from services.console.domain import PAGE_ROLES, StaffSession, TokenIssuer, may
from services.console.labels import LABELS as WEB_LABELS
from services.console.ports import Answer, ServiceUnavailable
from shared.timeutil import utcnow


def test_amounts_are_whole_shillings_with_thousands_separators() -> None:
    assert pay.tzs(400000) == "400,000"
    assert pay.tzs(1_250_000) == "1,250,000"
    assert pay.tzs(0) == "0"
    assert pay.tzs(None) == ""


def test_the_filters_keep_only_what_the_form_offers() -> None:
    query = {"status": "paid", "category": "ict", "institution": " mof "}
    assert pay.filters_of(query, ["ict", "gov"]) == {
        "status": "paid",
        "category": "ict",
        "institution": "MOF",
    }
    odd = {"status": "stolen", "category": "nobody", "institution": "MOF&status=paid"}
    assert pay.filters_of(odd, ["ict"]) == {"status": "", "category": "", "institution": ""}
    assert pay.filters_of({}, []) == {"status": "", "category": "", "institution": ""}
    assert len(pay.filters_of({"institution": "X" * 80}, [])["institution"]) == 32


def test_the_filters_become_payments_query_with_its_institution_code() -> None:
    filters = {"status": "issued", "category": "", "institution": "MOF"}
    assert pay.bill_params("ev1", filters) == {
        "event_id": "ev1",
        "status": "issued",
        "institution_code": "MOF",
    }
    assert pay.bill_params("ev1", {"status": "", "category": "", "institution": ""}) == {
        "event_id": "ev1"
    }


def test_statuses_and_flags_are_words_in_both_languages() -> None:
    sw, en = pay.LABELS["sw"], pay.LABELS["en"]
    assert set(sw) == set(en)
    assert set(sw["statuses"]) == set(en["statuses"]) == set(pay.BILL_STATUSES)
    assert set(sw["flag_names"]) == set(en["flag_names"])
    assert pay.flag_words(["overpaid", "after_expiry"], "en") == [
        "Over-paid",
        "Paid after the pay-by date",
    ]
    assert pay.flag_words(["overpaid"], "sw") == ["Imelipwa zaidi"]
    assert pay.flag_words(["something_new"], "en") == ["something_new"]


def test_the_payer_is_named_only_where_payments_gives_the_name() -> None:
    assert pay.payer_of({"payer": {"full_name": "Asha Juma"}, "lines": []}) == "Asha Juma"
    lines = [{"reference": "A1", "full_name": "Juma Ali"}, {"reference": "A2", "full_name": None}]
    assert pay.payer_of({"payer": None, "lines": lines}) == "Juma Ali"
    # An auditor's view: payments leaves the names out.
    assert pay.payer_of({"payer": None, "lines": [{"reference": "A1", "full_name": None}]}) is None


def test_organisers_and_auditors_may_open_the_page_registrars_may_not() -> None:
    assert PAGE_ROLES["payments"] == ("organiser", "auditor")
    assert may(frozenset({"organiser"}), "payments")
    assert may(frozenset({"auditor"}), "payments")
    assert not may(frozenset({"registrar"}), "payments")


def _bill(**over: Any) -> dict[str, Any]:
    bill = {
        "id": "b1",
        "event_id": "ev1",
        "status": "paid",
        "amount_tzs": 400000,
        "paid_total_tzs": 450000,
        "control_number": "991234567890",
        "expires_at": "2026-12-01T09:00:00Z",
        "category": "ict",
        "institution_code": "MOF",
        "flags": ["overpaid"],
        "lines": [{"reference": "MK-1", "full_name": "Asha Juma"}],
        "payments": [{"id": "b1:1", "receipt_number": "991234567890-1"}],
        "payer": None,
    }
    return bill | over


def _render(
    lang: str, bills: list[dict[str, Any]], *, documents: bool = True, available: bool = True
) -> str:
    p = pay.LABELS[lang]
    return web.templates.get_template("pay_bills.html.j2").render(
        t=WEB_LABELS[lang],
        lang=lang,
        session=None,
        nav=[],
        lang_url="",
        csrf="",
        path="/events/ev1/payments",
        p=p,
        event={"id": "ev1", "title_sw": "Mkutano", "title_en": "Meeting"},
        filters={"status": "", "category": "", "institution": ""},
        statuses=pay.BILL_STATUSES,
        categories={"ict": "ICT staff"},
        bills=bills,
        available=available,
        summary={"collected_tzs": 450000, "outstanding_tzs": 400000, "expired_tzs": 0, "bills": 2},
        tzs=pay.tzs,
        flag_words=lambda flags: pay.flag_words(flags, lang),
        payer_of=pay.payer_of,
        documents=documents,
        csv_url="/events/ev1/payments.csv?status=paid",
        quote=web.quote,
    )


def test_the_table_shows_a_bill_in_words_and_shillings() -> None:
    unpaid = _bill(
        id="b2", status="issued", paid_total_tzs=0, flags=[], payments=[], control_number="99"
    )
    html = _render("en", [_bill(), unpaid])
    assert "TZS 450,000" in html and "TZS 400,000" in html
    assert ">400,000<" in html and ">450,000<" in html
    assert "Over-paid" in html and ">Paid<" in html and ">Outstanding<" in html
    assert "ICT staff" in html and "Asha Juma" in html
    assert "2026-12-01 12:00" in html  # East Africa Time
    assert "/events/ev1/payments/b1/receipt.pdf?payment=b1%3A1&amp;lang=en" in html
    assert 'href="/events/ev1/payments.csv?status=paid"' in html
    sw = _render("sw", [_bill()])
    assert "Imelipwa zaidi" in sw and "Zilizokusanywa" in sw


def test_without_the_names_or_the_documents_the_table_says_so() -> None:
    html = _render("en", [_bill(lines=[{"reference": "MK-1", "full_name": None}])], documents=False)
    assert "the name is shown to organisers only" in html
    assert "receipt.pdf" not in html and "invoice.pdf" not in html


@pytest.mark.parametrize("lang", ["sw", "en"])
def test_when_payments_does_not_answer_the_page_says_so(lang: str) -> None:
    html = _render(lang, [], available=False)
    assert pay.LABELS[lang]["unavailable"].split("(")[0].strip() in html
    assert 'id="payments-unavailable"' in html and 'id="bills"' not in html


class _Services:
    def __init__(self, answer: Answer | None) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def call(self, service: str, method: str, path: str, **kw: Any) -> Answer:
        self.calls.append({"service": service, "method": method, "path": path, **kw})
        if self.answer is None:
            raise ServiceUnavailable("payments: ConnectError")
        return self.answer


def _request(services: _Services) -> Any:
    issuer = TokenIssuer.from_seed(b"test", issuer="http://console", audience="mkutano", ttl_s=300)
    ctx = handlers.Context(store=None, services=services, issuer=issuer)  # type: ignore[arg-type]
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(context=ctx)))


def _session() -> StaffSession:
    return StaffSession.start(
        "staff:amina", "Amina", frozenset({"organiser"}), "en", utcnow(),
        absolute=timedelta(hours=1),
    )  # fmt: skip


async def test_the_bills_are_asked_of_payments_as_the_person_with_the_filters() -> None:
    services = _Services(Answer(status=200, body=[]))
    params = {"event_id": "ev1", "status": "paid"}
    answer = await pay._payments(_request(services), _session(), "/api/v1/bills", params)
    assert answer is not None and answer.body == []
    (call,) = services.calls
    assert (call["service"], call["method"], call["path"]) == ("payments", "GET", "/api/v1/bills")
    assert call["params"] == params and call["token"].count(".") == 2


@pytest.mark.parametrize("answer", [None, Answer(status=502, body=None)])
async def test_payments_down_or_failing_is_no_answer_rather_than_an_error(
    answer: Answer | None,
) -> None:
    request = _request(_Services(answer))
    assert await pay._payments(request, _session(), "/api/v1/bills", {"event_id": "e"}) is None
