"""The focal person's report page: a bilingual, accessible HTML form, no account needed.

Opened by the signed link each focal person gets by email (``/report/{link}``): the
resolution, its actions and latest updates, and a form for a new update — status,
progress, a note, evidence links and files. Works without JavaScript (a plain
``multipart/form-data`` POST, then a redirect), on a phone, in Swahili and English. The
form runs the same use case whatever the rules decide (counted at once, or pending a
coordinator's approval). An expired, tampered or unknown link gets the same answer.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from services.resolutions import handlers
from services.resolutions.api import ERROR_STATUSES, file_response
from services.resolutions.domain import (
    MAX_FILES_PER_UPDATE,
    STATUS_CATALOGUE,
    STATUS_LABELS,
    DomainError,
    ProgressUpdate,
    report_path,
)
from shared.errors import ApiError, status_for
from shared.http import MiB, body_limit
from shared.ratelimit import Limit, client_address, enforce

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# The form's body: up to MAX_FILES_PER_UPDATE files of the default 10 MiB, and the fields.
FORM_MAX_BYTES = MAX_FILES_PER_UPDATE * 10 * MiB + MiB
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "html_lang": "sw",
        "other_language": ("en", "English"),
        "skip": "Ruka hadi maudhui",
        "language": "Lugha",
        "title": "Taarifa ya utekelezaji",
        "resolution": "Azimio",
        "conference": "Mkutano",
        "status": "Hali",
        "progress": "Maendeleo (%)",
        "progress_hint": "Namba kati ya 0 na 100. Acha wazi kubaki na maendeleo ya sasa.",
        "target_date": "Muda wa mwisho",
        "lead_institution": "Taasisi kiongozi",
        "actions": "Hatua",
        "action": "Hatua",
        "institution": "Taasisi",
        "no_actions": "Azimio hili halina hatua ndogo.",
        "latest": "Taarifa za karibuni",
        "no_updates": "Bado hakuna taarifa.",
        "evidence": "Ushahidi",
        "your_pending": "Taarifa zako zinazosubiri kuidhinishwa",
        "pending_note": "Taarifa hizi zitaonekana kwenye ripoti baada ya mratibu kuziidhinisha.",
        "form_title": "Tuma taarifa mpya",
        "keep_status": "— Bila kubadilisha hali —",
        "note": "Maelezo",
        "note_hint": "Kilichofanyika, changamoto, hatua inayofuata.",
        "links": "Viungo vya ushahidi",
        "links_hint": "Kiungo kimoja kwa kila mstari (https://…).",
        "files": "Mafaili ya ushahidi",
        "files_hint": "PDF, picha au nyaraka za ofisi (Word, Excel, PowerPoint, OpenDocument);"
        " hadi mafaili {n}, kila moja hadi {mb} MiB.",
        "submit": "Tuma taarifa",
        "errors_title": "Tafadhali rekebisha yafuatayo",
        "sent": "Asante. Taarifa yako imerekodiwa.",
        "sent_pending": "Asante. Taarifa yako imepokelewa na inasubiri kuidhinishwa na mratibu.",
        "form_expired": "Fomu hii imepitwa na muda. Fungua ukurasa tena na ujaribu tena.",
        "stale": "Azimio limebadilika tangu ulipofungua ukurasa huu (sasa toleo {v}). "
        "Angalia hali mpya hapa chini kisha utume tena.",
        "slow_title": "Maombi mengi mno",
        "slow_body": "Maombi mengi mno kutoka anwani hii. Subiri dakika moja, kisha ujaribu tena.",
        "gone_title": "Kiungo hiki hakifunguki",
        "gone_body": "Kiungo hiki hakifungui ukurasa wowote. Huenda kimepitwa na muda."
        " Kiungo kipya kitakufikia kwa barua pepe ijayo, au wasiliana na mratibu wa maazimio.",
        "recorded_by_you": "na wewe",
        "version": "Toleo",
        "statuses": {s: v["sw"] for s, v in STATUS_LABELS.items()},
        "fields": {
            "status": "Hali",
            "progress": "Maendeleo",
            "note": "Maelezo",
            "links": "Viungo",
            "files": "Mafaili",
            "version": "Toleo",
            "form": "Fomu",
        },
    },
    "en": {
        "html_lang": "en",
        "other_language": ("sw", "Kiswahili"),
        "skip": "Skip to content",
        "language": "Language",
        "title": "Implementation report",
        "resolution": "Resolution",
        "conference": "Conference",
        "status": "Status",
        "progress": "Progress (%)",
        "progress_hint": "A number from 0 to 100. Leave it empty to keep the current progress.",
        "target_date": "Target date",
        "lead_institution": "Lead institution",
        "actions": "Actions",
        "action": "Action",
        "institution": "Institution",
        "no_actions": "This resolution has no separate actions.",
        "latest": "Latest updates",
        "no_updates": "No updates yet.",
        "evidence": "Evidence",
        "your_pending": "Your updates waiting for approval",
        "pending_note": "These updates appear in the report once a coordinator approves them.",
        "form_title": "Send a new update",
        "keep_status": "— Keep the current status —",
        "note": "Note",
        "note_hint": "What was done, what is in the way, what comes next.",
        "links": "Evidence links",
        "links_hint": "One link per line (https://…).",
        "files": "Evidence files",
        "files_hint": "PDF, images or office documents (Word, Excel, PowerPoint, OpenDocument);"
        " up to {n} files, each up to {mb} MiB.",
        "submit": "Send the update",
        "errors_title": "Please correct the following",
        "sent": "Thank you. Your update has been recorded.",
        "sent_pending": "Thank you. Your update was received and waits for a coordinator's"
        " approval.",
        "form_expired": "This form has expired. Open the page again and try again.",
        "stale": "The resolution changed since you opened this page (now version {v}). "
        "Check the new state below, then send again.",
        "slow_title": "Too many requests",
        "slow_body": "Too many requests from this address. Wait a minute, then try again.",
        "gone_title": "This link does not open",
        "gone_body": "This link does not open a page. It may have expired. A new link will"
        " reach you with the next email, or contact the resolutions coordinator.",
        "recorded_by_you": "by you",
        "version": "Version",
        "statuses": {s: v["en"] for s, v in STATUS_LABELS.items()},
        "fields": {
            "status": "Status",
            "progress": "Progress",
            "note": "Note",
            "links": "Links",
            "files": "Files",
            "version": "Version",
            "form": "Form",
        },
    },
}


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _lang(value: str | None, default: str = "sw") -> str:
    return value if value in LABELS else (default if default in LABELS else "sw")


def _render(name: str, status: int, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


async def _limited(request: Request, language: str) -> HTMLResponse | None:
    """The report pages' per-address limit: the page saying so (429, Retry-After)."""
    per_min = _ctx(request).report_rate_per_min
    try:
        await enforce(request, "report-link", client_address(request), Limit(per_min, 60))
    except ApiError as exc:
        t = LABELS[language]
        html = templates.get_template("focal_gone.html.j2").render(
            t={**t, "gone_title": t["slow_title"], "gone_body": t["slow_body"]}, lang=language
        )
        return HTMLResponse(html, status_code=429, headers={**NO_STORE, **exc.headers})
    return None


def _gone(language: str) -> HTMLResponse:
    """The one answer to an expired, tampered or unknown link."""
    t = LABELS[language]
    return _render("focal_gone.html.j2", 404, t=t, lang=language)


async def _open(request: Request, link: str) -> handlers.FocalView | None:
    try:
        return await handlers.open_report_link(_ctx(request), link[:80])
    except DomainError:
        return None


def _page(
    request: Request,
    link: str,
    view: handlers.FocalView,
    language: str,
    status: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    t = LABELS[language]
    resolution = view.resolution
    base = report_path(link)
    timeline = list(reversed(resolution.timeline))[:5]
    assert ctx.links is not None
    return _render(
        "focal.html.j2",
        status,
        t=t,
        lang=language,
        lang_url=f"{base}?lang={t['other_language'][0]}",
        base=base,
        csrf=ctx.links.form_token(link),
        r=resolution,
        title=resolution.title_sw if language == "sw" else resolution.title_en,
        description=resolution.description_sw if language == "sw" else resolution.description_en,
        conference=view.conference.name_sw if language == "sw" else view.conference.name_en,
        status_label=t["statuses"].get(resolution.status, resolution.status),
        statuses=list(STATUS_CATALOGUE),
        timeline=[asdict(e) for e in timeline],
        me=view.person_key,
        pending=[asdict(p) for p in view.my_pending],
        files_hint=t["files_hint"].format(n=MAX_FILES_PER_UPDATE, mb=ctx.evidence_max_bytes // MiB),
        errors=errors or {},
        values=values or {},
        notice=notice,
    )


@router.get("/report/{link}", response_class=HTMLResponse)
async def report_page(
    link: str, request: Request, lang: str | None = None, sent: str | None = None
) -> Response:
    """A focal person's page for their resolution (opened by their signed link)."""
    if (limited := await _limited(request, _lang(lang))) is not None:
        return limited
    view = await _open(request, link)
    if view is None:
        return _gone(_lang(lang))
    language = _lang(lang, view.person.language)
    t = LABELS[language]
    notice = {"1": t["sent"], "pending": t["sent_pending"]}.get(sent or "")
    return _page(request, link, view, language, notice=notice)


def _form_problems(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in exc.errors():
        loc = [str(p) for p in problem.get("loc", ())]
        name = loc[0] if loc else "form"
        name = "links" if name == "evidence" else name
        if name not in ("status", "progress", "note", "links", "version"):
            name = "form"
        errors.setdefault(name, problem.get("msg", "invalid"))
    return errors


@router.post(
    "/report/{link}", response_class=HTMLResponse, openapi_extra=body_limit(FORM_MAX_BYTES)
)
async def submit_report(
    link: Annotated[str, PathParam(max_length=80)], request: Request
) -> Response:
    """The page's form: one update, counted or pending approval; the page again with each
    problem beside its field (and nothing written) otherwise."""
    if (limited := await _limited(request, _lang(request.query_params.get("lang")))) is not None:
        return limited
    view = await _open(request, link)
    if view is None:
        return _gone(_lang(None))
    form = await request.form(max_files=MAX_FILES_PER_UPDATE + 1, max_fields=20)
    language = _lang(str(form.get("lang") or ""), view.person.language)
    t = LABELS[language]
    values = {k: str(form.get(k) or "") for k in ("status", "progress", "note", "links", "version")}
    ctx = _ctx(request)
    assert ctx.links is not None
    if not ctx.links.form_token_matches(link, str(form.get("csrf") or "")):
        return _page(request, link, view, language, 403, errors={"form": t["form_expired"]})
    uploads: list[tuple[str, bytes]] = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and (item.filename or item.size):
            uploads.append((item.filename or "evidence", await item.read()))
    raw: dict[str, Any] = {
        "status": values["status"] or None,
        "progress": values["progress"].strip() or None,
        "note": values["note"].replace("\r\n", "\n"),
        "evidence": [u.strip() for u in values["links"].splitlines() if u.strip()],
    }
    if not raw["note"] and uploads and raw["status"] is None and raw["progress"] is None:
        raw["note"] = "Evidence added" if language == "en" else "Ushahidi umeongezwa"
    try:
        update = ProgressUpdate.model_validate(raw)
    except ValidationError as exc:
        return _page(request, link, view, language, 422, errors=_form_problems(exc), values=values)
    version = int(values["version"]) if values["version"].isdigit() else None
    try:
        _, pending = await handlers.submit_focal_update(
            ctx, link, update, uploads, expected_version=version
        )
    except DomainError as exc:
        if exc.code == handlers.LINK_NOT_FOUND:
            return _gone(language)
        message = exc.message
        if exc.code == "version_conflict":
            message = t["stale"].format(v=(exc.details or {}).get("current_version", "?"))
            values = {**values, "version": str((exc.details or {}).get("current_version", ""))}
        view = await _open(request, link) or view
        field = exc.field if exc.field in t["fields"] else "form"
        status = status_for(exc.code, ERROR_STATUSES)
        return _page(request, link, view, language, status, errors={field: message}, values=values)
    done = "pending" if pending is not None else "1"
    return RedirectResponse(f"{report_path(link)}?lang={language}&sent={done}", status_code=303)


@router.get("/report/{link}/evidence/{sha256}")
async def report_evidence(
    link: str,
    sha256: Annotated[str, PathParam(pattern="^[0-9a-f]{64}$")],
    request: Request,
) -> Response:
    """An evidence file of the resolution the link opens (to that focal person only)."""
    if (limited := await _limited(request, "sw")) is not None:
        return limited
    try:
        file = await handlers.evidence_for_link(_ctx(request), link[:80], sha256)
    except DomainError as exc:
        if exc.code == handlers.LINK_NOT_FOUND:
            return _gone("sw")
        return _render("focal_gone.html.j2", 404, t=LABELS["sw"], lang="sw")
    return file_response(file)
