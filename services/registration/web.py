"""The registration page: a bilingual, accessible HTML form served by the service.

Works without JavaScript: ``GET /register/{event_id}?lang=sw|en`` renders the form,
``POST /register/{event_id}`` (form-urlencoded) runs the same use case as the JSON API and
renders the reference, or the form again with each error next to its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from services.registration import api, handlers
from services.registration.api import limit_registrations_by_address, limit_registrations_by_email
from services.registration.domain import DomainError, Event, RegistrationRequest
from shared.errors import ApiError, status_for
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
    "cadre",
    "region",
    "accessibility_needs",
    "accessibility_other",
    "dietary_needs",
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
        "choose": "— Chagua —",
        "region": "Mkoa",
        "accessibility_needs": "Mahitaji ya ufikivu",
        "accessibility_other": "Mahitaji mengine ya ufikivu",
        "dietary_needs": "Mahitaji ya chakula",
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
            "event_cancelled": "Tukio hili limeahirishwa.",
            "cadre_not_admitted": "Tukio hili haliko wazi kwa kada yako.",
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
        "choose": "— Choose —",
        "region": "Region",
        "accessibility_needs": "Accessibility needs",
        "accessibility_other": "Other accessibility needs",
        "dietary_needs": "Dietary needs",
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
        },
    },
}


def _lang(value: str | None) -> str:
    return value if value in LABELS else "sw"


# The fields a person must fill in; left blank, each says "required", never "invalid".
REQUIRED = ("full_name", "email", "phone", "institution", "position", "cadre")


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
    order = {name: i for i, name in enumerate(("form", *FIELDS))}
    return dict(sorted(found.items(), key=lambda item: order[item[0]]))


def _form_payload(form: Any, lang: str) -> dict[str, Any]:
    """The form as a RegistrationRequest body; blank optional fields are left out."""
    payload: dict[str, Any] = {}
    for name in ("full_name", "email", "phone", "institution", "position", "cadre"):
        payload[name] = str(form.get(name) or "")
    for name in ("region", "accessibility_other", "dietary_needs"):
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
    values = {**payload, "consent": "consent" in payload}
    try:
        await limit_registrations_by_address(request)
    except ApiError as exc:
        return _too_many(labels, language, exc)
    try:
        registration = RegistrationRequest.model_validate(payload)
    except ValidationError as exc:
        return _render(
            "register.html.j2",
            422,
            **page,
            values=values,
            errors=_field_errors(exc, labels, payload),
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
        return _render(
            "register.html.j2",
            status_for(exc.code, api.ERROR_STATUSES),
            **page,
            values=values,
            errors={"form": message},
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
