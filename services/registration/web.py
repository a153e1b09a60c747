"""The registration page: a bilingual, accessible HTML form served by the service.

Works without JavaScript: ``GET /register/{event_id}?lang=sw|en`` renders the form,
``POST /register/{event_id}`` (form-urlencoded) runs the same use case as the JSON API and
renders the reference, or the form again with each error next to its field.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from services.registration import api, certificate_pdf, handlers
from services.registration.api import limit_registrations_by_address, limit_registrations_by_email
from services.registration.domain import (
    NOMINATION_CSV_COLUMNS,
    NOMINATION_FIELDS,
    DomainError,
    Event,
    RegistrationChange,
    RegistrationRequest,
    nominable_categories,
    nomination_payload,
    self_service_path,
    verify_path,
)
from shared.errors import ApiError, status_for
from shared.http import body_limit
from shared.ratelimit import Limit, client_address, enforce
from shared.timeutil import EAT

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

FIELDS = (
    "full_name",
    "email",
    "phone",
    "institution",
    "position",
    "category",
    "region",
    "accessibility_needs",
    "accessibility_other",
    "dietary_needs",
    "professional_registration_number",
    "language",
    "consent",
)

LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "html_lang": "sw",
        "title": "Usajili",
        "register_for": "Jisajili kwa",
        "other_language": ("en", "English"),
        "required": "inahitajika",
        "optional": "si lazima",
        "full_name": "Jina kamili",
        "email": "Barua pepe",
        "phone": "Namba ya simu",
        "phone_hint": "Mfano: 0712 345 678 au +255 712 345 678",
        "institution": "Taasisi",
        "position": "Cheo",
        "cadre": "Kada",
        "category": "Kundi la mshiriki",
        "free": "bila malipo",
        "fee": "ada TSh {fee}",
        "nominated": "{names}: washiriki wa makundi haya huteuliwa na taasisi zao.",
        "only_for": "Kwa: {names}",
        "full": "imejaa",
        "places_left": "nafasi {left} zimebaki",
        "yes": "Ndiyo",
        "no": "Hapana",
        "questions": "Maswali ya tukio",
        "choose": "— Chagua —",
        "region": "Mkoa",
        "accessibility_needs": "Mahitaji ya ufikivu",
        "accessibility_other": "Mahitaji mengine ya ufikivu",
        "dietary_needs": "Mahitaji ya chakula",
        "professional_registration_number": "Namba ya usajili wa kitaaluma (kwa saa za CPD, "
        "k.m. Tume ya TEHAMA)",
        "language": "Lugha ya mawasiliano",
        "consent": "Ninakubali taarifa zangu binafsi zichakatwe kwa ajili ya usajili na "
        "mawasiliano ya tukio hili (Sheria ya Ulinzi wa Taarifa Binafsi, 2022).",
        "submit": "Jisajili",
        "errors_title": "Tafadhali rekebisha yafuatayo",
        "error_prefix": "Hitilafu",
        "closed": "Usajili wa tukio hili haupo wazi kwa sasa.",
        "not_found": "Tukio hili halipo.",
        "done_title": "Umesajiliwa",
        "reference": "Namba ya usajili",
        "status": "Hali",
        "manage_token": "Tokeni ya kusimamia usajili (itunze; inaonyeshwa mara moja tu)",
        "email_sent": "Tutakutumia barua pepe ya uthibitisho.",
        "manage_link": "Simamia usajili wako (kwa namba ya usajili na tokeni)",
        "seats_left": "Nafasi zilizobaki",
        "venue": "Mahali",
        "dates": "Tarehe",
        "cadres": {
            "permanent_secretary": "Katibu Mkuu",
            "accounting_officer": "Afisa Masuuli",
            "director_or_head_of_ict": "Mkurugenzi / Mkuu wa Idara au Kitengo cha TEHAMA",
            "ict_officer": "Afisa TEHAMA",
            "other_officer": "Afisa wa kada nyingine",
        },
        "needs": {
            "sign_language_interpreter": "Mkalimani wa lugha ya alama",
            "braille": "Maandishi ya nukta nundu (breli)",
            "wheelchair_access": "Njia ya kiti cha magurudumu",
            "other": "Mengineyo",
        },
        "languages": {"sw": "Kiswahili", "en": "Kiingereza"},
        "statuses": {
            "confirmed": "Imethibitishwa",
            "waitlisted": "Kwenye orodha ya kusubiri",
            "pending_approval": "Inasubiri kuidhinishwa",
            "pending_payment": "Inasubiri malipo",
        },
        "reasons": {
            "required": "Sehemu hii inahitajika.",
            "too_short": "Maandishi ni mafupi mno.",
            "email": "Weka barua pepe sahihi, mfano jina@taasisi.go.tz.",
            "phone": "Weka namba ya simu sahihi, mfano 0712 345 678.",
            "consent": "Unahitaji kukubali ili kujisajili.",
            "too_long": "Maandishi ni marefu mno.",
            "invalid": "Thamani hii si sahihi.",
        },
        "codes": {
            "already_registered": "Barua pepe hii imeshasajiliwa kwa tukio hili. "
            "Tumetuma uthibitisho tena kwenye anwani iliyosajiliwa.",
            "registration_closed": "Usajili wa tukio hili haupo wazi kwa sasa.",
            "event_ended": "Tukio hili limekwisha; usajili umefungwa.",
            "event_cancelled": "Tukio hili limefutwa.",
            "cadre_not_admitted": "Tukio hili haliko wazi kwa kada yako.",
            "nomination_required": "Washiriki wa kundi hili huteuliwa na taasisi zao; "
            "wasiliana na mratibu wa taasisi yako.",
            "unknown_category": "Chagua kundi la mshiriki kutoka kwenye orodha.",
            "choice_full": "Nafasi za chaguo hili zimejaa; chagua jingine.",
        },
        "answer_reasons": {
            "required": "Sehemu hii inahitajika.",
            "must be a number": "Weka namba.",
            "must be at most": "Namba isizidi {n}.",
            "must be at least": "Namba isipungue {n}.",
            "must be a date (YYYY-MM-DD)": "Weka tarehe.",
            "must be yes or no": "Chagua ndiyo au hapana.",
            "is not one of the choices": "Chagua kutoka kwenye orodha.",
            "characters": "Maandishi ni marefu mno.",
        },
    },
    "en": {
        "html_lang": "en",
        "title": "Registration",
        "register_for": "Register for",
        "other_language": ("sw", "Kiswahili"),
        "required": "required",
        "optional": "optional",
        "full_name": "Full name",
        "email": "Email",
        "phone": "Phone number",
        "phone_hint": "For example: 0712 345 678 or +255 712 345 678",
        "institution": "Institution",
        "position": "Position",
        "cadre": "Cadre",
        "category": "Participant category",
        "free": "free",
        "fee": "fee TSh {fee}",
        "nominated": "{names}: participants of these categories are nominated by their "
        "institutions.",
        "only_for": "Only for: {names}",
        "full": "full",
        "places_left": "{left} places left",
        "yes": "Yes",
        "no": "No",
        "questions": "The event's questions",
        "choose": "— Choose —",
        "region": "Region",
        "accessibility_needs": "Accessibility needs",
        "accessibility_other": "Other accessibility needs",
        "dietary_needs": "Dietary needs",
        "professional_registration_number": "Professional registration number (for CPD "
        "hours, e.g. ICT Commission)",
        "language": "Language for messages",
        "consent": "I agree to the processing of my personal data for the registration and "
        "communication about this event (Personal Data Protection Act, 2022).",
        "submit": "Register",
        "errors_title": "Please correct the following",
        "error_prefix": "Error",
        "closed": "Registration for this event is not open now.",
        "not_found": "There is no such event.",
        "done_title": "You are registered",
        "reference": "Registration reference",
        "status": "Status",
        "manage_token": "Token to manage your registration (keep it; it is shown only once)",
        "email_sent": "We will send you a confirmation email.",
        "manage_link": "Manage your registration (with the reference and token)",
        "seats_left": "Seats left",
        "venue": "Venue",
        "dates": "Dates",
        "cadres": {
            "permanent_secretary": "Permanent Secretary",
            "accounting_officer": "Accounting Officer",
            "director_or_head_of_ict": "Director / Head of ICT department or unit",
            "ict_officer": "ICT Officer",
            "other_officer": "Officer of another cadre",
        },
        "needs": {
            "sign_language_interpreter": "Sign-language interpreter",
            "braille": "Braille",
            "wheelchair_access": "Wheelchair access",
            "other": "Other",
        },
        "languages": {"sw": "Swahili", "en": "English"},
        "statuses": {
            "confirmed": "Confirmed",
            "waitlisted": "On the waiting list",
            "pending_approval": "Awaiting approval",
            "pending_payment": "Awaiting payment",
        },
        "reasons": {
            "required": "This field is required.",
            "too_short": "This text is too short.",
            "email": "Enter a valid email address, e.g. name@institution.go.tz.",
            "phone": "Enter a valid phone number, e.g. 0712 345 678.",
            "consent": "You need to agree in order to register.",
            "too_long": "This text is too long.",
            "invalid": "This value is not valid.",
        },
        "codes": {
            "already_registered": "This email is already registered for this event. "
            "We have sent the confirmation again to the address on file.",
            "registration_closed": "Registration for this event is not open now.",
            "event_ended": "This event has ended; registration is closed.",
            "event_cancelled": "This event has been cancelled.",
            "cadre_not_admitted": "This event is not open to your cadre.",
            "nomination_required": "Participants of this category are nominated by their "
            "institution; ask your institution's contact person.",
            "unknown_category": "Choose a participant category from the list.",
            "choice_full": "The places on this choice are gone; choose another.",
        },
        "answer_reasons": {},
    },
}


def _lang(value: str | None) -> str:
    return value if value in LABELS else "sw"


# The fields a person must fill in; left blank, each says "required", never "invalid".
REQUIRED = ("full_name", "email", "phone", "institution", "position", "category")


def _reason_key(field: str, error: dict[str, Any], payload: dict[str, Any]) -> str:
    kind = error.get("type", "")
    blank = not str(payload.get(field) or "").strip()
    if kind == "missing" or (field in REQUIRED and blank):
        return "required"
    if field in ("email", "phone", "consent"):
        return field
    if kind == "string_too_short":
        return "too_short"
    if kind == "string_too_long":
        return "too_long"
    return "invalid"


def _field_errors(
    exc: ValidationError, labels: dict[str, Any], payload: dict[str, Any]
) -> dict[str, str]:
    """Each field's first problem, in the form's order (the summary lists them so)."""
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        field = loc[0] if loc else "form"
        if field not in FIELDS:
            field = "form"
        found.setdefault(field, labels["reasons"][_reason_key(field, error, payload)])
    return _in_form_order(found)


def _in_form_order(found: dict[str, str], questions: list[str] | None = None) -> dict[str, str]:
    names = ("form", *FIELDS[: FIELDS.index("region")], *(questions or []), *FIELDS)
    order: dict[str, int] = {}
    for i, name in enumerate(names):
        order.setdefault(name, i)
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def _answer_reason(labels: dict[str, Any], reason: str) -> str:
    """A domain reason for an answer, in the page's language where known."""
    for key, text in labels["answer_reasons"].items():
        if reason == key or reason.startswith(key) or reason.endswith(key):
            return text.format(n=reason.rsplit(" ", 1)[-1])
    return reason[:1].upper() + reason[1:] + "."


def _form_answers(form: Any, event: Event, category: str) -> dict[str, Any]:
    """The answers typed into the form, for the questions the category is asked (the
    others are on the page too, without JavaScript to hide them: ignored)."""
    raw: dict[str, Any] = {}
    for question in event.questions_for(category):
        name = f"answers.{question.id}"
        if question.type == "multiple_choice":
            values = [str(v) for v in form.getlist(name)]
            if values:
                raw[question.id] = values
        elif str(form.get(name) or "").strip():
            raw[question.id] = str(form.get(name))
    return raw


def _typed_answers(form: Any, event: Event) -> dict[str, Any]:
    """What was typed for each of the event's questions, to show the form again."""
    return {
        f"answers.{q.id}": (
            [str(v) for v in form.getlist(f"answers.{q.id}")]
            if q.type == "multiple_choice"
            else str(form.get(f"answers.{q.id}") or "")
        )
        for q in event.questions
    }


def _check_form_answers(
    form: Any, event: Event, payload: dict[str, Any], labels: dict[str, Any]
) -> dict[str, str]:
    """The form's answers for the payload's category, checked and put in
    ``payload["answers"]``; the problems by field (``answers.<id>``), in the page's words.
    An unknown category is left to the request's own validation."""
    category = str(payload.get("category") or "")
    if event.category(category) is None:
        return {}
    try:
        payload["answers"] = event.check_answers(
            category, _form_answers(form, event, category), typed=True
        )
    except DomainError as exc:
        return {
            problem["field"]: _answer_reason(labels, problem["reason"])
            for problem in (exc.details or {}).get("fields", [])
        }
    return {}


def _form_payload(form: Any, lang: str) -> dict[str, Any]:
    """The form as a RegistrationRequest body; blank optional fields are left out."""
    payload: dict[str, Any] = {}
    for name in ("full_name", "email", "phone", "institution", "position", "category"):
        payload[name] = str(form.get(name) or "")
    for name in (
        "region",
        "accessibility_other",
        "dietary_needs",
        "professional_registration_number",
    ):
        value = str(form.get(name) or "").strip()
        if value:
            payload[name] = value
    payload["accessibility_needs"] = [str(v) for v in form.getlist("accessibility_needs")]
    payload["language"] = str(form.get("language") or lang)
    if form.get("consent") == "yes":
        payload["consent"] = {"accepted": True}
    return payload


def _event_context(event: Event, lang: str) -> dict[str, Any]:
    starts, ends = event.starts_at.astimezone(EAT), event.ends_at.astimezone(EAT)
    return {
        "id": event.id,
        "title": event.title_en if lang == "en" else event.title_sw,
        "description": event.description_en if lang == "en" else event.description_sw,
        "venue": event.venue,
        "city": event.city,
        "dates": f"{starts:%d/%m/%Y} – {ends:%d/%m/%Y}",
        "seats_left": event.seats_left,
        "admitted_cadres": event.admitted_cadres,
        "categories": [
            {
                "code": c.code,
                "name": c.name(lang),
                "fee": c.fee_tzs,
                "full": event.category_seats_left(c.code) == 0,
            }
            for c in event.categories
            if not c.requires_nomination
            and (not event.admitted_cadres or c.code in event.admitted_cadres)
        ],
        "nominated": ", ".join(c.name(lang) for c in event.categories if c.requires_nomination),
        "questions": [_question_context(event, q, lang) for q in event.questions],
    }


def _answers_shown(
    event: Event, registration: Any, labels: dict[str, Any], lang: str
) -> list[tuple[str, str]]:
    """The participant's answers as their page shows them: the question, the answer."""
    shown: list[tuple[str, str]] = []
    for question in event.questions:
        value = (registration.answers or {}).get(question.id)
        if value is None:
            continue
        if isinstance(value, bool):
            text = labels["yes"] if value else labels["no"]
        elif question.choices:
            codes = value if isinstance(value, list) else [value]
            text = ", ".join(
                (c.label(lang) if (c := question.choice(code)) else str(code)) for code in codes
            )
        else:
            text = str(value)
        shown.append((question.label(lang), text))
    return shown


def _question_context(event: Event, question: Any, lang: str) -> dict[str, Any]:
    names = {c.code: c.name(lang) for c in event.categories}
    return {
        "id": question.id,
        "name": f"answers.{question.id}",
        "type": question.type,
        "label": question.label(lang),
        "help": question.help(lang),
        "required": question.required,
        "max_length": question.max_length or (200 if question.type == "short_text" else 2000),
        "min": question.min_value,
        "max": question.max_value,
        "only_for": ", ".join(names.get(c, c) for c in question.categories),
        "choices": [
            {
                "code": c.code,
                "label": c.label(lang),
                "left": event.choice_places_left(question.id, c.code),
            }
            for c in question.choices
        ],
    }


def _render(
    name: str, status: int, *, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=headers)


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


async def _load_event(request: Request, event_id: str) -> Event | None:
    try:
        return await handlers.get_public_event(_ctx(request), event_id[:64])
    except DomainError:
        return None


@router.get("/register/{event_id}", response_class=HTMLResponse)
async def registration_form(event_id: str, request: Request, lang: str | None = None) -> Response:
    """The empty form, in Swahili by default or English with ``?lang=en``."""
    language = _lang(lang)
    labels = LABELS[language]
    event = await _load_event(request, event_id)
    if event is None:
        return _render("message.html.j2", 404, t=labels, lang=language, message=labels["not_found"])
    return _render(
        "register.html.j2",
        200,
        t=labels,
        lang=language,
        event=_event_context(event, language),
        values={"language": language},
        errors={},
        closed=_closed_message(request, event, labels),
    )


def _closed_message(request: Request, event: Event, labels: dict[str, Any]) -> str | None:
    """What the page says instead of the form when the event takes no registration now
    (ended, window closed or not yet open, cancelled), else None."""
    refusal = event.registration_refusal(_ctx(request).clock())
    if refusal is None:
        return None
    return labels["codes"].get(refusal.code, labels["closed"])


@router.post("/register/{event_id}", response_class=HTMLResponse)
async def submit_registration(event_id: str, request: Request, lang: str | None = None) -> Response:
    """Register from the form; render the reference, or the form with its errors."""
    form = await request.form()
    language = _lang(lang or str(form.get("page_lang") or ""))
    labels = LABELS[language]
    event = await _load_event(request, event_id)
    if event is None:
        return _render("message.html.j2", 404, t=labels, lang=language, message=labels["not_found"])
    page = {"t": labels, "lang": language, "event": _event_context(event, language)}
    closed = _closed_message(request, event, labels)
    if closed is not None:  # ended or closed meanwhile: say so, without the form
        return _render(
            "register.html.j2",
            409,
            **page,
            values={},
            errors={},
            closed=closed,
        )
    payload = _form_payload(form, language)
    values = {**payload, "consent": "consent" in payload, **_typed_answers(form, event)}
    question_fields = [f"answers.{q.id}" for q in event.questions]
    answer_errors = _check_form_answers(form, event, payload, labels)
    try:
        await limit_registrations_by_address(request)
    except ApiError as exc:
        return _too_many(labels, language, exc)
    try:
        registration = RegistrationRequest.model_validate(payload)
    except ValidationError as exc:
        errors = {**_field_errors(exc, labels, payload), **answer_errors}
        return _render(
            "register.html.j2",
            422,
            **page,
            values=values,
            errors=_in_form_order(errors, question_fields),
        )
    if answer_errors:
        return _render(
            "register.html.j2",
            422,
            **page,
            values=values,
            errors=_in_form_order(answer_errors, question_fields),
        )
    # The same use case as the JSON API; a form carries no Idempotency-Key.
    try:
        outcome = await handlers.register_idempotently(
            _ctx(request),
            event.id,
            registration,
            admit=lambda: limit_registrations_by_email(request, registration.email),
        )
    except ApiError as exc:
        return _too_many(labels, language, exc)
    if outcome.error is not None:
        exc = outcome.error
        message = labels["codes"].get(exc.code, exc.message)
        # A rule about one field is shown beside it (the category, a full choice).
        where = exc.field if exc.field in ("category", *question_fields) else "form"
        return _render(
            "register.html.j2",
            status_for(exc.code, api.ERROR_STATUSES),
            **page,
            values=values,
            errors={where: message},
        )
    result = outcome.registered
    assert result is not None
    return _render(
        "registered.html.j2",
        201,
        **page,
        reference=result.reference,
        status_label=labels["statuses"].get(result.status, result.status),
        manage_token=result.manage_token,
        waitlist_position=result.waitlist_position,
    )


def _too_many(labels: dict[str, Any], language: str, exc: ApiError) -> HTMLResponse:
    return _render(
        "message.html.j2", 429, t=labels, lang=language, message=exc.message, headers=exc.headers
    )


@router.get("/static/registration.css")
async def stylesheet() -> Response:
    """The page's own stylesheet (no external resources)."""
    css = (HERE / "static" / "registration.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/static/registration.js")
async def script() -> Response:
    """The pages' one script, an enhancement only: it moves focus to an error summary."""
    js = (HERE / "static" / "registration.js").read_text(encoding="utf-8")
    return Response(js, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


# -- the self-service pages ------------------------------------------------------------------
#
# ``GET /my`` asks for the reference and manage token; ``POST /my`` checks them and
# redirects (303) to ``/my/{link}``, a signed self-service link (the one emails carry opens
# the same page). Every answer is ``Cache-Control: no-store``; every successful POST
# redirects to a GET; every POST carries a form token (the start form: a SameSite=Strict
# cookie's value; the others: an HMAC tied to the link), so no other site can post them.

MY_LABELS: dict[str, dict[str, str]] = {
    "sw": {
        "title": "Simamia usajili wako",
        "start_intro": "Weka namba ya usajili na tokeni uliyopewa ulipojisajili. "
        "Barua pepe zetu pia zina kiungo kinachofungua ukurasa huu moja kwa moja.",
        "reference": "Namba ya usajili",
        "reference_hint": "Mfano: MK-ABCDE-FGHJK",
        "token": "Tokeni ya kusimamia usajili",
        "token_hint": "Ulionyeshwa mara moja ulipojisajili.",
        "open": "Fungua usajili wangu",
        "view_title": "Usajili wako",
        "ticket": "Tiketi (msimbo wa QR)",
        "fixed_hint": "Kubadilisha jina, barua pepe, taasisi au kada, wasiliana na waandaaji.",
        "change_title": "Badilisha taarifa zako",
        "save": "Hifadhi mabadiliko",
        "data_title": "Pakua taarifa zako",
        "data_intro": "Taarifa zote tunazohifadhi kukuhusu, katika faili la JSON.",
        "download": "Pakua taarifa zangu (JSON)",
        "cancel_title": "Ghairi usajili",
        "confirm_cancel": "Ndiyo, ghairi usajili wangu. Nafasi yangu itapewa aliye kwenye "
        "orodha ya kusubiri.",
        "cancel": "Ghairi usajili wangu",
        "erase_title": "Futa taarifa zako binafsi",
        "erase_intro": "Usajili hai utaghairiwa kwanza. Jina, barua pepe, simu na taarifa "
        "nyingine zitafutwa, na kiungo hiki hakitafanya kazi tena. Hifadhi namba ya usajili.",
        "confirm_erase": "Ndiyo, futa taarifa zangu binafsi. Siwezi kutendua hili.",
        "erase": "Futa taarifa zangu",
        "confirm_cancel_label": "Uthibitisho wa kughairi",
        "confirm_erase_label": "Uthibitisho wa kufuta",
        "must_confirm": "Weka alama kuthibitisha.",
        "no_match": "Hakuna usajili unaolingana na namba hii na tokeni hii.",
        "not_found": "Kiungo hiki hakifungui usajili wowote; huenda muda wake umekwisha. "
        "Weka namba ya usajili na tokeni.",
        "start_again": "Fungua kwa namba ya usajili na tokeni",
        "form_expired": "Fomu hii haitumiki tena. Fungua ukurasa tena kisha ujaribu tena.",
        "done_updated": "Mabadiliko yako yamehifadhiwa.",
        "done_cancelled": "Usajili wako umeghairiwa.",
        "done_erased": "Taarifa zako binafsi zimefutwa.",
    },
    "en": {
        "title": "Manage your registration",
        "start_intro": "Enter the reference and the token you were given when you "
        "registered. Our emails also carry a link that opens this page directly.",
        "reference": "Registration reference",
        "reference_hint": "For example: MK-ABCDE-FGHJK",
        "token": "Manage token",
        "token_hint": "It was shown once when you registered.",
        "open": "Open my registration",
        "view_title": "Your registration",
        "ticket": "Ticket (QR code)",
        "fixed_hint": "To change your name, email, institution or cadre, contact the organisers.",
        "change_title": "Change your details",
        "save": "Save changes",
        "data_title": "Download your data",
        "data_intro": "Everything we hold about you, as a JSON file.",
        "download": "Download my data (JSON)",
        "cancel_title": "Cancel your registration",
        "confirm_cancel": "Yes, cancel my registration. My seat goes to the first person "
        "on the waiting list.",
        "cancel": "Cancel my registration",
        "erase_title": "Erase your personal data",
        "erase_intro": "An active registration is cancelled first. Your name, email, phone "
        "and other details are erased, and this link stops working. Keep your reference.",
        "confirm_erase": "Yes, erase my personal data. I cannot undo this.",
        "erase": "Erase my data",
        "confirm_cancel_label": "Confirmation to cancel",
        "confirm_erase_label": "Confirmation to erase",
        "must_confirm": "Tick the box to confirm.",
        "no_match": "No registration matches this reference and token.",
        "not_found": "This link opens no registration; it may have expired. Enter your "
        "reference and token instead.",
        "start_again": "Open with the reference and token",
        "form_expired": "This form is no longer valid. Open the page again and retry.",
        "done_updated": "Your changes are saved.",
        "done_cancelled": "Your registration is cancelled.",
        "done_erased": "Your personal data has been erased.",
    },
}
NO_STORE = {"Cache-Control": "no-store"}
CSRF_COOKIE = "mkutano_form"
START_LINK_VALIDITY = timedelta(hours=1)  # a sign-in with reference and token
STATUS_LABELS = {
    "sw": {"cancelled": "Imeghairiwa", "rejected": "Imekataliwa"},
    "en": {"cancelled": "Cancelled", "rejected": "Rejected"},
}


def _my_labels(language: str) -> dict[str, Any]:
    """The registration page's labels and the self-service ones (fields keep their names;
    the confirmations are named as the error summary lists them)."""
    mine = MY_LABELS[language]
    return {
        **LABELS[language],
        **mine,
        "confirm_cancel": mine["confirm_cancel_label"],
        "confirm_erase": mine["confirm_erase_label"],
        "confirm_cancel_text": mine["confirm_cancel"],
        "confirm_erase_text": mine["confirm_erase"],
    }


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _see_other(url: str) -> Response:
    return Response(status_code=303, headers={"Location": url, **NO_STORE})


async def _self_service_limited(request: Request, language: str) -> Response | None:
    """Self-service pages share the JSON self-service API's per-address limit."""
    try:
        await api.limit_self_service(request)
    except ApiError as exc:
        return _private(_too_many(LABELS[language], language, exc))
    return None


def _start_page(
    request: Request,
    language: str,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(18)
    response = _render(
        "my_start.html.j2",
        status,
        headers=NO_STORE,
        t=LABELS[language],
        my=_my_labels(language),
        lang=language,
        lang_url=f"/my?lang={LABELS[language]['other_language'][0]}",
        csrf=csrf,
        errors=errors or {},
        values=values or {},
        notice=notice,
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/my",
        max_age=3600,
    )
    return response


def _unknown_link(language: str) -> Response:
    """The one answer for a tampered, expired or unknown link (or an erased registration)."""
    labels = _my_labels(language)
    return _render(
        "message.html.j2",
        404,
        headers=NO_STORE,
        t={**LABELS[language], "title": labels["title"]},
        lang=language,
        lang_url=f"/my?lang={LABELS[language]['other_language'][0]}",
        message=labels["not_found"],
        next_url=f"/my?lang={language}",
        next_label=labels["start_again"],
    )


@router.get("/my", response_class=HTMLResponse)
async def self_service_start(
    request: Request, lang: str | None = None, done: str | None = None
) -> Response:
    """Manage a registration: the form for the reference and the manage token."""
    language = _lang(lang)
    notice = MY_LABELS[language]["done_erased"] if done == "erased" else None
    return _start_page(request, language, notice=notice)


@router.post("/my", response_class=HTMLResponse)
async def self_service_sign_in(request: Request, lang: str | None = None) -> Response:
    """Check the reference and manage token; open the page with a short-lived link."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    form = await request.form()
    labels = _my_labels(language)
    cookie = request.cookies.get(CSRF_COOKIE)
    posted = str(form.get("csrf") or "")
    if not cookie or not secrets.compare_digest(cookie.encode(), posted.encode()):
        return _start_page(request, language, 403, errors={"form": labels["form_expired"]})
    reference = str(form.get("reference") or "").strip()[:32]
    token = str(form.get("token") or "").strip()[:128]
    errors = {
        name: labels["reasons"]["required"]
        for name, value in (("reference", reference), ("token", token))
        if not value
    }
    if errors:
        return _start_page(request, language, 422, errors=errors, values={"reference": reference})
    try:
        link = await handlers.sign_in_self_service(
            _ctx(request), reference, token, valid_for=START_LINK_VALIDITY
        )
    except DomainError:
        return _start_page(
            request,
            language,
            404,
            errors={"form": labels["no_match"]},
            values={"reference": reference},
        )
    return _see_other(f"{self_service_path(link)}?lang={language}")


async def _own_page(
    request: Request,
    link: str,
    own: handlers.OwnRegistration,
    language: str,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
) -> Response:
    ctx = _ctx(request)
    registration, event = own.registration, own.event
    labels = LABELS[language]
    status_label = {**labels["statuses"], **STATUS_LABELS[language]}.get(
        registration.status, registration.status
    )
    current = {
        "phone": registration.phone,
        "position": registration.position,
        "accessibility_needs": registration.accessibility_needs,
        "accessibility_other": registration.accessibility_other,
        "dietary_needs": registration.dietary_needs,
        "language": registration.language,
    }
    my = _my_labels(language)
    return _render(
        "my.html.j2",
        status,
        headers=NO_STORE,
        t={**labels, "title": my["view_title"]},
        my=my,
        lang=language,
        lang_url=f"{self_service_path(link)}?lang={labels['other_language'][0]}",
        base=self_service_path(link),
        csrf=ctx.links.form_token(link),
        event=_event_context(event, language),
        reg=registration,
        category_name=(
            found.name(language)
            if (found := event.category(registration.category)) is not None
            else labels["cadres"].get(registration.cadre, registration.cadre)
        ),
        answers_shown=_answers_shown(event, registration, labels, language),
        status_label=status_label,
        ticket=registration.ticket(ctx.signer),
        active=registration.is_active,
        values={**current, **(values or {})},
        errors=errors or {},
        notice=notice,
        after=await _after_event(ctx, registration, language),
        payment=_payment_view(registration, language),
    )


# Payments (issue 14): what a participant sees of their bill on the /my page.
PAYMENT_LABELS = {
    "sw": {
        "title": "Malipo",
        "control_number": "Namba ya malipo",
        "amount_due": "Kiasi cha kulipa",
        "pay_by": "Lipa kabla ya",
        "status": "Hali ya malipo",
        "waiting": "Namba ya malipo inaandaliwa; utaipokea kwa SMS na barua pepe.",
        "how": "Lipa kupitia M-Pesa, Tigo Pesa, Airtel Money, HaloPesa au benki "
        "(Malipo ya Serikali, GePG) ukitumia namba ya malipo.",
        "statuses": {"issued": "Haijalipwa yote", "paid": "Imelipwa", "expired": "Muda umekwisha",
                     "cancelled": "Imefutwa"},
    },
    "en": {
        "title": "Payment",
        "control_number": "Control number",
        "amount_due": "Amount due",
        "pay_by": "Pay by",
        "status": "Payment status",
        "waiting": "Your control number is being prepared; it comes by SMS and email.",
        "how": "Pay with M-Pesa, Tigo Pesa, Airtel Money, HaloPesa or a bank "
        "(Government payments, GePG) using the control number.",
        "statuses": {"issued": "Not fully paid", "paid": "Paid", "expired": "Expired",
                     "cancelled": "Cancelled"},
    },
}  # fmt: skip


def _payment_view(registration: Any, language: str) -> dict[str, Any] | None:
    payment = getattr(registration, "payment", None) or {}
    if registration.status != "pending_payment" and not payment:
        return None
    labels = PAYMENT_LABELS[language]
    due = payment.get("outstanding_tzs", registration.amount_due_tzs)
    expires = payment.get("expires_at") or registration.payment_due_by
    when = ""
    if expires:
        from shared.timeutil import EAT

        when = (
            datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            .astimezone(EAT)
            .strftime("%d/%m/%Y %H:%M")
        )
    return {
        "labels": labels,
        "control_number": payment.get("control_number"),
        "amount_due": f"TZS {due:,}" if isinstance(due, int) else None,
        "pay_by": when,
        "status": labels["statuses"].get(payment.get("status", ""), None),
    }


async def _open(request: Request, link: str) -> handlers.OwnRegistration | None:
    try:
        return await handlers.open_self_service_link(_ctx(request), link[:64])
    except DomainError:
        return None


async def _posted(
    request: Request, link: str, language: str
) -> tuple[handlers.OwnRegistration | None, Any, Response | None]:
    """The registration a POST's link opens and its form, or the answer to give instead
    (429 over the limit, the unknown-link page, or the page again for a bad form token)."""
    if (limited := await _self_service_limited(request, language)) is not None:
        return None, None, limited
    own = await _open(request, link)
    if own is None:
        return None, None, _unknown_link(language)
    form = await request.form()
    if not _ctx(request).links.form_token_matches(link, str(form.get("csrf") or "")):
        errors = {"form": MY_LABELS[language]["form_expired"]}
        return (
            None,
            None,
            await _own_page(request, link, own, language, 403, errors=errors),
        )
    return own, form, None


@router.get("/my/{link}", response_class=HTMLResponse)
async def self_service_page(
    link: str, request: Request, lang: str | None = None, done: str | None = None
) -> Response:
    """One participant's registration: view, change, download, cancel, erase."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    own = await _open(request, link)
    if own is None:
        return _unknown_link(language)
    notice = MY_LABELS[language].get(f"done_{done}") if done in ("updated", "cancelled") else None
    return await _own_page(request, link, own, language, notice=notice)


@router.post("/my/{link}/details", response_class=HTMLResponse)
async def self_service_change(link: str, request: Request, lang: str | None = None) -> Response:
    """Change phone, position, needs or language (the JSON API's use case)."""
    language = _lang(lang)
    own, form, answer = await _posted(request, link, language)
    if answer is not None:
        return answer
    assert own is not None
    registration = own.registration
    values: dict[str, Any] = {
        "phone": str(form.get("phone") or ""),
        "position": str(form.get("position") or ""),
        "accessibility_needs": [str(v) for v in form.getlist("accessibility_needs")],
        "accessibility_other": str(form.get("accessibility_other") or "").strip() or None,
        "dietary_needs": str(form.get("dietary_needs") or "").strip() or None,
        "language": str(form.get("language") or registration.language),
    }
    try:
        change = RegistrationChange.model_validate(values)
    except ValidationError as exc:
        errors = _field_errors(exc, LABELS[language], values)
        return await _own_page(request, link, own, language, 422, errors=errors, values=values)
    try:
        await handlers.update_own_registration(_ctx(request), registration.id, change)
    except DomainError as exc:
        errors = {"form": LABELS[language]["codes"].get(exc.code, exc.message)}
        return await _own_page(request, link, own, language, 409, errors=errors, values=values)
    return _see_other(f"{self_service_path(link)}?lang={language}&done=updated")


async def _unconfirmed(
    request: Request, link: str, own: Any, form: Any, language: str, action: str
) -> Response | None:
    """The page again (422) when a cancel or erase was posted without its confirmation."""
    if form.get("confirm") == "yes":
        return None
    errors = {f"confirm_{action}": MY_LABELS[language]["must_confirm"]}
    return await _own_page(request, link, own, language, 422, errors=errors)


@router.post("/my/{link}/cancel", response_class=HTMLResponse)
async def self_service_cancel(link: str, request: Request, lang: str | None = None) -> Response:
    """Cancel one's registration (the seat goes to the first on the waiting list)."""
    language = _lang(lang)
    own, form, answer = await _posted(request, link, language)
    if answer is not None:
        return answer
    assert own is not None
    registration = own.registration
    if (
        unconfirmed := await _unconfirmed(request, link, own, form, language, "cancel")
    ) is not None:
        return unconfirmed
    try:
        await handlers.cancel_registration(_ctx(request), registration.id, by="participant")
    except DomainError as exc:
        errors = {"form": LABELS[language]["codes"].get(exc.code, exc.message)}
        return await _own_page(request, link, own, language, 409, errors=errors)
    return _see_other(f"{self_service_path(link)}?lang={language}&done=cancelled")


@router.get("/my/{link}/data")
async def self_service_data(link: str, request: Request, lang: str | None = None) -> Response:
    """Everything held about the participant, as a JSON download (PDPA right of access)."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    own = await _open(request, link)
    if own is None:
        return _unknown_link(language)
    data = await handlers.export_own_data(_ctx(request), own.registration.id)
    name = f"mkutano-{own.registration.reference}.json"
    return JSONResponse(
        data, headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE}
    )


@router.post("/my/{link}/erase", response_class=HTMLResponse)
async def self_service_erase(link: str, request: Request, lang: str | None = None) -> Response:
    """Erase one's personal data (an active registration is cancelled first)."""
    language = _lang(lang)
    own, form, answer = await _posted(request, link, language)
    if answer is not None:
        return answer
    assert own is not None
    registration = own.registration
    if (unconfirmed := await _unconfirmed(request, link, own, form, language, "erase")) is not None:
        return unconfirmed
    await handlers.erase_registration(_ctx(request), registration.id, reason="participant_request")
    return _see_other(f"/my?lang={language}&done=erased")


# == certificates and evaluation (issue 16) ===================================================
#
# ``GET /verify/{serial}``: the public verification page (what the certificate's QR code
# opens). ``/my/{link}/certificate.pdf`` downloads the participant's certificate and
# ``/my/{link}/evaluation`` is their evaluation form, answered once: both behind their own
# self-service link, like the rest of their page.

VERIFY_LABELS = {
    "sw": {
        "title": "Uhakiki wa cheti",
        "valid": "Cheti hiki ni halali.",
        "revoked": "Cheti hiki kimebatilishwa: si halali.",
        "unknown": "Hakuna cheti chenye namba hii. Hakikisha umeiandika kama ilivyo kwenye cheti.",
        "serial": "Namba ya cheti",
        "holder": "Mmiliki",
        "erased": "(taarifa binafsi zimefutwa)",
        "event": "Tukio",
        "days": "Siku alizohudhuria",
        "explain": "Ukurasa huu unaonyesha tu kama cheti ni halali, jina la mmiliki, tukio "
        "na siku alizohudhuria. Hutolewa na Mamlaka ya Serikali Mtandao (e-GA).",
    },
    "en": {
        "title": "Certificate verification",
        "valid": "This certificate is valid.",
        "revoked": "This certificate has been revoked: it is not valid.",
        "unknown": "No certificate has this number. Check that it is written as on the "
        "certificate.",
        "serial": "Certificate number",
        "holder": "Holder",
        "erased": "(personal data erased)",
        "event": "Event",
        "days": "Days attended",
        "explain": "This page shows only whether a certificate is valid, its holder's name, "
        "the event and the days attended. Issued by the e-Government Authority (e-GA).",
    },
}
AFTER_LABELS = {
    "sw": {
        "section": "Cheti na tathmini",
        "download": "Pakua cheti chako cha ushiriki (PDF)",
        "serial": "Namba ya cheti",
        "waits": "Cheti chako kitatolewa utakapojibu tathmini ya tukio.",
        "evaluate": "Jibu tathmini ya tukio",
        "answered": "Umeshajibu tathmini. Asante!",
    },
    "en": {
        "section": "Certificate and evaluation",
        "download": "Download your certificate of attendance (PDF)",
        "serial": "Certificate number",
        "waits": "Your certificate is released once you answer the event's evaluation.",
        "evaluate": "Answer the event's evaluation",
        "answered": "You have answered the evaluation. Thank you!",
    },
}
EVALUATION_LABELS = {
    "sw": {
        "title": "Tathmini ya tukio",
        "submit": "Tuma majibu",
        "yes": "Ndiyo",
        "no": "Hapana",
        "back": "Rudi kwenye usajili wako",
        "waits": "Cheti chako kitatolewa utakapotuma majibu haya.",
        "done": "Asante! Majibu yako yamepokelewa.",
        "already": "Umeshajibu tathmini hii; inajibiwa mara moja tu.",
        "none": "Hakuna tathmini ya kujibu kwa usajili huu.",
        "reasons": {
            "required": "Swali hili linahitaji jibu.",
            "invalid": "Jibu hili si sahihi.",
            "too_long": "Jibu ni refu mno.",
        },
    },
    "en": {
        "title": "Event evaluation",
        "submit": "Send my answers",
        "yes": "Yes",
        "no": "No",
        "back": "Back to your registration",
        "waits": "Your certificate is released once you send these answers.",
        "done": "Thank you! Your answers have been received.",
        "already": "You have answered this evaluation already; it is answered once.",
        "none": "There is no evaluation to answer for this registration.",
        "reasons": {
            "required": "This question needs an answer.",
            "invalid": "This answer is not valid.",
            "too_long": "This answer is too long.",
        },
    },
}


def _answer_problem(language: str, reason: str) -> str:
    """An answer's problem in the page's language (the rule's own words are English)."""
    reasons = EVALUATION_LABELS[language]["reasons"]
    if reason == "required":
        return reasons["required"]
    if language == "en" and reason.startswith(("must", "at most", "a choice")):
        return f"This answer {reason}." if reason.startswith("must") else f"{reason.capitalize()}."
    return reasons["invalid"]


async def _verification_limited(request: Request, language: str) -> Response | None:
    try:
        await api.limit_verification(request)
    except ApiError as exc:
        return _too_many(LABELS[language], language, exc)
    return None


@router.get("/verify/{serial}", response_class=HTMLResponse)
async def verification_page(serial: str, request: Request, lang: str | None = None) -> Response:
    """Public: is this certificate valid? (What its QR code opens.)"""
    language = _lang(lang)
    if (limited := await _verification_limited(request, language)) is not None:
        return limited
    try:
        certificate = (await handlers.verify_certificate(_ctx(request), serial[:40])).verification()
    except DomainError:
        certificate = None
    labels = VERIFY_LABELS[language]
    return _render(
        "verify.html.j2",
        200 if certificate else 404,
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
        t={**LABELS[language], "title": labels["title"]},
        v=labels,
        lang=language,
        lang_url=f"/verify/{quote(serial[:40])}?lang={LABELS[language]['other_language'][0]}",
        certificate=certificate,
    )


async def _after_event(
    ctx: handlers.Context, registration: Any, language: str
) -> dict[str, Any] | None:
    """The certificate and evaluation part of a self-service page (None: nothing yet)."""
    certificate = await handlers.own_certificate(ctx, registration.id)
    own = await handlers.own_evaluation(ctx, registration)
    if certificate is None and own is None:
        return None
    evaluation = None
    if own is not None:
        evaluation = "answered" if own.response and own.response.answered else "open"
    return {
        "labels": AFTER_LABELS[language],
        "certificate": certificate,
        "waits": certificate is None and own is not None and own.form.required_for_certificate,
        "evaluation": evaluation,
    }


@router.get("/my/{link}/certificate.pdf")
async def own_certificate_pdf(link: str, request: Request, lang: str | None = None) -> Response:
    """The participant's certificate of attendance (PDF)."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    own = await _open(request, link)
    if own is None:
        return _unknown_link(language)
    ctx = _ctx(request)
    certificate = await handlers.own_certificate(ctx, own.registration.id)
    if certificate is None:
        return _render(
            "message.html.j2",
            404,
            headers=NO_STORE,
            t={**LABELS[language], "title": AFTER_LABELS[language]["section"]},
            lang=language,
            lang_url=None,
            message=AFTER_LABELS[language]["waits"]
            if (o := await handlers.own_evaluation(ctx, own.registration))
            and o.form.required_for_certificate
            else ("Hakuna cheti bado." if language == "sw" else "No certificate yet."),
            next_url=f"{self_service_path(link)}?lang={language}",
            next_label=EVALUATION_LABELS[language]["back"],
        )
    pdf = await asyncio.to_thread(
        certificate_pdf.render_certificate,
        certificate,
        f"{ctx.public_url}{verify_path(certificate.serial)}",
    )
    name = f"cheti-certificate-{certificate.serial}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE},
    )


def _evaluation_page(
    request: Request,
    link: str,
    own: handlers.OwnRegistration,
    evaluation: handlers.OwnEvaluation,
    language: str,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
) -> Response:
    questions = evaluation.form.parsed()
    labels = EVALUATION_LABELS[language]
    anchors = {}
    for q in questions:
        if q.type == "yes_no":
            anchors[q.id] = f"{q.id}-yes"
        elif q.choices:
            anchors[q.id] = f"{q.id}-{q.choices[0].code}"
    return _render(
        "evaluation.html.j2",
        status,
        headers=NO_STORE,
        t={**LABELS[language], "title": labels["title"]},
        e=labels,
        my={q.id: q.label(language) for q in questions},
        anchors=anchors,
        lang=language,
        lang_url=f"{self_service_path(link)}/evaluation?lang={LABELS[language]['other_language'][0]}",
        base=self_service_path(link),
        csrf=_ctx(request).links.form_token(f"evaluation:{link}"),
        event=_event_context(own.event, language),
        questions=questions,
        waits=evaluation.form.required_for_certificate,
        errors=errors or {},
        values=values or {},
        notice=notice,
    )


@router.get("/my/{link}/evaluation", response_class=HTMLResponse)
async def evaluation_form_page(
    link: str, request: Request, lang: str | None = None, done: str | None = None
) -> Response:
    """The attendee's evaluation form (answered once)."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    own = await _open(request, link)
    if own is None:
        return _unknown_link(language)
    return await _evaluation_answer_or_form(request, link, own, language, done == "yes")


async def _evaluation_answer_or_form(
    request: Request, link: str, own: handlers.OwnRegistration, language: str, done: bool
) -> Response:
    labels = EVALUATION_LABELS[language]
    evaluation = await handlers.own_evaluation(_ctx(request), own.registration)
    if evaluation is None:
        return _render(
            "message.html.j2",
            404,
            headers=NO_STORE,
            t={**LABELS[language], "title": labels["title"]},
            lang=language,
            lang_url=None,
            message=labels["none"],
            next_url=f"{self_service_path(link)}?lang={language}",
            next_label=labels["back"],
        )
    if evaluation.response and evaluation.response.answered:
        notice = labels["done"] if done else labels["already"]
        return _evaluation_page(request, link, own, evaluation, language, notice=notice)
    return _evaluation_page(request, link, own, evaluation, language)


@router.post("/my/{link}/evaluation", response_class=HTMLResponse)
async def evaluation_answer(link: str, request: Request, lang: str | None = None) -> Response:
    """Send the answers (once); the page again with each problem beside its question."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    own = await _open(request, link)
    if own is None:
        return _unknown_link(language)
    ctx = _ctx(request)
    evaluation = await handlers.own_evaluation(ctx, own.registration)
    if evaluation is None or (evaluation.response and evaluation.response.answered):
        return await _evaluation_answer_or_form(request, link, own, language, False)
    form = await request.form()
    if not ctx.links.form_token_matches(f"evaluation:{link}", str(form.get("csrf") or "")):
        errors = {"form": MY_LABELS[language]["form_expired"]}
        return _evaluation_page(request, link, own, evaluation, language, 403, errors=errors)
    values: dict[str, Any] = {}
    for q in evaluation.form.parsed():
        if q.type == "multiple_choice":
            values[q.id] = [str(v) for v in form.getlist(q.id)]
        else:
            values[q.id] = str(form.get(q.id) or "")
    try:
        await handlers.answer_evaluation(ctx, own.registration.id, values)
    except DomainError as exc:
        if exc.code == "invalid_answers":
            problems = (exc.details or {}).get("problems", {})
            errors = {k: _answer_problem(language, v) for k, v in problems.items()}
            return _evaluation_page(
                request, link, own, evaluation, language, 422, errors=errors, values=values
            )
        if exc.code == "evaluation_already_answered":
            return await _evaluation_answer_or_form(request, link, own, language, False)
        raise
    return _see_other(f"{self_service_path(link)}/evaluation?lang={language}&done=yes")


# -- institutions' pages (issue 13 B) ----------------------------------------------------------
# A contact person asks for a sign-in link by email (the answer is the same whoever asks),
# opens it (one click more: a mail scanner's GET must not use the link), and gets a short,
# signed session cookie scoped to their institution. The institution page nominates
# officers (one by one or from a CSV file with a dry run), shows their status, withdraws
# or replaces them. Every form carries a token tied to the session (CSRF).

INSTITUTION_COOKIE = "mkutano_institution"
INSTITUTION_FORM_COOKIE = "mkutano_institution_form"
INSTITUTION_LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "title": "Ukurasa wa taasisi",
        "start_intro": "Kwa watu wa mawasiliano wa taasisi: weka barua pepe yako iliyosajiliwa. "
        "Tutakutumia kiungo cha kuingia; kinatumika mara moja tu, kwa dakika chache. "
        "Hakuna nenosiri.",
        "email": "Barua pepe",
        "email_hint": "Anwani ambayo waandaaji wameisajili kwa taasisi yako.",
        "send_link": "Nitumie kiungo cha kuingia",
        "sent_title": "Angalia barua pepe yako",
        "sent": "Kama anwani hii ni ya mtu wa mawasiliano wa taasisi, tumetuma kiungo cha "
        "kuingia. Kinatumika mara moja tu, ndani ya dakika {minutes}.",
        "link_title": "Ingia kwenye ukurasa wa taasisi",
        "link_intro": "Kiungo hiki kitakuingiza kwenye ukurasa wa {name}. Kinatumika mara moja.",
        "continue": "Endelea",
        "invalid_link": "Kiungo hiki cha kuingia hakitumiki: huenda muda wake umekwisha au "
        "kimeshatumika. Omba kiungo kipya.",
        "ask_again": "Omba kiungo kipya",
        "form_expired": "Fomu hii haitumiki tena. Fungua ukurasa tena kisha ujaribu tena.",
        "signed_in_as": "Umeingia kama",
        "sign_out": "Toka",
        "event": "Tukio",
        "choose_event": "Chagua tukio",
        "show": "Onyesha",
        "no_events": "Hakuna tukio lililo wazi kwa uteuzi kwa sasa.",
        "nominees_title": "Walioteuliwa",
        "no_nominees": "Taasisi yako bado haijamteua mtu kwa tukio hili.",
        "reference": "Namba ya usajili",
        "status": "Hali",
        "payment": "Malipo",
        "payment_pending": "Taarifa za malipo zitaonekana hapa.",
        "group_bill_title": "Bili moja ya taasisi",
        "group_bill_amount": "Kiasi chote",
        "group_bill_paid": "Kilicholipwa",
        "group_bill_for": "Kwa walioteuliwa",
        "category": "Kundi",
        "nominate_title": "Teua afisa",
        "full_name": "Jina kamili",
        "phone": "Namba ya simu",
        "position": "Cheo",
        "language": "Lugha ya mawasiliano",
        "region": "Mkoa",
        "declaration": "Uthibitisho",
        "file_declaration": "Uthibitisho wa faili",
        "declaration_text": "Ninathibitisha kwamba afisa (maafisa) ameambiwa na amekubali taarifa "
        "zake binafsi zichakatwe kwa ajili ya usajili huu (Sheria ya Ulinzi wa Taarifa "
        "Binafsi, 2022).",
        "nominate": "Teua",
        "csv_title": "Teua maafisa kutoka faili la CSV",
        "csv_intro": "Safu: {columns}. Faili lote linakubaliwa au linakataliwa lote. "
        "Jaribu kwanza bila kuhifadhi.",
        "file": "Faili la CSV",
        "dry_run": "Kagua tu (usihifadhi)",
        "upload": "Pakia",
        "report_title": "Ripoti ya faili",
        "report_ok": "Faili liko sawa: safu {rows} zitateuliwa.",
        "report_done": "Maafisa {count} wameteuliwa; kila mmoja atapokea barua pepe yake.",
        "row": "Mstari",
        "field": "Sehemu",
        "reason": "Sababu",
        "withdraw": "Ondoa",
        "confirm_withdraw": "Ndiyo, mwondoe afisa huyu",
        "replace": "Badilisha kwa afisa mwingine",
        "replace_title": "Badilisha",
        "done_nominated": "Afisa ameteuliwa; atapokea barua pepe ya uthibitisho.",
        "done_withdrawn": "Uteuzi umeondolewa.",
        "done_group_bill": "Tumeomba bili moja; namba yake ya malipo itakufikia kwa barua "
        "pepe na itaonekana hapa.",
        "group_bill_none": "Hakuna aliyeteuliwa anayesubiri malipo kwa tukio hili.",
        "group_bill_intro": "Lipa ada za walioteuliwa wote wanaosubiri malipo kwa namba moja "
        "ya malipo (bili zao za mmoja mmoja zitafutwa).",
        "group_bill_ask": "Bili moja kwa walioteuliwa wote wasiolipiwa",
        "done_replaced": "Afisa amebadilishwa; aliyeteuliwa mpya atapokea barua pepe yake.",
        "must_confirm": "Weka alama kuthibitisha.",
        "file_required": "Chagua faili la CSV.",
        "declaration_required": "Thibitisha kwamba maafisa wameambiwa na wamekubali.",
    },
    "en": {
        "title": "Institution page",
        "start_intro": "For institutions' contact persons: enter your registered email. We "
        "will send you a sign-in link; it works once, for a few minutes. No password.",
        "email": "Email",
        "email_hint": "The address the organisers registered for your institution.",
        "send_link": "Email me a sign-in link",
        "sent_title": "Check your email",
        "sent": "If this address belongs to an institution's contact person, we have sent a "
        "sign-in link. It works once, within {minutes} minutes.",
        "link_title": "Sign in to the institution page",
        "link_intro": "This link signs you in to the page of {name}. It works once.",
        "continue": "Continue",
        "invalid_link": "This sign-in link does not work: it may have expired or been used "
        "already. Ask for a new one.",
        "ask_again": "Ask for a new link",
        "form_expired": "This form is no longer valid. Open the page again and retry.",
        "signed_in_as": "Signed in as",
        "sign_out": "Sign out",
        "event": "Event",
        "choose_event": "Choose an event",
        "show": "Show",
        "no_events": "No event takes nominations now.",
        "nominees_title": "Nominees",
        "no_nominees": "Your institution has nominated nobody for this event yet.",
        "reference": "Registration reference",
        "status": "Status",
        "payment": "Payment",
        "payment_pending": "Payment details will appear here.",
        "group_bill_title": "The institution's group bill",
        "group_bill_amount": "Total amount",
        "group_bill_paid": "Paid so far",
        "group_bill_for": "For the nominees",
        "category": "Category",
        "nominate_title": "Nominate an officer",
        "full_name": "Full name",
        "phone": "Phone number",
        "position": "Position",
        "language": "Language for messages",
        "region": "Region",
        "declaration": "Declaration",
        "file_declaration": "The file's declaration",
        "declaration_text": "I confirm that the officer(s) were told of, and agreed to, the "
        "processing of their personal data for this registration (Personal Data "
        "Protection Act, 2022).",
        "nominate": "Nominate",
        "csv_title": "Nominate officers from a CSV file",
        "csv_intro": "Columns: {columns}. The whole file is accepted or refused. Check it "
        "first without saving.",
        "file": "CSV file",
        "dry_run": "Check only (do not save)",
        "upload": "Upload",
        "report_title": "File report",
        "report_ok": "The file is fine: {rows} rows would be nominated.",
        "report_done": "{count} officers nominated; each will get their own email.",
        "row": "Line",
        "field": "Field",
        "reason": "Reason",
        "withdraw": "Withdraw",
        "confirm_withdraw": "Yes, withdraw this officer",
        "replace": "Replace by another officer",
        "replace_title": "Replace",
        "done_nominated": "The officer is nominated; they will get a confirmation email.",
        "done_withdrawn": "The nomination is withdrawn.",
        "done_group_bill": "One bill is requested; its control number comes to you by email "
        "and shows here.",
        "group_bill_none": "None of your nominees for this event awaits payment.",
        "group_bill_intro": "Pay the fees of all nominees awaiting payment with one control "
        "number (their single bills are cancelled).",
        "group_bill_ask": "One bill for all unpaid nominees",
        "done_replaced": "The officer is replaced; the new nominee will get their own email.",
        "must_confirm": "Tick the box to confirm.",
        "file_required": "Choose a CSV file.",
        "declaration_required": "Confirm that the officers were told and agreed.",
    },
}
NOMINATION_FILE_MAX_BYTES = 512 * 1024


def _inst_labels(language: str) -> dict[str, Any]:
    return {**LABELS[language], **INSTITUTION_LABELS[language]}


def _inst_t(language: str) -> dict[str, Any]:
    """What the layout needs (``html_lang``, ``title``, ``other_language``)."""
    return {**LABELS[language], "title": INSTITUTION_LABELS[language]["title"]}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _inst_start(
    request: Request,
    language: str,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    csrf = request.cookies.get(INSTITUTION_FORM_COOKIE) or secrets.token_urlsafe(18)
    response = _render(
        "institution_start.html.j2",
        status,
        headers=NO_STORE,
        t=_inst_t(language),
        my=_inst_labels(language),
        lang=language,
        lang_url=f"/institution?lang={LABELS[language]['other_language'][0]}",
        csrf=csrf,
        errors=errors or {},
        values=values or {},
    )
    response.set_cookie(
        INSTITUTION_FORM_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/institution",
        max_age=3600,
    )
    return response


def _invalid_sign_in(language: str) -> Response:
    """The one answer for a tampered, unknown, expired or used sign-in link."""
    labels = _inst_labels(language)
    return _render(
        "message.html.j2",
        404,
        headers=NO_STORE,
        t=_inst_t(language),
        lang=language,
        lang_url=f"/institution?lang={LABELS[language]['other_language'][0]}",
        message=labels["invalid_link"],
        next_url=f"/institution?lang={language}",
        next_label=labels["ask_again"],
    )


@router.get("/institution", response_class=HTMLResponse)
async def institution_start(request: Request, lang: str | None = None) -> Response:
    """A contact person asks for a sign-in link (or, signed in, goes to their page)."""
    language = _lang(lang)
    session = await _inst_session(request)
    if session is not None:
        return _see_other(f"/institution/home?lang={language}")
    return _inst_start(request, language)


@router.post("/institution", response_class=HTMLResponse)
async def institution_request_link(request: Request, lang: str | None = None) -> Response:
    """Email a sign-in link to a contact person; the same answer whoever asks."""
    language = _lang(lang)
    labels = _inst_labels(language)
    if (limited := await _inst_sign_in_limited(request, language)) is not None:
        return limited
    form = await request.form()
    cookie = request.cookies.get(INSTITUTION_FORM_COOKIE)
    posted = str(form.get("csrf") or "")
    if not cookie or not secrets.compare_digest(cookie.encode(), posted.encode()):
        return _inst_start(request, language, 403, errors={"form": labels["form_expired"]})
    email = str(form.get("email") or "").strip()[:254]
    if not email:
        return _inst_start(request, language, 422, errors={"email": labels["reasons"]["required"]})
    if "@" not in email:
        errors = {"email": labels["reasons"]["email"]}
        return _inst_start(request, language, 422, errors=errors, values={"email": email})
    if await _inst_email_allowed(request, email):
        await handlers.request_institution_sign_in(_ctx(request), email)
    ctx = _ctx(request)
    minutes = max(1, int(ctx.sign_in_validity.total_seconds() // 60))
    return _render(
        "institution_sent.html.j2",
        200,
        headers=NO_STORE,
        t={**_inst_t(language), "title": labels["sent_title"]},
        lang=language,
        lang_url=f"/institution?lang={LABELS[language]['other_language'][0]}",
        message=labels["sent"].format(minutes=minutes),
        next_url=f"/institution?lang={language}",
        next_label=labels["ask_again"],
    )


async def _inst_sign_in_limited(request: Request, language: str) -> Response | None:
    """Sign-in requests per client address and minute (429 beyond)."""
    per_min = api._limits(request).rate_institution_sign_in_per_address_per_min
    try:
        await enforce(request, "institution-sign-in", client_address(request), Limit(per_min, 60))
    except ApiError as exc:
        return _private(_too_many(LABELS[language], language, exc))
    return None


async def _inst_email_allowed(request: Request, email: str) -> bool:
    """Sign-in emails per address and hour: beyond, no more is sent (the answer stays the
    same, so the limit tells nothing about the address). Keyed on a hash: no email is
    stored in the limits' collection."""
    per_hour = api._limits(request).rate_institution_sign_in_per_email_per_hour
    subject = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    try:
        await enforce(request, "institution-sign-in-email", subject, Limit(per_hour, 3600))
    except ApiError:
        return False
    return True


@router.get("/institution/sign-in/{link}", response_class=HTMLResponse)
async def institution_link_page(link: str, request: Request, lang: str | None = None) -> Response:
    """What an emailed link opens: one button that uses it (a GET uses nothing)."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    try:
        institution = await handlers.check_sign_in_link(_ctx(request), link[:64])
    except DomainError:
        return _invalid_sign_in(language)
    labels = _inst_labels(language)
    return _render(
        "institution_sign_in.html.j2",
        200,
        headers={**NO_STORE, "Referrer-Policy": "no-referrer"},
        t={**_inst_t(language), "title": labels["link_title"]},
        my=labels,
        lang=language,
        lang_url=f"/institution/sign-in/{link}?lang={LABELS[language]['other_language'][0]}",
        intro=labels["link_intro"].format(name=institution.name(language)),
        action=f"/institution/sign-in/{link}?lang={language}",
        csrf=_ctx(request).institution_links.form_token(link),
    )


@router.post("/institution/sign-in/{link}", response_class=HTMLResponse)
async def institution_sign_in(link: str, request: Request, lang: str | None = None) -> Response:
    """Use the link (once): set the session cookie and open the institution page."""
    language = _lang(lang)
    if (limited := await _self_service_limited(request, language)) is not None:
        return limited
    ctx = _ctx(request)
    form = await request.form()
    if not ctx.institution_links.form_token_matches(link[:64], str(form.get("csrf") or "")):
        return _invalid_sign_in(language)
    try:
        session = await handlers.sign_in_with_link(ctx, link[:64])
    except DomainError:
        return _invalid_sign_in(language)
    response = _see_other(f"/institution/home?lang={language}")
    response.set_cookie(
        INSTITUTION_COOKIE,
        session.value,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/institution",
        max_age=int(ctx.session_validity.total_seconds()),
    )
    return response


async def _inst_session(request: Request) -> handlers.InstitutionSession | None:
    value = request.cookies.get(INSTITUTION_COOKIE)
    if not value:
        return None
    try:
        return await handlers.open_institution_session(_ctx(request), value[:200])
    except DomainError:
        return None


def _signed_out(language: str) -> Response:
    response = _see_other(f"/institution?lang={language}")
    response.delete_cookie(INSTITUTION_COOKIE, path="/institution")
    return response


def _nominee_view(
    registration: Any, language: str, category_names: dict[str, str]
) -> dict[str, Any]:
    labels = LABELS[language]
    category = getattr(registration, "category", None) or registration.cadre
    statuses = {**labels["statuses"], **STATUS_LABELS[language]}
    return {
        "id": registration.id,
        "reference": registration.reference,
        "full_name": registration.full_name,
        "email": registration.email,
        "position": registration.position,
        "category": category_names.get(category, category),
        "status": registration.status,
        "status_label": statuses.get(registration.status, registration.status),
        "active": registration.is_active,
        # What payments.v1 told of this nominee's bill (issue 14): a line of text.
        "payment": _payment_line(registration, language),
    }


def _payment_line(registration: Any, language: str) -> str | None:
    """The nominee's bill in one line: control number, paid or still due."""
    view = _payment_view(registration, language)
    if view is None:
        return None
    labels = view["labels"]
    parts = []
    if view["control_number"]:
        parts.append(f"{labels['control_number']} {view['control_number']}")
    if view["status"]:
        parts.append(view["status"])
    if view["amount_due"] and registration.status == "pending_payment":
        parts.append(f"{labels['amount_due']}: {view['amount_due']}")
    return "; ".join(parts) or labels["waiting"]


def _group_bill_view(registrations: list[Any], language: str) -> dict[str, Any] | None:
    """The institution's group bill (issue 14), as payments.v1 told each of its nominees:
    the bill that more than one nominee shares (the newest noted, if several)."""
    by_bill: dict[str, list[Any]] = {}
    for r in registrations:
        bill_id = (getattr(r, "payment", None) or {}).get("bill_id")
        if bill_id and r.payment.get("status") != "cancelled":
            by_bill.setdefault(bill_id, []).append(r)
    groups = [rs for rs in by_bill.values() if len(rs) > 1]
    if not groups:
        return None
    nominees = max(groups, key=len)
    payment = nominees[0].payment
    labels = PAYMENT_LABELS[language]
    amount, paid = payment.get("amount_tzs"), payment.get("paid_total_tzs") or 0
    outstanding = payment.get("outstanding_tzs", amount)
    return {
        "control_number": payment.get("control_number"),
        "amount": f"TZS {amount:,}" if isinstance(amount, int) else None,
        "paid": f"TZS {paid:,}" if isinstance(paid, int) else None,
        "outstanding": f"TZS {outstanding:,}" if isinstance(outstanding, int) else None,
        "status": labels["statuses"].get(payment.get("status", ""), labels["waiting"]),
        "status_code": payment.get("status", ""),
        "nominees": [r.full_name for r in nominees],
        "pay_by": (_payment_view(nominees[0], language) or {}).get("pay_by"),
    }


async def _open_events(request: Request) -> list[Event]:
    now = _ctx(request).clock()
    return [e for e in await handlers.list_events(_ctx(request)) if e.starts_at > now]


def _categories(event: Event, language: str) -> list[tuple[str, str]]:
    found = nominable_categories(event)
    if found:
        return [
            (code, name_en if language == "en" else name_sw) for code, name_sw, name_en in found
        ]
    cadres = LABELS[language]["cadres"]
    allowed = event.admitted_cadres or list(cadres)
    return [(code, cadres[code]) for code in allowed]


async def _institution_page(
    request: Request,
    session: handlers.InstitutionSession,
    language: str,
    event_id: str | None,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
    report: dict[str, Any] | None = None,
    replacing: str | None = None,
) -> Response:
    ctx = _ctx(request)
    labels = _inst_labels(language)
    events = await _open_events(request)
    event = next((e for e in events if e.id == event_id), events[0] if events else None)
    nominees = []
    group_bill = None
    if event is not None:
        found = await handlers.institution_nominations(ctx, session.institution.code, event.id)
        names = {**LABELS[language]["cadres"], **dict(_categories(event, language))}
        nominees = [_nominee_view(r, language, names) for r in found]
        group_bill = _group_bill_view(list(found), language)
    other = LABELS[language]["other_language"][0]
    event_q = f"&event={event.id}" if event else ""
    return _render(
        "institution.html.j2",
        status,
        headers=NO_STORE,
        t=_inst_t(language),
        my=labels,
        lang=language,
        lang_url=f"/institution/home?lang={other}{event_q}",
        csrf=ctx.institution_links.form_token(session.value),
        institution={
            "code": session.institution.code,
            "name": session.institution.name(language),
        },
        contact_name=session.contact["full_name"],
        events=[
            {"id": e.id, "title": e.title_en if language == "en" else e.title_sw} for e in events
        ],
        event=_event_context(event, language) if event else None,
        categories=_categories(event, language) if event else [],
        nominees=nominees,
        group_bill=group_bill,
        unpaid=sum(1 for n in nominees if n["status"] == "pending_payment"),
        pay=PAYMENT_LABELS[language],
        values={"language": language, **(values or {})},
        errors=errors or {},
        notice=notice,
        report=report,
        replacing=replacing,
        csv_columns=", ".join(NOMINATION_CSV_COLUMNS),
        query=f"?lang={language}{event_q}",
    )


@router.get("/institution/home", response_class=HTMLResponse)
async def institution_home(
    request: Request,
    lang: str | None = None,
    event: str | None = None,
    done: str | None = None,
    replace: str | None = None,
) -> Response:
    """The institution page: nominees of an event, and the forms to nominate."""
    language = _lang(lang)
    session = await _inst_session(request)
    if session is None:
        return _signed_out(language)
    notice = INSTITUTION_LABELS[language].get(f"done_{done}") if done else None
    return await _institution_page(
        request,
        session,
        language,
        (event or "")[:64] or None,
        notice=notice,
        replacing=(replace or "")[:64] or None,
    )


async def _inst_posted(
    request: Request, language: str
) -> tuple[handlers.InstitutionSession | None, Any, Response | None]:
    """The session and form of a POST, or the answer to give instead."""
    if (limited := await _self_service_limited(request, language)) is not None:
        return None, None, limited
    session = await _inst_session(request)
    if session is None:
        return None, None, _signed_out(language)
    form = await request.form()
    ctx = _ctx(request)
    if not ctx.institution_links.form_token_matches(session.value, str(form.get("csrf") or "")):
        page = await _institution_page(
            request,
            session,
            language,
            str(form.get("event") or "")[:64] or None,
            403,
            errors={"form": INSTITUTION_LABELS[language]["form_expired"]},
        )
        return None, None, page
    return session, form, None


@router.post("/institution/sign-out", response_class=HTMLResponse)
async def institution_sign_out(request: Request, lang: str | None = None) -> Response:
    language = _lang(lang)
    session, _form, answer = await _inst_posted(request, language)
    if answer is not None:
        return answer
    return _signed_out(language)


def _nomination_cells(form: Any) -> dict[str, str]:
    return {name: str(form.get(name) or "").strip() for name in NOMINATION_FIELDS}


def _nomination_errors(
    exc: ValidationError, labels: dict[str, Any], payload: dict[str, Any]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        name = loc[0] if loc else "form"
        name = "category" if name == "cadre" else name
        if name not in NOMINATION_FIELDS:
            name = "form"
        found.setdefault(name, labels["reasons"][_reason_key(name, error, payload)])
    return found


@router.post("/institution/nominations", response_class=HTMLResponse)
async def institution_nominate(request: Request, lang: str | None = None) -> Response:
    """Nominate one officer (or, with ``replace``, replace a nominee by them)."""
    language = _lang(lang)
    session, form, answer = await _inst_posted(request, language)
    if answer is not None:
        return answer
    assert session is not None
    labels = _inst_labels(language)
    event_id = str(form.get("event") or "")[:64]
    replacing = str(form.get("replace") or "")[:64] or None
    cells = _nomination_cells(form)
    payload = nomination_payload(cells, session.institution)
    values: dict[str, Any] = {**cells, "declaration": form.get("declaration") == "yes"}
    # The event's custom questions, asked here as on the registration page.
    event = next((e for e in await _open_events(request) if e.id == event_id), None)
    answer_errors: dict[str, str] = {}
    if event is not None:
        values.update(_typed_answers(form, event))
        answer_errors = _check_form_answers(form, event, payload, LABELS[language])

    async def again(status: int, errors: dict[str, str]) -> Response:
        return await _institution_page(
            request,
            session,
            language,
            event_id,
            status,
            errors=errors,
            values=values,
            replacing=replacing,
        )

    errors: dict[str, str] = {}
    try:
        nominee = RegistrationRequest.model_validate(payload)
    except ValidationError as exc:
        errors = _nomination_errors(exc, labels, payload)
    if form.get("declaration") != "yes":
        errors["declaration"] = labels["declaration_required"]
    errors.update(answer_errors)
    if errors:
        return await again(422, errors)
    ctx = _ctx(request)
    try:
        if replacing:
            await handlers.replace_nomination(ctx, session.institution, replacing, nominee)
        else:
            await handlers.nominate(ctx, session.institution, event_id, nominee)
    except DomainError as exc:
        message = labels["codes"].get(exc.code, exc.message)
        return await again(status_for(exc.code, api.ERROR_STATUSES), {"form": message})
    done = "replaced" if replacing else "nominated"
    return _see_other(f"/institution/home?lang={language}&event={event_id}&done={done}")


@router.post(
    "/institution/nominations/file",
    response_class=HTMLResponse,
    openapi_extra=body_limit(NOMINATION_FILE_MAX_BYTES),
)
async def institution_nominate_file(request: Request, lang: str | None = None) -> Response:
    """Nominate the officers of a CSV file (all or none), or only check it (dry run)."""
    language = _lang(lang)
    session, form, answer = await _inst_posted(request, language)
    if answer is not None:
        return answer
    assert session is not None
    labels = _inst_labels(language)
    event_id = str(form.get("event") or "")[:64]
    dry_run = form.get("dry_run") == "yes"
    upload = form.get("file")
    data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
    errors: dict[str, str] = {}
    if not data:
        errors["file"] = labels["file_required"]
    if form.get("declaration") != "yes" and not dry_run:
        errors["file_declaration"] = labels["declaration_required"]
    if errors:
        return await _institution_page(request, session, language, event_id, 422, errors=errors)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        errors = {"file": labels["reasons"]["invalid"]}
        return await _institution_page(request, session, language, event_id, 422, errors=errors)
    ctx = _ctx(request)
    try:
        result = await handlers.nominate_from_csv(
            ctx, session.institution, event_id, text, dry_run=dry_run
        )
    except DomainError as exc:
        problems = (exc.details or {}).get("problems") or []
        report = {"ok": False, "problems": problems, "message": exc.message}
        if not problems:
            report["problems"] = [{"row": "", "field": exc.field or "", "reason": exc.message}]
        return await _institution_page(
            request,
            session,
            language,
            event_id,
            422,
            report=report,
            errors={"file": exc.message},
        )
    problems = [{"row": p.row, "field": p.field, "reason": p.reason} for p in result.problems]
    if dry_run:
        report = {
            "ok": not problems,
            "problems": problems,
            "message": labels["report_ok"].format(rows=result.rows) if not problems else "",
        }
        return await _institution_page(
            request, session, language, event_id, 200 if not problems else 422, report=report
        )
    report = {
        "ok": True,
        "problems": [],
        "message": labels["report_done"].format(count=len(result.registered)),
    }
    return await _institution_page(request, session, language, event_id, 201, report=report)


@router.post("/institution/group-bill", response_class=HTMLResponse)
async def institution_group_bill(request: Request, lang: str | None = None) -> Response:
    """One bill for all the institution's nominees of the event awaiting payment (issue
    14): a notice payments acts on; the control number comes by email and shows here."""
    language = _lang(lang)
    session, form, answer = await _inst_posted(request, language)
    if answer is not None:
        return answer
    assert session is not None
    labels = _inst_labels(language)
    event_id = str(form.get("event") or "")[:64]
    try:
        await handlers.request_group_bill(_ctx(request), session, event_id)
    except DomainError as exc:
        message = labels["group_bill_none"] if exc.code == "nothing_to_bill" else None
        errors = {"form": message or labels["codes"].get(exc.code, exc.message)}
        status = 409 if exc.code == "nothing_to_bill" else status_for(exc.code, api.ERROR_STATUSES)
        return await _institution_page(request, session, language, event_id, status, errors=errors)
    return _see_other(f"/institution/home?lang={language}&event={event_id}&done=group_bill")


@router.post("/institution/nominations/{registration_id}/withdraw", response_class=HTMLResponse)
async def institution_withdraw(
    registration_id: str, request: Request, lang: str | None = None
) -> Response:
    """Withdraw a nominee before the event (their seat goes to the waiting list)."""
    language = _lang(lang)
    session, form, answer = await _inst_posted(request, language)
    if answer is not None:
        return answer
    assert session is not None
    labels = _inst_labels(language)
    event_id = str(form.get("event") or "")[:64]
    if form.get("confirm") != "yes":
        errors = {"form": labels["must_confirm"]}
        return await _institution_page(request, session, language, event_id, 422, errors=errors)
    try:
        await handlers.withdraw_nomination(_ctx(request), session.institution, registration_id[:64])
    except DomainError as exc:
        errors = {"form": labels["codes"].get(exc.code, exc.message)}
        status = status_for(exc.code, api.ERROR_STATUSES)
        return await _institution_page(request, session, language, event_id, status, errors=errors)
    return _see_other(f"/institution/home?lang={language}&event={event_id}&done=withdrawn")
