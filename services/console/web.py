"""The console's pages: server-rendered (Jinja2), bilingual, working without JavaScript
(except the camera scanner), each guarded by the roles of ``domain.PAGE_ROLES``.

Every page is a translation: read the session and the form, call one use case (most of
them a call to a service's public API as the person signed in), render. Every POST
carries the session's CSRF token (forms: a hidden field; the scanner's script: the
``X-CSRF-Token`` header); the sign-in form, before any session, a double-submit cookie.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.console import badges, handlers
from services.console.domain import PAGE_ROLES, ConsoleError, StaffSession
from services.console.labels import (
    AUDIENCE_STATUSES,
    LABELS,
    actor_words,
    audience_count,
    audience_words,
)
from services.console.ports import Answer, ServiceUnavailable
from shared.timeutil import EAT

HERE = Path(__file__).parent
REPO_ROOT = HERE.parents[1]
JSQR = REPO_ROOT / "node_modules" / "jsqr" / "dist" / "jsQR.js"
COOKIE = "mk_console"
PRE_CSRF_COOKIE = "mk_console_csrf"
router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
NOT_CONFIRMED = {
    "registration_waitlisted",
    "registration_pending_approval",
    "registration_pending_payment",
    "registration_cancelled",
    "registration_rejected",
}


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _secure(request: Request) -> bool:
    return bool(request.app.state.secure_cookies)


def _lang(request: Request, session: StaffSession | None) -> str:
    wanted = request.query_params.get("lang")
    if wanted in LABELS:
        return wanted
    return session.language if session else "sw"


def _fmt_time(value: str | None) -> str:
    if not value:
        return ""
    try:
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            .astimezone(EAT)
            .strftime("%Y-%m-%d %H:%M")
        )
    except ValueError:
        return value


templates.filters["eat"] = _fmt_time


def render(
    request: Request,
    template: str,
    session: StaffSession | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = _lang(request, session)
    t = LABELS[lang]
    other = t["other_language"][0]
    query = dict(request.query_params)
    query["lang"] = other
    nav = []
    if session is not None:
        if session.may("events"):
            nav.append(("/events", t["events"]))
        if session.may("resolutions"):
            nav.append(("/coordinators", t["coordinators"]))
        if session.may("webhooks"):
            nav.append(("/webhooks", t["webhooks"]))
    html = templates.get_template(template).render(
        t=t,
        lang=lang,
        session=session,
        nav=nav,
        lang_url=f"{request.url.path}?{urlencode(query)}",
        csrf=session.csrf_token if session else "",
        path=request.url.path,
        # A meta refresh only when the person asks for it (no JavaScript): a refresh
        # they did not choose and cannot stop fails WCAG 2.2.1 (axe: meta-refresh).
        auto_refresh=request.query_params.get("auto") == "1",
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


async def _session(request: Request) -> StaffSession | None:
    return await handlers.session_of(_ctx(request), request.cookies.get(COOKIE))


class Refused(Exception):
    """Answered with a page instead of the one asked for (sign in first, or 403)."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def _require(request: Request, page: str) -> StaffSession:
    session = await _session(request)
    if session is None:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise Refused(RedirectResponse(f"/?next={target}", status_code=303))
    wanted = request.query_params.get("lang")
    if wanted in LABELS:  # the language link: kept for this person's next pages
        await handlers.set_language(_ctx(request), session, wanted)
    if not session.may(page):
        t = LABELS[_lang(request, session)]
        raise Refused(
            render(
                request,
                "message.html.j2",
                session,
                status=403,
                title=t["forbidden_title"],
                message=t["forbidden"].format(roles=", ".join(PAGE_ROLES[page])),
            )
        )
    return session


async def _form(request: Request, session: StaffSession) -> dict[str, str]:
    """The posted form, after its CSRF token is checked against the session's."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not session.csrf_ok(form.get("csrf_token") or request.headers.get("x-csrf-token")):
        t = LABELS[_lang(request, session)]
        raise Refused(
            render(request, "message.html.j2", session, status=403, title=t["csrf"], message="")
        )
    return form


async def _call(
    request: Request, session: StaffSession | None, service: str, method: str, path: str, **kw: Any
) -> Answer:
    try:
        return await handlers.call(_ctx(request), session, service, method, path, **kw)
    except ServiceUnavailable:
        t = LABELS[_lang(request, session)]
        raise Refused(
            render(request, "message.html.j2", session, status=503, title=t["unavailable"])
        ) from None


def _not_found(request: Request, session: StaffSession | None) -> Refused:
    t = LABELS[_lang(request, session)]
    return Refused(render(request, "message.html.j2", session, status=404, title=t["not_found"]))


def _or_fail(request: Request, session: StaffSession, answer: Answer) -> Any:
    """The body of a successful answer; a page saying what the service refused otherwise."""
    if answer.ok:
        return answer.body
    if answer.status == 404:
        raise _not_found(request, session)
    message = (answer.body or {}).get("error", {}).get("message", "") if answer.body else ""
    raise Refused(
        render(
            request,
            "message.html.j2",
            session,
            status=answer.status if answer.status >= 400 else 502,
            title=LABELS[_lang(request, session)]["errors_title"],
            message=message,
        )
    )


# -- sign-in ---------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path of this console, else the events page. Browsers read
    ``/\\host`` as ``//host`` and drop tabs and line breaks, so those never pass."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return target
    return "/events"


@router.get("/", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    """The sign-in page (the console's front door)."""
    session = await _session(request)
    if session is not None:
        return RedirectResponse(_landing(session, request.query_params.get("next")), 303)
    return _sign_in_form(request)


def _sign_in_form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "sign_in.html.j2",
        None,
        status=status,
        pre_csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
        oidc=_ctx(request).idp is not None,
        # The identity provider's sign-in keeps the page to open, and a language chosen here.
        oidc_query=urlencode(
            {"next": _safe_next(request.query_params.get("next"))}
            | ({"lang": wanted} if (wanted := request.query_params.get("lang")) in LABELS else {})
        ),
        lang_chosen=request.query_params.get("lang") in LABELS,
    )
    response.set_cookie(
        PRE_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    return response


def _landing(session: StaffSession, target: str | None) -> str:
    """Where a signed-in person goes: the page asked for, else their first page (the
    events, or the resolutions for a coordinator, who has no events page)."""
    page = _safe_next(target)
    if page == "/events" and not session.may("events") and session.may("coordinators"):
        return "/coordinators"
    return page


def _start_session(request: Request, session: StaffSession, target: str) -> Response:
    response = RedirectResponse(_landing(session, target), status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="lax",  # sent on the identity provider's redirect back, not on others' posts
        secure=_secure(request),
        path="/",
        max_age=int(_ctx(request).absolute.total_seconds()),
    )
    response.delete_cookie(PRE_CSRF_COOKIE, path="/")
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    pre = request.cookies.get(PRE_CSRF_COOKIE, "")
    t = LABELS[_lang(request, None)]
    if not pre or not secrets.compare_digest(pre, form.get("csrf_token", "")):
        return _sign_in_form(request, error=t["csrf"], status=403)
    try:
        session = await handlers.sign_in(
            _ctx(request), form.get("username", ""), form.get("password", ""), form.get("totp")
        )
    except ConsoleError as exc:
        return _sign_in_form(request, error=_sign_in_error(request, exc), status=401)
    if request.query_params.get("lang") in LABELS:
        await handlers.set_language(_ctx(request), session, request.query_params["lang"])
    return _start_session(request, session, form.get("next", ""))


def _sign_in_error(request: Request, exc: ConsoleError) -> str:
    """A sign-in refusal in the page's language (the rule's English text if unnamed)."""
    return str(LABELS[_lang(request, None)].get(f"error_{exc.code}", exc.message))


@router.get("/sign-in/oidc")
async def sign_in_oidc(request: Request) -> Response:
    wanted = request.query_params.get("lang")
    try:
        url = await handlers.begin_oidc_sign_in(
            _ctx(request),
            language=wanted if wanted in LABELS else None,
            next=_safe_next(request.query_params.get("next")),
        )
    except ConsoleError as exc:
        return _sign_in_form(request, error=_sign_in_error(request, exc), status=404)
    return RedirectResponse(url, status_code=303)


@router.get("/sign-in/oidc/callback")
async def sign_in_oidc_callback(request: Request) -> Response:
    try:
        session, target = await handlers.finish_oidc_sign_in(
            _ctx(request),
            request.query_params.get("state", ""),
            request.query_params.get("code", ""),
        )
    except ConsoleError as exc:
        return _sign_in_form(request, error=_sign_in_error(request, exc), status=401)
    return _start_session(request, session, target)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    session = await _session(request)
    if session is not None:
        await _form(request, session)
        await handlers.sign_out(_ctx(request), session)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/language")
async def choose_language(request: Request) -> Response:
    session = await _require(request, "events")
    form = await _form(request, session)
    await handlers.set_language(_ctx(request), session, form.get("language", ""))
    return RedirectResponse(_safe_next(form.get("next")), status_code=303)


# -- events ----------------------------------------------------------------------------------


@router.get("/events", response_class=HTMLResponse)
async def events(request: Request) -> Response:
    session = await _require(request, "events")
    # Every state: drafts being prepared, and closed events whose door is still open.
    answer = await _call(
        request, session, "registration", "GET", "/api/v1/events", params={"state": "all"}
    )
    return render(request, "events.html.j2", session, events=_or_fail(request, session, answer))


# -- a new event (organisers): the details, previewed, then created as a draft ----------------

NEW_EVENT_FIELDS = ("id", "code", *("title_sw", "title_en", "venue", "city", "starts_at",
                    "ends_at", "registration_opens_at", "registration_closes_at", "capacity"))  # fmt: skip


def _new_event_body(values: dict[str, str]) -> dict[str, Any]:
    """The API's body for the form's values (times as typed: registration reads a time
    without an offset as the venue's, East Africa Time); empty optional fields left out."""
    body: dict[str, Any] = {k: v for k, v in values.items() if v and k != "requires_approval"}
    if values.get("capacity", "").isdigit():
        body["capacity"] = int(values["capacity"])
    body["requires_approval"] = values.get("requires_approval") == "yes"
    body["state"] = "draft"
    return body


def _new_event_page(
    request: Request,
    session: StaffSession,
    values: dict[str, str],
    *,
    preview: bool = False,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "event_new.html.j2",
        session,
        status=status,
        values=values,
        preview=preview,
        errors=errors or [],
        fields=[(n, EDITABLE.get(n, "text")) for n in NEW_EVENT_FIELDS],
    )


@router.get("/events/new", response_class=HTMLResponse)
async def new_event_form(request: Request) -> Response:
    session = await _require(request, "edit_event")
    return _new_event_page(request, session, {})


@router.post("/events/new", response_class=HTMLResponse)
async def new_event_post(request: Request) -> Response:
    """Preview the new event's details, then create it as a draft: categories, fees,
    questions and reminders follow on the editor's pages; publishing opens registration."""
    session = await _require(request, "edit_event")
    form = await _form(request, session)
    values = {n: form.get(n, "").strip() for n in (*NEW_EVENT_FIELDS, "requires_approval")}
    t = LABELS[_lang(request, session)]
    errors = [{"field": n, "reason": t["required"]}
              for n in ("id", "code", "title_sw", "title_en", "venue", "city", "starts_at",
                        "ends_at", "capacity") if not values[n]]  # fmt: skip
    if errors:
        return _new_event_page(request, session, values, errors=errors, status=422)
    if form.get("step") != "save":
        return _new_event_page(request, session, values, preview=True)
    answer = await _call(
        request, session, "registration", "POST", "/api/v1/events", json=_new_event_body(values)
    )
    if not answer.ok:
        error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
        fields = [
            {"field": str(f.get("field", "")).split(".")[0], "reason": str(f.get("reason", ""))}
            for f in error.get("fields") or []
        ] or [{"field": "id", "reason": str(error.get("message", ""))}]
        return _new_event_page(
            request,
            session,
            values,
            errors=fields,
            status=answer.status if answer.status < 500 else 502,
        )
    created = answer.body or {}
    await handlers.remember(_ctx(request), session, flash=t["event_created"])
    return RedirectResponse(f"/events/{created.get('id', values['id'])}/edit", status_code=303)


async def _event(request: Request, session: StaffSession, event_id: str) -> dict[str, Any]:
    answer = await _call(request, session, "registration", "GET", f"/api/v1/events/{event_id}")
    return dict(_or_fail(request, session, answer))


@router.get("/events/{event_id}", response_class=HTMLResponse)
async def dashboard(event_id: str, request: Request) -> Response:
    """Registrations by status, category, institution, region; seats; check-ins per day.
    Refreshes itself (a meta refresh: no JavaScript needed)."""
    session = await _require(request, "dashboard")
    event = await _event(request, session, event_id)
    stats = _or_fail(
        request,
        session,
        await _call(
            request, session, "registration", "GET", f"/api/v1/events/{event_id}/statistics"
        ),
    )
    door = _or_fail(
        request,
        session,
        await _call(
            request, session, "registration", "GET", f"/api/v1/events/{event_id}/door-list"
        ),
    )
    per_day = Counter(day for item in door["items"] for day in item.get("checkins", {}))
    refresh = request.app.state.dashboard_refresh_s
    # Payments' figures; the page renders without them when payments cannot answer.
    payments = await handlers.payments_summary(_ctx(request), session, event_id)
    return render(
        request,
        "dashboard.html.j2",
        session,
        event=event,
        stats=stats,
        by_category=stats.get("by_category") or stats.get("by_cadre") or {},
        checkins=sorted(per_day.items()),
        refresh_s=refresh,
        payments=payments,
    )


# -- registrations ---------------------------------------------------------------------------

# The orders registration's list API sorts the whole list in (the console never sorts a
# page itself: a second page continues where the first stopped).
SORTS = ("created", "-created", "name", "status")


@router.get("/events/{event_id}/registrations", response_class=HTMLResponse)
async def registrations(event_id: str, request: Request) -> Response:
    session = await _require(request, "registrations")
    event = await _event(request, session, event_id)
    q = request.query_params
    categories = {c["code"] for c in event.get("categories") or []}
    filters = {
        "q": (q.get("q") or "").strip()[:100],
        "status": q.get("status") or "",
        "category": q.get("category") if q.get("category") in categories else "",
        "institution": (q.get("institution") or "").strip()[:200],
        "region": (q.get("region") or "").strip()[:60],
    }
    sort = q.get("sort") if q.get("sort") in SORTS else "created"
    chosen = {k: v for k, v in filters.items() if v}
    params = {**chosen, "sort": sort, "limit": 25, "cursor": q.get("cursor") or None}
    page = _or_fail(
        request,
        session,
        await _call(
            request,
            session,
            "registration",
            "GET",
            f"/api/v1/events/{event_id}/registrations",
            params=params,
        ),
    )
    next_url = None
    if page.get("next_cursor"):
        next_url = "?" + urlencode({**chosen, "sort": sort, "cursor": page["next_cursor"]})
    return render(
        request,
        "registrations.html.j2",
        session,
        event=event,
        items=page["items"],
        filters=filters,
        category_names={
            c["code"]: {"sw": c.get("name_sw"), "en": c.get("name_en")}
            for c in event.get("categories") or []
        },
        sort=sort,
        next_url=next_url,
        first_url="?" + urlencode({**chosen, "sort": sort}),
        # The export keeps the filters; its rows stay in registration order.
        export_url=f"/events/{event_id}/registrations.csv?" + urlencode(chosen),
    )


async def _registration(
    request: Request, session: StaffSession, event_id: str, reference: str
) -> dict[str, Any]:
    page = _or_fail(
        request,
        session,
        await _call(
            request,
            session,
            "registration",
            "GET",
            f"/api/v1/events/{event_id}/registrations",
            params={"q": reference, "limit": 10},
        ),
    )
    for item in page["items"]:
        if item["reference"] == reference:
            return dict(item)
    raise _not_found(request, session)


@router.get("/events/{event_id}/registrations.csv")
async def export(event_id: str, request: Request) -> Response:
    session = await _require(request, "export")
    answer = await _call(
        request,
        session,
        "registration",
        "GET",
        f"/api/v1/events/{event_id}/registrations.csv",
        params=dict(request.query_params),
    )
    if not answer.ok:
        _or_fail(request, session, answer)
    return Response(
        answer.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event_id}-registrations.csv"'},
    )


@router.get("/events/{event_id}/registrations/{reference}", response_class=HTMLResponse)
async def person(event_id: str, reference: str, request: Request) -> Response:
    """A person's page: details, answers, status and check-ins, and the delivery log."""
    session = await _require(request, "registrations")
    event = await _event(request, session, event_id)
    registration = await _registration(request, session, event_id, reference)
    deliveries = await _call(
        request,
        session,
        "notification",
        "GET",
        "/api/v1/notifications",
        params={"registration_id": registration["id"], "limit": 100},
    )
    history = await _call(
        request,
        session,
        "registration",
        "GET",
        f"/api/v1/registrations/{quote(registration['id'], safe='')}/history",
    )
    entries = list(history.body.get("history") or []) if history.ok else None
    lang = _lang(request, session)
    names = await handlers.staff_names(_ctx(request), [e.get("by") for e in entries or []])
    flash = session.data.pop("flash", None)
    if flash:
        await handlers.remember(_ctx(request), session)
    return render(
        request,
        "person.html.j2",
        session,
        event=event,
        r=registration,
        deliveries=deliveries.body if deliveries.ok else [],
        history=entries,
        who=lambda actor: actor_words(lang, actor, names),
        flash=flash,
    )


@router.post("/events/{event_id}/registrations/{reference}/{action}")
async def decide(event_id: str, reference: str, action: str, request: Request) -> Response:
    """Approve, reject (reason), cancel (reason), or resend a message."""
    session = await _require(request, "decide")
    form = await _form(request, session)
    t = LABELS[_lang(request, session)]
    registration = await _registration(request, session, event_id, reference)
    rid = registration["id"]
    reason = form.get("reason", "").strip()
    if action in ("reject", "cancel") and not reason:
        await handlers.remember(_ctx(request), session, flash=t["reason_required"])
        return RedirectResponse(request.url.path.rsplit("/", 1)[0], status_code=303)
    if action == "approve":
        answer = await _call(
            request, session, "registration", "POST", f"/api/v1/registrations/{rid}/approve"
        )
    elif action == "reject":
        answer = await _call(
            request,
            session,
            "registration",
            "POST",
            f"/api/v1/registrations/{rid}/reject",
            json={"reason": reason},
        )
    elif action == "cancel":
        answer = await _call(
            request,
            session,
            "registration",
            "POST",
            f"/api/v1/events/{event_id}/registrations/{rid}/cancel",
            json={"reason": reason},
        )
    elif action == "resend":
        notification = form.get("notification_id", "")
        answer = await _call(
            request,
            session,
            "notification",
            "POST",
            f"/api/v1/notifications/{quote(notification, safe='')}/resend",
        )
    else:
        raise _not_found(request, session)
    message = t["done"] if answer.ok else (answer.body or {}).get("error", {}).get("message", "")
    await handlers.remember(_ctx(request), session, flash=message)
    return RedirectResponse(f"/events/{event_id}/registrations/{quote(reference)}", status_code=303)


# -- the event editor ------------------------------------------------------------------------

EDITABLE = {
    "title_sw": "text",
    "title_en": "text",
    "venue": "text",
    "city": "text",
    "starts_at": "datetime-local",
    "ends_at": "datetime-local",
    "registration_opens_at": "datetime-local",
    "registration_closes_at": "datetime-local",
    "capacity": "number",
}
# An event's states (registration's EventState), in the editor's order.
EVENT_STATES = ("draft", "published", "closed", "cancelled")


def _local(value: str | None) -> str:
    """An API time as the value of a datetime-local field (venue time)."""
    if not value:
        return ""
    return (
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        .astimezone(EAT)
        .strftime("%Y-%m-%dT%H:%M")
    )


def _event_values(event: dict[str, Any]) -> dict[str, str]:
    values = {}
    for name, kind in EDITABLE.items():
        raw = event.get(name)
        values[name] = (
            _local(raw) if kind == "datetime-local" else ("" if raw is None else str(raw))
        )
    values["requires_approval"] = "yes" if event.get("requires_approval") else ""
    values["state"] = str(event.get("state") or "draft")
    return values


@router.get("/events/{event_id}/edit", response_class=HTMLResponse)
async def event_editor(event_id: str, request: Request) -> Response:
    from services.console import editor  # editor's pages build on this module

    session = await _require(request, "edit_event")
    event = await _event(request, session, event_id)
    values = _event_values(event)
    flash = session.data.pop("flash", None)
    if flash:
        await handlers.remember(_ctx(request), session)
    return render(
        request,
        "event_edit.html.j2",
        session,
        flash=flash,
        event=event,
        values=values,
        changes=[],
        errors=[],
        reminders=await editor.reminders_section(request, session, event_id),
        states=EVENT_STATES,
    )


@router.post("/events/{event_id}/edit", response_class=HTMLResponse)
async def event_editor_post(event_id: str, request: Request) -> Response:
    """Preview the changes (old and new side by side), then confirm: nothing is saved
    before the organiser has seen what changes."""
    session = await _require(request, "edit_event")
    form = await _form(request, session)
    event = await _event(request, session, event_id)
    before = _event_values(event)
    after = {name: form.get(name, "").strip() for name in (*EDITABLE, "requires_approval")}
    state = form.get("state", "").strip()
    after["state"] = state if state in EVENT_STATES else before["state"]
    changes = [(n, before[n], after[n]) for n in after if after[n] != before[n] and after[n] != ""]
    if form.get("step") != "save" or not changes:
        return render(
            request,
            "event_edit.html.j2",
            session,
            event=event,
            values=after,
            changes=changes,
            errors=[],
            states=EVENT_STATES,
        )
    patch: dict[str, Any] = {}
    for name, _old, new in changes:
        if name == "capacity":
            patch[name] = int(new) if new.isdigit() else new
        elif name == "requires_approval":
            patch[name] = new == "yes"
        else:
            patch[name] = new
    if before["requires_approval"] and not after["requires_approval"]:
        patch["requires_approval"] = False
    answer = await _call(
        request, session, "registration", "PATCH", f"/api/v1/events/{event_id}", json=patch
    )
    if not answer.ok:
        error = (answer.body or {}).get("error", {})
        errors = error.get("fields") or [{"field": "title_sw", "reason": error.get("message", "")}]
        return render(
            request,
            "event_edit.html.j2",
            session,
            status=answer.status if answer.status < 500 else 502,
            event=event,
            values=after,
            changes=[],
            errors=errors,
            states=EVENT_STATES,
        )
    return RedirectResponse(f"/events/{event_id}", status_code=303)


# -- announcements ---------------------------------------------------------------------------

ANNOUNCEMENT_FIELDS = ("subject_sw", "subject_en", "body_sw", "body_en", "cadre")
# The audience's lists (repeated form fields / query parameters).
AUDIENCE_LISTS = ("statuses", "categories", "institution_codes")


async def _institutions(request: Request, session: StaffSession) -> list[dict[str, Any]]:
    """The registry's institutions (code, names), for the audience's choices; none when
    registration cannot say (the form still works for statuses and categories)."""
    answer = await _call(request, session, "registration", "GET", "/api/v1/institutions")
    return list(answer.body or []) if answer.ok else []


def _audience_choice(raw: Any, event: dict[str, Any], institutions: list[dict[str, Any]]) -> dict:
    """The ticked statuses, categories and institutions, kept to the offered choices."""
    offered = {
        "statuses": set(AUDIENCE_STATUSES),
        "categories": {c.get("code") for c in event.get("categories") or []},
        "institution_codes": {i.get("code") for i in institutions},
    }
    chosen = {k: sorted({v for v in raw.getlist(k) if v in offered[k]}) for k in AUDIENCE_LISTS}
    chosen["statuses"] = chosen["statuses"] or ["confirmed"]
    return chosen


def _audience_in_words(
    lang: str,
    chosen: dict[str, list[str]],
    event: dict[str, Any],
    institutions: list[dict[str, Any]],
    cadre: str | None,
) -> str:
    name = "name_en" if lang == "en" else "name_sw"
    categories = {c["code"]: c.get(name) or c["code"] for c in event.get("categories") or []}
    names = {i["code"]: i.get(name) or i["code"] for i in institutions}
    return audience_words(
        lang,
        chosen["statuses"],
        [categories.get(c, c) for c in chosen["categories"]],
        [names.get(c, c) for c in chosen["institution_codes"]],
        cadre=cadre or None,
    )


def _fields_of(answer: Answer) -> list[dict[str, str]]:
    error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
    fields = [
        {
            "field": str(f.get("field", "")).split(".")[0] or "subject_sw",
            "reason": f.get("reason", ""),
        }
        for f in error.get("fields") or []
    ]
    return fields or [{"field": "subject_sw", "reason": error.get("message", "")}]


def _announce_page(
    request: Request,
    session: StaffSession,
    *,
    status: int = 200,
    event: dict[str, Any],
    institutions: list[dict[str, Any]],
    draft: dict[str, str],
    chosen: dict[str, list[str]],
    channels: list[str],
    preview: bool,
    errors: list[dict[str, str]],
    count: int | None = None,
) -> Response:
    lang = _lang(request, session)
    return render(
        request,
        "announce.html.j2",
        session,
        status=status,
        event=event,
        institutions=institutions,
        audience_statuses=AUDIENCE_STATUSES,
        draft=draft,
        chosen=chosen,
        channels=channels,
        preview=preview,
        errors=errors,
        audience_in_words=_audience_in_words(lang, chosen, event, institutions, draft.get("cadre")),
        audience_count=None if count is None else audience_count(lang, count),
    )


@router.get("/events/{event_id}/announcements/new", response_class=HTMLResponse)
async def announcement_form(event_id: str, request: Request) -> Response:
    session = await _require(request, "announcements")
    event = await _event(request, session, event_id)
    return _announce_page(
        request,
        session,
        event=event,
        institutions=await _institutions(request, session),
        draft={},
        chosen={"statuses": ["confirmed"], "categories": [], "institution_codes": []},
        channels=["email"],
        preview=False,
        errors=[],
    )


@router.post("/events/{event_id}/announcements", response_class=HTMLResponse)
async def announcement_post(event_id: str, request: Request) -> Response:
    """Preview (``step=preview``: the message, the audience in words and its count) then
    send (``step=send``): nothing goes out unconfirmed."""
    session = await _require(request, "announcements")
    form = await _form(request, session)
    event = await _event(request, session, event_id)
    institutions = await _institutions(request, session)
    draft = {k: form.get(k, "").strip() for k in ANNOUNCEMENT_FIELDS}
    raw = await request.form()
    channels = [c for c in raw.getlist("channels") if c in ("email", "sms")] or ["email"]
    chosen = _audience_choice(raw, event, institutions)
    page = {
        "event": event,
        "institutions": institutions,
        "draft": draft,
        "chosen": chosen,
        "channels": channels,
    }
    errors = [
        {"field": k, "reason": LABELS[_lang(request, session)]["reason_required"]}
        for k in ("subject_sw", "subject_en", "body_sw", "body_en")
        if not draft[k]
    ]
    if errors:
        return _announce_page(request, session, status=422, preview=False, errors=errors, **page)
    audience = {"cadre": draft["cadre"] or None, **chosen}
    if form.get("step") != "send":
        answer = await _call(
            request,
            session,
            "notification",
            "GET",
            "/api/v1/announcements/audience",
            params={"event_id": event_id, **audience},
        )
        if not answer.ok:
            return _announce_page(
                request,
                session,
                status=answer.status if answer.status >= 400 else 502,
                preview=False,
                errors=_fields_of(answer),
                **page,
            )
        return _announce_page(
            request, session, preview=True, errors=[], count=answer.body["count"], **page
        )
    body = {
        "event_id": event_id,
        "subject_sw": draft["subject_sw"],
        "subject_en": draft["subject_en"],
        "body_sw": draft["body_sw"],
        "body_en": draft["body_en"],
        "channels": channels,
        **{k: v for k, v in audience.items() if v},
    }
    answer = await _call(
        request, session, "notification", "POST", "/api/v1/announcements", json=body
    )
    if not answer.ok:
        return _announce_page(
            request, session, status=answer.status, preview=False, errors=_fields_of(answer), **page
        )
    return RedirectResponse(
        f"/events/{event_id}/announcements/{answer.body['id']}", status_code=303
    )


@router.get("/events/{event_id}/announcements/{announcement_id}", response_class=HTMLResponse)
async def announcement_progress(event_id: str, announcement_id: str, request: Request) -> Response:
    session = await _require(request, "announcements")
    event = await _event(request, session, event_id)
    progress = _or_fail(
        request,
        session,
        await _call(
            request,
            session,
            "notification",
            "GET",
            f"/api/v1/announcements/{quote(announcement_id, safe='')}",
        ),
    )
    total = progress["total"]
    finished = progress["sent"] + progress["failed"] + progress["skipped"]
    done = progress["status"] == "done"
    percent = 100 if done else (int(finished * 100 / total) if total else 0)
    return render(
        request,
        "announcement.html.j2",
        session,
        event=event,
        p=progress,
        percent=min(percent, 100),
        done=done,
        refresh_s=None if done else 3,
    )


# -- the door --------------------------------------------------------------------------------


@router.get("/events/{event_id}/door", response_class=HTMLResponse)
async def door(event_id: str, request: Request) -> Response:
    """The registrar's screen: scanner (JavaScript), search and walk-in (no JavaScript)."""
    session = await _require(request, "door")
    event = await _event(request, session, event_id)
    q = (request.query_params.get("q") or "").strip()[:100]
    found: list[dict[str, Any]] = []
    if q:
        found = _or_fail(
            request,
            session,
            await _call(
                request,
                session,
                "registration",
                "GET",
                f"/api/v1/events/{event_id}/door-list",
                params={"q": q, "limit": 20},
            ),
        )["items"]
    return render(
        request,
        "door.html.j2",
        session,
        event=event,
        q=q,
        found=found,
        today=datetime.now(EAT).date().isoformat(),
        headers={"permissions-policy": "camera=(self), microphone=(), geolocation=()"},
    )


def _door_answer(answer: Answer) -> dict[str, Any]:
    """A check-in's answer as the door shows it."""
    body = answer.body or {}
    if answer.ok:
        return {
            "answer": "checked_in",
            "name": body.get("full_name"),
            "institution": body.get("institution"),
            "time": _fmt_time(body.get("checked_in_at"))[-5:],
        }
    code = answer.error_code or ""
    details = body.get("error", {}).get("details") or {}
    if code == "already_checked_in":
        return {"answer": "already", "time": _fmt_time(details.get("checked_in_at"))[-5:]}
    if code in NOT_CONFIRMED:
        return {"answer": "not_confirmed"}
    if code == "wrong_event":
        return {"answer": "wrong_event"}
    if code == "not_an_event_day":
        return {"answer": "not_day"}
    if code in ("invalid_ticket", "validation_error", "registration_not_found"):
        return {"answer": "invalid"}
    return {"answer": "error", "message": body.get("error", {}).get("message", "")}


@router.post("/events/{event_id}/door/check-in")
async def door_check_in(event_id: str, request: Request) -> Response:
    """One check-in: a form (no JavaScript: answers with a full-screen page) or JSON from
    the scanner (``X-CSRF-Token``; answers JSON)."""
    session = await _require(request, "door")
    wants_json = request.headers.get("content-type", "").startswith("application/json")
    if wants_json:
        if not session.csrf_ok(request.headers.get("x-csrf-token")):
            return JSONResponse({"error": {"code": "csrf", "message": "CSRF token"}}, 403)
        payload = await request.json()
        ticket = str(payload.get("ticket", ""))[:400] if isinstance(payload, dict) else ""
    else:
        form = await _form(request, session)
        ticket = form.get("ticket", "")[:400]
    answer = await _call(
        request,
        session,
        "registration",
        "POST",
        "/api/v1/checkins",
        json={"ticket": ticket, "event_id": event_id},
    )
    result = _door_answer(answer)
    if wants_json:
        return JSONResponse(result)
    event = await _event(request, session, event_id)
    return render(request, "answer.html.j2", session, event=event, a=result)


@router.get("/events/{event_id}/door/list.json")
async def door_list_json(event_id: str, request: Request) -> Response:
    """Today's confirmed tickets, for the scanner to keep on the device (offline)."""
    session = await _require(request, "door")
    answer = await _call(
        request, session, "registration", "GET", f"/api/v1/events/{event_id}/door-list"
    )
    if not answer.ok:
        return JSONResponse(answer.body, status_code=answer.status)
    items = [
        {
            "id": i["id"],
            "reference": i["reference"],
            "full_name": i["full_name"],
            "institution": i["institution"],
            "checkins": i.get("checkins", {}),
            # Registrars check in whom they find, offline too: the ticket is what the
            # registration service checks in.
            "ticket": i.get("ticket"),
        }
        for i in answer.body["items"]
    ]
    return JSONResponse(
        {"event_id": event_id, "items": items}, headers={"Cache-Control": "no-store"}
    )


@router.get("/tickets/public-key.json")
async def ticket_public_key(request: Request) -> Response:
    answer = await _call(request, None, "registration", "GET", "/api/v1/tickets/public-key")
    return JSONResponse(answer.body, status_code=answer.status)


@router.post("/events/{event_id}/door/walk-in", response_class=HTMLResponse)
async def walk_in(event_id: str, request: Request) -> Response:
    """Register a walk-in and check them in (registration's walk-ins API)."""
    session = await _require(request, "door")
    form = await _form(request, session)
    event = await _event(request, session, event_id)
    body: dict[str, Any] = {
        "full_name": form.get("full_name", ""),
        "email": form.get("email", ""),
        "phone": form.get("phone", ""),
        "institution": form.get("institution", ""),
        "position": form.get("position", ""),
        "language": _lang(request, session),
        "consent": {"accepted": form.get("consent") == "yes"},
    }
    if form.get("category"):
        body["category"] = form["category"]
    else:
        body["cadre"] = "other_officer"
    answer = await _call(
        request, session, "registration", "POST", f"/api/v1/events/{event_id}/walk-ins", json=body
    )
    if answer.ok:
        result = {
            "answer": "checked_in",
            "name": body["full_name"],
            "institution": body["institution"],
            "time": _fmt_time(answer.body.get("checked_in_at"))[-5:],
        }
    else:
        result = _door_answer(answer)
        if result["answer"] == "invalid":  # a refused form, not a ticket
            error = (answer.body or {}).get("error", {})
            fields = ", ".join(f["field"] for f in error.get("fields", []))
            result = {"answer": "error", "message": f"{error.get('message', '')} {fields}".strip()}
    return render(request, "answer.html.j2", session, event=event, a=result)


@router.get("/events/{event_id}/badges.pdf")
async def badges_pdf(event_id: str, request: Request) -> Response:
    """A6 name badges: one (``?reference=``) or every confirmed participant, in name order."""
    session = await _require(request, "badges")
    event = await _event(request, session, event_id)
    reference = request.query_params.get("reference")
    door_list = _or_fail(
        request,
        session,
        await _call(
            request,
            session,
            "registration",
            "GET",
            f"/api/v1/events/{event_id}/door-list",
            params={"q": reference} if reference else None,
        ),
    )
    people = [p for p in door_list["items"] if not reference or p["reference"] == reference]
    if not people:
        raise _not_found(request, session)
    pdf = badges.render_badges(event, people)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{event_id}-badges.pdf"'},
    )


# -- coordinators: services/console/coordinators.py ------------------------------------------


# -- static ----------------------------------------------------------------------------------


@router.get("/door-sw.js")
async def door_service_worker() -> Response:
    """The door page's service worker, served from the root so that its scope covers the
    door pages (``/events/{id}/door``): they reload while the network is down."""
    return FileResponse(
        HERE / "static" / "door-sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/static/jsQR.js")
async def jsqr() -> Response:
    """The QR decoder of browsers without BarcodeDetector: jsQR from npm, served here."""
    if not JSQR.exists():
        return Response(
            "/* jsQR is not installed (make deps-node) */", media_type="text/javascript"
        )
    return FileResponse(JSQR, media_type="text/javascript")
