"""The admins' webhook subscriptions: the webhooks service's admin API
(``/api/v1/subscriptions``, role ``admin``) as pages, without JavaScript.

- ``/webhooks``: the subscriptions (target, event types, active or paused and why,
  failures in a row) and a form to create one; the new signing secret is shown once, on
  the page the creation leads to (kept in the session until that page pops it: a reload
  does not show it again).
- ``/webhooks/{id}``: one subscription, its pause/resume/rotate/delete forms (delete and
  rotate confirmed first) and its delivery log (East Africa Time), a failed delivery
  replayed.

What the API refuses (422: a private or loopback target, an event type that matches
nothing) is shown beside the field; the webhooks service not answering is said so.
Parsing the form into the API's body is pure (``subscription_body``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import handlers, web
from services.console.ports import Answer

router = APIRouter(include_in_schema=False)

# The patterns offered as checkboxes: one per public stream the webhooks service reads
# by default (docs/webhooks.md); other types or patterns go in the free-text field.
STREAM_PATTERNS = (
    "tz.go.ega.registration.*",
    "tz.go.ega.resolutions.*",
    "tz.go.ega.notification.*",
)
FORM_FIELDS = ("url", "label", "owner_email", "event_types", "purpose")

LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "title": "Webhooks",
        "intro": "Mifumo ya e-GA inayopokea matukio ya Mkutano kwa HTTP POST, yaliyosainiwa.",
        "subscriptions": "Usajili wa webhooks",
        "none": "Hakuna usajili bado.",
        "url": "Anwani ya kupokea (URL)",
        "url_hint": "https://… ya mfumo unaopokea; anwani za ndani hazikubaliwi.",
        "label": "Jina la mfumo",
        "owner_email": "Barua pepe ya mhusika (anaarifiwa usajili ukisitishwa)",
        "owner": "Barua pepe ya mhusika",
        "event_types": "Aina za matukio",
        "streams": {
            "tz.go.ega.registration.*": "Usajili wa washiriki (registration)",
            "tz.go.ega.resolutions.*": "Maazimio (resolutions)",
            "tz.go.ega.notification.*": "Taarifa (notification)",
        },
        "other_types": "Aina nyingine au mifumo (moja kwa kila mstari)",
        "purpose": "Data binafsi: madhumuni (tupu = hakuna data binafsi)",
        "purpose_hint": "Jaza tu kama mfumo unahitaji majina, barua pepe au simu (PDPA).",
        "create": "Unda usajili",
        "new": "Usajili mpya",
        "state": "Hali",
        "states": {"active": "unafanya kazi", "paused": "umesitishwa"},
        "failures": "Kushindwa mfululizo",
        "personal_data": "Data binafsi",
        "granted": "imeruhusiwa: {purpose}",
        "not_granted": "haitumwi",
        "open": "Fungua",
        "secret_title": "Siri ya kusaini",
        "secret_warning": (
            "Nakili siri hii sasa na uiweke kwenye mfumo unaopokea: haitaonyeshwa tena."
        ),
        "created": "Usajili umeundwa.",
        "rotated": "Siri mpya imetolewa. Ya zamani inakubalika hadi {until}.",
        "pause": "Sitisha",
        "resume": "Endelea",
        "delete": "Futa",
        "rotate": "Badilisha siri",
        "confirm_delete": "Kufuta usajili huu na kumbukumbu zake zote za utumaji?",
        "confirm_rotate": "Kutoa siri mpya? Ya zamani itakubalika kwa muda wa mpito tu.",
        "confirm": "Ndiyo, endelea",
        "cancel": "Hapana, rudi",
        "paused_msg": "Usajili umesitishwa.",
        "resumed_msg": "Usajili unaendelea.",
        "deleted_msg": "Usajili umefutwa.",
        "replayed_msg": "Utumaji utajaribiwa tena.",
        "deliveries": "Kumbukumbu ya utumaji",
        "no_deliveries": "Hakuna utumaji bado.",
        "time": "Muda",
        "time_note": "Nyakati zote ni saa za Afrika Mashariki.",
        "target": "Anwani",
        "event_type": "Aina ya tukio",
        "attempts": "Majaribio",
        "http_status": "Hali ya HTTP",
        "delivery_status": "Hali",
        "delivery_statuses": {
            "pending": "inasubiri",
            "sending": "inatumwa",
            "delivered": "imefika",
            "failed": "imeshindwa",
        },
        "next_retry": "Jaribio lijalo",
        "replay": "Tuma tena",
        "paused_reason": "Sababu",
        "reason_admin": "imesitishwa na msimamizi",
        "reason_failures": "majaribio {n} mfululizo yameshindwa",
        "unavailable": "Huduma ya webhooks haipatikani sasa. Jaribu tena baada ya muda mfupi.",
        "required_field": "inahitajika",
        "back": "Rudi kwenye usajili wote",
        "secret_label": "Siri",
    },
    "en": {
        "title": "Webhooks",
        "intro": "e-GA systems that receive Mkutano's events by a signed HTTP POST.",
        "subscriptions": "Webhook subscriptions",
        "none": "No subscription yet.",
        "url": "Target URL",
        "url_hint": "The receiving system's https://…; internal addresses are refused.",
        "label": "System name",
        "owner_email": "Owner's email (told when the subscription is paused)",
        "owner": "Owner's email",
        "event_types": "Event types",
        "streams": {
            "tz.go.ega.registration.*": "Participants' registrations (registration)",
            "tz.go.ega.resolutions.*": "Resolutions (resolutions)",
            "tz.go.ega.notification.*": "Notifications (notification)",
        },
        "other_types": "Other types or patterns (one a line)",
        "purpose": "Personal data: purpose (empty = no personal data)",
        "purpose_hint": "Fill in only if the system needs names, emails or phones (PDPA).",
        "create": "Create the subscription",
        "new": "New subscription",
        "state": "State",
        "states": {"active": "active", "paused": "paused"},
        "failures": "Failures in a row",
        "personal_data": "Personal data",
        "granted": "granted: {purpose}",
        "not_granted": "not sent",
        "open": "Open",
        "secret_title": "Signing secret",
        "secret_warning": (
            "Copy this secret now into the receiving system: it will not be shown again."
        ),
        "created": "The subscription is created.",
        "rotated": "A new secret is issued. The old one stays valid until {until}.",
        "pause": "Pause",
        "resume": "Resume",
        "delete": "Delete",
        "rotate": "Rotate the secret",
        "confirm_delete": "Delete this subscription and its whole delivery log?",
        "confirm_rotate": "Issue a new secret? The old one stays valid for the overlap only.",
        "confirm": "Yes, go ahead",
        "cancel": "No, go back",
        "paused_msg": "The subscription is paused.",
        "resumed_msg": "The subscription is resumed.",
        "deleted_msg": "The subscription is deleted.",
        "replayed_msg": "The delivery will be sent again.",
        "deliveries": "Delivery log",
        "no_deliveries": "No delivery yet.",
        "time": "Time",
        "time_note": "Every time is East Africa Time.",
        "target": "Target",
        "event_type": "Event type",
        "attempts": "Attempts",
        "http_status": "HTTP status",
        "delivery_status": "Status",
        "delivery_statuses": {
            "pending": "pending",
            "sending": "being sent",
            "delivered": "delivered",
            "failed": "failed",
        },
        "next_retry": "Next retry",
        "replay": "Send again",
        "paused_reason": "Reason",
        "reason_admin": "paused by an admin",
        "reason_failures": "{n} failed attempts in a row",
        "unavailable": "The webhooks service cannot be reached now. Try again shortly.",
        "required_field": "required",
        "back": "Back to every subscription",
        "secret_label": "Secret",
    },
}

_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def subscription_body(
    form: Mapping[str, Sequence[str]], t: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The API's ``SubscriptionCreate`` body from the form, and what is missing
    (field = the input's id)."""

    def one(name: str) -> str:
        values = form.get(name) or []
        return str(values[0]).strip() if values else ""

    types = [str(v) for v in form.get("streams") or [] if str(v) in STREAM_PATTERNS]
    for line in re.split(r"[\n,]", one("other_types")):
        if line.strip() and line.strip() not in types:
            types.append(line.strip())
    body: dict[str, Any] = {
        "url": one("url"),
        "label": one("label"),
        "owner_email": one("owner_email"),
        "event_types": types,
    }
    if one("purpose"):
        body["personal_data"] = {"purpose": one("purpose")}
    errors = [
        {"field": name, "reason": str(t["required_field"])}
        for name in ("url", "label", "owner_email", "event_types")
        if not body[name]
    ]
    return body, errors


def reason_text(reason: str | None, t: Mapping[str, Any]) -> str:
    """Why a subscription is paused, in the page's language (the service says it in
    English: "paused by an admin", "20 failed attempts in a row")."""
    if not reason:
        return ""
    if reason == "paused by an admin":
        return str(t["reason_admin"])
    found = re.fullmatch(r"(\d+) failed attempts in a row", reason)
    return str(t["reason_failures"]).format(n=found.group(1)) if found else reason


def field_of(api_field: str) -> str:
    """The form's input for a field the API names (``event_types.0`` → ``event_types``,
    ``personal_data.purpose`` → ``purpose``)."""
    head = api_field.split(".")[0]
    if head == "personal_data":
        return "purpose"
    return head if head in FORM_FIELDS else "url"


def api_errors(answer: Answer) -> list[dict[str, str]]:
    """The API's refusal (the common error shape) beside the form's fields."""
    error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
    fields = error.get("fields") or [{"field": "url", "reason": error.get("message", "")}]
    return [
        {"field": field_of(str(f.get("field", ""))), "reason": str(f.get("reason", ""))}
        for f in fields
    ]


def _t(request: Request, session: Any) -> dict[str, Any]:
    return LABELS[web._lang(request, session)]


def _unavailable(request: Request, session: Any) -> web.Refused:
    return web.Refused(
        web.render(
            request,
            "message.html.j2",
            session,
            status=503,
            title=_t(request, session)["title"],
            message=_t(request, session)["unavailable"],
        )
    )


async def _call(request: Request, session: Any, method: str, path: str, **kw: Any) -> Answer:
    try:
        return await handlers.call(web._ctx(request), session, "webhooks", method, path, **kw)
    except handlers.ServiceUnavailable:
        raise _unavailable(request, session) from None


def _check_id(request: Request, session: Any, value: str) -> str:
    if not _ID.match(value):
        raise web._not_found(request, session)
    return value


async def _pop_flash(request: Request, session: Any, *names: str) -> dict[str, Any]:
    found = {n: session.data.pop(n) for n in names if n in session.data}
    if found:
        await handlers.remember(web._ctx(request), session)
    return found


def _list_page(
    request: Request,
    session: Any,
    subscriptions: list[dict[str, Any]],
    *,
    values: Mapping[str, Sequence[str]] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
    flash: str | None = None,
) -> Response:
    return web.render(
        request,
        "hooks_list.html.j2",
        session,
        status=status,
        w=_t(request, session),
        subscriptions=subscriptions,
        reason=lambda r: reason_text(r, _t(request, session)),
        streams=STREAM_PATTERNS,
        values=values or {},
        errors=errors or [],
        error_of={e["field"]: e["reason"] for e in errors or []},
        flash=flash,
    )


@router.get("/webhooks", response_class=HTMLResponse)
async def subscriptions_page(request: Request) -> Response:
    session = await web._require(request, "webhooks")
    answer = await _call(request, session, "GET", "/api/v1/subscriptions")
    subscriptions = web._or_fail(request, session, answer)
    flash = (await _pop_flash(request, session, "flash")).get("flash")
    return _list_page(request, session, subscriptions, flash=flash)


@router.post("/webhooks", response_class=HTMLResponse)
async def create_subscription(request: Request) -> Response:
    session = await web._require(request, "webhooks")
    await web._form(request, session)  # the CSRF check
    raw = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in raw.multi_items():
        if key != "csrf_token":
            values.setdefault(key, []).append(str(value))
    t = _t(request, session)
    body, errors = subscription_body(values, t)
    answer = None
    if not errors:
        answer = await _call(request, session, "POST", "/api/v1/subscriptions", json=body)
        if answer.ok and isinstance(answer.body, dict):
            created = answer.body
            await handlers.remember(
                web._ctx(request),
                session,
                hook_secret={"id": created["id"], "secret": created["secret"]},
                flash=t["created"],
            )
            return RedirectResponse(f"/webhooks/{created['id']}", status_code=303)
        errors = api_errors(answer)
    listed = await _call(request, session, "GET", "/api/v1/subscriptions")
    status = 422 if answer is None else (answer.status if 400 <= answer.status < 500 else 502)
    return _list_page(
        request,
        session,
        listed.body if listed.ok and isinstance(listed.body, list) else [],
        values=values,
        errors=errors,
        status=status,
    )


@router.get("/webhooks/{subscription_id}", response_class=HTMLResponse)
async def subscription_page(subscription_id: str, request: Request) -> Response:
    session = await web._require(request, "webhooks")
    sid = _check_id(request, session, subscription_id)
    subscription = web._or_fail(
        request, session, await _call(request, session, "GET", f"/api/v1/subscriptions/{sid}")
    )
    deliveries = web._or_fail(
        request,
        session,
        await _call(
            request,
            session,
            "GET",
            f"/api/v1/subscriptions/{sid}/deliveries",
            params={"limit": 100},
        ),
    )
    once = await _pop_flash(request, session, "flash", "hook_secret")
    secret = once.get("hook_secret")
    if not secret or secret.get("id") != sid:
        secret = None
    confirm = request.query_params.get("confirm")
    return web.render(
        request,
        "hooks_subscription.html.j2",
        session,
        w=_t(request, session),
        sub=subscription,
        reason=lambda r: reason_text(r, _t(request, session)),
        deliveries=deliveries,
        secret=secret,
        flash=once.get("flash"),
        confirm=confirm if confirm in ("delete", "rotate") else None,
        # The secret never goes into a cache (the page shows it once).
        headers={"Cache-Control": "no-store"},
    )


ACTIONS = {
    "pause": ("POST", "/pause", "paused_msg"),
    "resume": ("POST", "/resume", "resumed_msg"),
    "rotate": ("POST", "/rotate-secret", "rotated"),
    "delete": ("DELETE", "", "deleted_msg"),
}


@router.post("/webhooks/{subscription_id}/{action}", response_class=HTMLResponse)
async def subscription_action(subscription_id: str, action: str, request: Request) -> Response:
    """pause, resume; rotate and delete once confirmed (``confirmed=yes``, else the
    subscription's page asks first)."""
    session = await web._require(request, "webhooks")
    sid = _check_id(request, session, subscription_id)
    if action not in ACTIONS:
        raise web._not_found(request, session)
    form = await web._form(request, session)
    if action in ("rotate", "delete") and form.get("confirmed") != "yes":
        return RedirectResponse(f"/webhooks/{sid}?confirm={action}#confirm", status_code=303)
    method, suffix, message = ACTIONS[action]
    answer = await _call(request, session, method, f"/api/v1/subscriptions/{sid}{suffix}")
    body = web._or_fail(request, session, answer)
    t = _t(request, session)
    ctx = web._ctx(request)
    if action == "delete":
        await handlers.remember(ctx, session, flash=t[message])
        return RedirectResponse("/webhooks", status_code=303)
    if action == "rotate":
        until = web._fmt_time(body.get("previous_secret_valid_until"))
        await handlers.remember(
            ctx,
            session,
            hook_secret={"id": sid, "secret": body["secret"]},
            flash=t[message].format(until=until or "—"),
        )
    else:
        await handlers.remember(ctx, session, flash=t[message])
    return RedirectResponse(f"/webhooks/{sid}", status_code=303)


@router.post("/webhooks/{subscription_id}/deliveries/{event_id}/replay")
async def replay_delivery(subscription_id: str, event_id: str, request: Request) -> Response:
    session = await web._require(request, "webhooks")
    sid = _check_id(request, session, subscription_id)
    eid = _check_id(request, session, event_id)
    await web._form(request, session)
    answer = await _call(
        request, session, "POST", f"/api/v1/subscriptions/{sid}/deliveries/{eid}/replay"
    )
    web._or_fail(request, session, answer)
    await handlers.remember(web._ctx(request), session, flash=_t(request, session)["replayed_msg"])
    return RedirectResponse(f"/webhooks/{sid}", status_code=303)
