"""The console's event editor (categories and questions) turned into registration's API
body, the API's refusals placed beside the form's fields, and the dashboard's payment
figures (and their absence when payments does not answer)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.console import editor, handlers, web
from services.console.domain import StaffSession, TokenIssuer
from services.console.ports import ServiceUnavailable
from services.registration.domain import Category, EventChange, Question
from shared.timeutil import utcnow

T = editor.LABELS["en"]


def form(**fields: str | list[str]) -> dict[str, list[str]]:
    out = {k.replace("__", "-"): v if isinstance(v, list) else [v] for k, v in fields.items()}
    return out


def test_category_rows_become_the_whole_categories_list() -> None:
    body, errors, rows = editor.parse_categories(
        form(
            rows="4",
            cat__0__code="ict_officer",
            cat__0__name_sw="Afisa TEHAMA",
            cat__0__name_en="ICT Officer",
            cat__0__fee_tzs="0",
            cat__0__quota="",
            cat__1__code="old_one",
            cat__1__name_sw="X",
            cat__1__name_en="X",
            cat__1__remove="yes",
            cat__2__code="private_sector",
            cat__2__name_sw="Sekta binafsi",
            cat__2__name_en="Private sector",
            cat__2__fee_tzs="150,000",
            cat__2__quota="40",
            cat__2__requires_approval="yes",
            cat__2__requires_nomination="yes",
        ),  # fmt: skip
        T,
    )
    assert errors == []
    assert rows == [0, 2]  # the removed row and the blank last row are not sent
    assert body == [
        {
            "code": "ict_officer", "name_sw": "Afisa TEHAMA", "name_en": "ICT Officer",
            "fee_tzs": 0, "quota": None, "requires_approval": False,
            "requires_nomination": False,
        },
        {
            "code": "private_sector", "name_sw": "Sekta binafsi", "name_en": "Private sector",
            "fee_tzs": 150_000, "quota": 40, "requires_approval": True,
            "requires_nomination": True,
        },
    ]  # fmt: skip
    # What registration accepts.
    assert [c.fee_tzs for c in EventChange(categories=body).categories or []] == [0, 150_000]


@pytest.mark.parametrize("fee", ["12.5", "-3", "elfu kumi", "1e6"])
def test_a_fee_that_is_not_whole_shillings_is_named_beside_its_field(fee: str) -> None:
    _, errors, _ = editor.parse_categories(
        form(
            rows="1",
            cat__0__code="vip",
            cat__0__name_sw="A",
            cat__0__name_en="B",
            cat__0__fee_tzs=fee,
            cat__0__quota="x",
        ),  # fmt: skip
        T,
    )
    assert {e["field"] for e in errors} == {"cat-0-fee_tzs", "cat-0-quota"}


def test_an_event_keeps_at_least_one_category() -> None:
    _, errors, _ = editor.parse_categories(form(rows="2", cat__0__remove="yes",
                                                 cat__0__code="a1"), T)  # fmt: skip
    assert errors == [{"field": "cat-0-code", "reason": T["at_least_one"]}]


def test_question_rows_with_choices_and_limits_and_categories() -> None:
    existing = [{"id": "diet", "type": "short_text", "label_sw": "Chakula", "label_en": "Diet",
                 "help_en": "Allergies too", "help_sw": "Mzio pia", "max_length": 120}]  # fmt: skip
    body, errors, rows = editor.parse_questions(
        form(
            rows="3",
            q__0__id="diet",
            q__0__type="short_text",
            q__0__label_sw="Chakula",
            q__0__label_en="Diet",
            q__0__choices="",
            q__1__id="workshop",
            q__1__type="single_choice",
            q__1__label_sw="Warsha",
            q__1__label_en="Workshop",
            q__1__required="yes",
            q__1__categories=["ict_officer", "other_officer"],
            q__1__choices="ai | Akili bandia | AI | 30\r\ncloud | Wingu | Cloud\n",
        ),  # fmt: skip
        T,
        existing,
    )
    assert errors == [] and rows == [0, 1]
    assert body[0]["help_en"] == "Allergies too" and body[0]["max_length"] == 120
    assert body[1] == {
        "id": "workshop", "type": "single_choice", "label_sw": "Warsha", "label_en": "Workshop",
        "required": True, "categories": ["ict_officer", "other_officer"],
        "choices": [
            {"code": "ai", "label_sw": "Akili bandia", "label_en": "AI", "limit": 30},
            {"code": "cloud", "label_sw": "Wingu", "label_en": "Cloud", "limit": None},
        ],
    }  # fmt: skip
    questions = EventChange(questions=body).questions or []
    assert isinstance(questions[1], Question) and questions[1].choices[0].limit == 30


def test_a_choice_line_without_its_parts_is_refused_with_its_line_number() -> None:
    _, errors, _ = editor.parse_questions(
        form(
            rows="1",
            q__0__id="w",
            q__0__type="single_choice",
            q__0__label_sw="W",
            q__0__label_en="W",
            q__0__choices="ai | AI\ncloud | Wingu | Cloud | many",
        ),  # fmt: skip
        T,
    )
    assert [e["reason"] for e in errors] == [
        T["bad_choice"].format(n=1),
        T["bad_choice"].format(n=2),
    ]
    assert {e["field"] for e in errors} == {"q-0-choices"}


def test_the_api_refusals_land_beside_the_form_row_they_came_from() -> None:
    fields = [
        {"field": "categories.1.fee_tzs", "reason": "Input should be greater than or equal to 0"},
        {"field": "categories.0", "reason": "duplicate code"},
        {"field": "categories", "reason": "too many"},
    ]
    assert editor.api_errors(fields, "cat", "categories", [0, 3]) == [
        {"field": "cat-3-fee_tzs", "reason": fields[0]["reason"]},
        {"field": "cat-0-code", "reason": "duplicate code"},
        {"field": "cat-0-code", "reason": "too many"},
    ]
    q = editor.api_errors(
        [{"field": "questions.0.choices.1.code", "reason": "bad"}], "q", "questions", [2]
    )
    assert q == [{"field": "q-2-choices", "reason": "bad"}]


def test_the_form_shows_what_the_event_has_and_parses_back_to_it() -> None:
    categories = [
        Category(
            code="vip",
            name_sw="Wageni",
            name_en="Guests",
            fee_tzs=50_000,
            quota=10,
            requires_approval=True,
        ).model_dump()  # fmt: skip
    ]
    values = editor.category_values(categories)
    assert values["rows"] == ["2"]  # one blank row to add a category
    assert editor.parse_categories(values, T)[0] == categories
    questions = [
        {"id": "w", "type": "multiple_choice", "label_sw": "W", "label_en": "W",
         "required": False, "categories": ["vip"], "max_choices": 2,
         "choices": [{"code": "a", "label_sw": "A", "label_en": "A", "limit": 5}]},
    ]  # fmt: skip
    parsed = editor.parse_questions(editor.question_values(questions), T, questions)[0]
    assert parsed == questions


def test_the_preview_names_each_category_added_changed_or_removed() -> None:
    before = [{"code": "a1", "name_en": "A", "fee_tzs": 0, "quota": None}]
    after = [
        {"code": "a1", "name_en": "A", "fee_tzs": 0, "quota": None},
        {"code": "b1", "name_en": "B", "fee_tzs": 150_000, "quota": 40},
    ]

    def describe(c: dict[str, Any]) -> str:
        return editor.describe_category(c, T, "en")

    assert editor.changes_of(before, after, "code", describe) == [
        ("b1", "—", "B (b1) · TZS 150,000 · Reserved seats (empty = no limit): 40")
    ]
    assert editor.changes_of(after, before, "code", describe)[0][2] == "—"


# -- the dashboard's payments ----------------------------------------------------------------


class FakePayments:
    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str | None]] = []

    async def bills_summary(self, event_id: str, *, token: str | None) -> dict[str, Any]:
        self.calls.append((event_id, token))
        if self.answer is None:
            raise ServiceUnavailable("payments: ConnectError")
        return self.answer


def _ctx(payments: FakePayments | None) -> handlers.Context:
    issuer = TokenIssuer.from_seed(b"test", issuer="http://console", audience="mkutano", ttl_s=300)
    return handlers.Context(store=None, services=None, issuer=issuer, payments=payments)  # type: ignore[arg-type]


def _session() -> StaffSession:
    return StaffSession.start(
        "staff:amina",
        "Amina",
        frozenset({"organiser"}),
        "en",
        utcnow(),
        absolute=timedelta(hours=1),
    )


async def test_the_summary_is_asked_as_the_person_signed_in() -> None:
    payments = FakePayments(
        {
            "bills": 3,
            "collected_tzs": 300_000,
            "outstanding_tzs": 150_000,
            "expired_tzs": 50_000,
            "by_status": {"paid": 2, "issued": 1},
        }  # fmt: skip
    )
    summary = await handlers.payments_summary(_ctx(payments), _session(), "ev1")
    assert summary is not None and summary["collected_tzs"] == 300_000
    (event_id, token), = payments.calls  # fmt: skip
    assert event_id == "ev1" and token and token.count(".") == 2


async def test_payments_unreachable_gives_no_figures_rather_than_an_error() -> None:
    assert await handlers.payments_summary(_ctx(FakePayments(None)), _session(), "ev1") is None
    assert await handlers.payments_summary(_ctx(None), _session(), "ev1") is None


@pytest.mark.parametrize("lang", ["sw", "en"])
def test_the_dashboard_shows_the_amounts_or_says_they_are_unavailable(lang: str) -> None:
    template = web.templates.get_template("_payments.html.j2")
    shown = template.render(
        lang=lang,
        payments={"collected_tzs": 1_250_000, "outstanding_tzs": 150_000, "expired_tzs": 0},
    )
    assert "TZS 1,250,000" in shown and "TZS 150,000" in shown and 'id="expired">TZS 0' in shown
    missing = template.render(lang=lang, payments=None)
    assert 'id="payments-unavailable"' in missing and "TZS" not in missing
    assert ("unavailable" if lang == "en" else "hazipatikani") in missing


def test_the_dev_stack_and_the_cluster_point_the_console_at_payments() -> None:
    from deploy import embedded

    env = embedded.console_env({"console": 8005, "payments": 8004, "registration": 8001})
    assert env["CONSOLE_PAYMENTS_URL"] == "http://127.0.0.1:8004"
    config = (Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "config.yaml").read_text()
    assert "CONSOLE_PAYMENTS_URL: http://mkutano-payments" in config
