"""The resolution coordinators' pages (issue 17): conferences and their resolutions,
creating and editing resolutions and actions with the version check, the timeline with
its evidence, focal persons' pending updates, the CSV import (dry run first) and the
implementation report's preview in both languages.

Only the resolutions service's public API, called with the signed-in person's token; the
console keeps nothing of it except a checked import file in the person's session until
they import it. Coordinators write; auditors read (the pages, the timeline, the evidence
files, which the resolutions service gives to both roles).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import handlers
from services.console.domain import StaffSession
from services.console.labels import LABELS
from services.console.ports import Answer
from services.console.web import _call, _form, _lang, _not_found, _or_fail, _require, render

router = APIRouter(include_in_schema=False)
READ = "resolutions"  # coordinators and auditors
WRITE = "coordinators"  # coordinators
# The largest CSV the console takes (the resolutions service's own bound is 2 MiB).
MAX_CSV_BYTES = 2 * 1024 * 1024
CSV_HEADERS = {"content-type": "text/csv; charset=utf-8"}
# Evidence files of one update (the resolutions service's bounds: five, 10 MiB each).
MAX_FILES = 5
MAX_FILE_BYTES = 10 * 1024 * 1024

COORDINATOR_LABELS: dict[str, dict[str, str]] = {
    "sw": {
        "conferences": "Mikutano",
        "no_conferences": "Hakuna mikutano bado.",
        "conference": "Mkutano",
        "dates": "Tarehe",
        "venue": "Mahali",
        "resolutions": "Maazimio",
        "no_resolutions": "Mkutano huu hauna maazimio bado.",
        "number": "Namba",
        "title": "Kichwa",
        "title_sw": "Kichwa (Kiswahili)",
        "title_en": "Kichwa (Kiingereza)",
        "description_sw": "Maelezo (Kiswahili)",
        "description_en": "Maelezo (Kiingereza)",
        "lead_institution": "Taasisi kiongozi",
        "supporting_institutions": "Taasisi saidizi (moja kila mstari)",
        "target_date": "Tarehe ya lengo",
        "weight": "Uzito",
        "status": "Hali",
        "progress": "Maendeleo (%)",
        "version": "Toleo",
        "note": "Maelezo ya hatua",
        "focal_person": "Mratibu wa taasisi (hiari)",
        "focal_person_name": "Jina la mratibu",
        "focal_person_institution": "Taasisi ya mratibu",
        "focal_person_email": "Barua pepe ya mratibu",
        "focal_person_language": "Lugha ya mratibu",
        "new_resolution": "Azimio jipya",
        "create": "Hifadhi azimio",
        "edit_resolution": "Badilisha azimio",
        "save_changes": "Hifadhi mabadiliko",
        "actions": "Hatua",
        "no_actions": "Hakuna hatua.",
        "action_title": "Hatua",
        "institution": "Taasisi",
        "add_action": "Ongeza hatua",
        "change_action": "Badilisha hatua",
        "timeline": "Mfuatano wa utekelezaji",
        "no_timeline": "Hakuna taarifa za maendeleo bado.",
        "when": "Lini",
        "by": "Na",
        "evidence": "Ushahidi",
        "download": "Pakua",
        "record_update": "Rekodi maendeleo",
        "evidence_links": "Viungo vya ushahidi (kimoja kila mstari)",
        "evidence_files": "Mafaili ya ushahidi (PDF, picha, nyaraka; hadi 5)",
        "stale": (
            "Azimio hili limebadilishwa na mtu mwingine tangu ulipolisoma (sasa ni toleo"
            " {version}). Hakuna kilichobadilishwa: hapa chini ni toleo la sasa; rudia"
            " mabadiliko yako."
        ),
        "saved": "Imehifadhiwa.",
        "pending": "Taarifa zinazosubiri idhini",
        "no_pending": "Hakuna taarifa zinazosubiri.",
        "submitted_by": "Imetumwa na",
        "approve": "Idhinisha",
        "reject": "Kataa",
        "reason": "Sababu ya kukataa",
        "approved": "Taarifa imeidhinishwa na sasa inahesabika kwenye ripoti.",
        "rejected": "Taarifa imekataliwa.",
        "import": "Ingiza maazimio kwa CSV",
        "import_file": "Faili la CSV",
        "import_hint": (
            "Safu zinazohitajika: number, title_sw, title_en, lead_institution. Kwanza"
            " faili hukaguliwa bila kuhifadhi chochote."
        ),
        "check": "Kagua faili",
        "import_now": "Ingiza maazimio {rows}",
        "dry_run_ok": "Faili ni sahihi: safu {rows}. Hakuna kilichohifadhiwa bado.",
        "dry_run_bad": "Matatizo yaliyopatikana kwenye faili: {count}. Hakuna kilichohifadhiwa.",
        "problem": "Tatizo",
        "more_problems": "Na matatizo mengine {count}.",
        "row": "Safu",
        "field": "Sehemu",
        "imported": "Maazimio {count} yameingizwa.",
        "no_file": "Chagua faili la CSV.",
        "too_big": "Faili ni kubwa mno.",
        "report": "Ripoti ya utekelezaji",
        "report_sw": "Ripoti kwa Kiswahili",
        "report_en": "Report in English",
        "overall": "Maendeleo ya jumla",
        "completed": "Yaliyokamilika",
        "overdue": "Yaliyochelewa",
        "latest": "Taarifa ya mwisho",
        "as_of": "Hadi tarehe",
        "service_report": "Ukurasa wa ripoti wa huduma",
        "read_only": "Unaweza kusoma tu (mkaguzi).",
        "open": "Fungua",
        "new_conference": "Mkutano mpya",
        "create_conference": "Hifadhi mkutano",
        "id": "Kitambulisho (mf. egov-2027)",
        "name_sw": "Jina (Kiswahili)",
        "name_en": "Jina (Kiingereza)",
        "starts_on": "Unaanza",
        "ends_on": "Unaisha",
        "approval_required": "Taarifa za waratibu wa taasisi zisubiri idhini ya mratibu",
        "conference_created": "Mkutano umehifadhiwa.",
        "remove_action": "Ondoa hatua hii",
        "action_removed": "Hatua imeondolewa.",
        "import_kind": "Faili lina",
        "kind_resolutions": "Maazimio mapya",
        "kind_updates": "Maendeleo ya maazimio yaliyopo",
        "import_updates_hint": (
            "Safu inayohitajika: number; hiari: status, progress, note, evidence, version."
            " Safu moja kwa kila azimio."
        ),
        "updates_imported": "Maendeleo ya maazimio {count} yamerekodiwa.",
        "erase_focal": "Futa taarifa za mratibu wa taasisi",
        "erase_focal_hint": (
            "Sheria ya Ulinzi wa Taarifa Binafsi: mratibu huondolewa kwenye kila azimio"
            " analofuatilia, jina lake kwenye taarifa zinazosubiri na anwani yake kwenye"
            " historia; taarifa zake za maendeleo zinabaki bila jina. Haiwezi kutenduliwa."
        ),
        "email": "Barua pepe ya mratibu",
        "confirm_erase": "Nimeelewa kwamba hili haliwezi kutenduliwa",
        "erase_now": "Futa",
        "erased": "Taarifa zimefutwa kwenye maazimio {count}.",
        "must_confirm": "Thibitisha kwanza.",
        "confirm": "Uthibitisho",
    },
    "en": {
        "conferences": "Conferences",
        "no_conferences": "No conferences yet.",
        "conference": "Conference",
        "dates": "Dates",
        "venue": "Venue",
        "resolutions": "Resolutions",
        "no_resolutions": "This conference has no resolutions yet.",
        "number": "Number",
        "title": "Title",
        "title_sw": "Title (Swahili)",
        "title_en": "Title (English)",
        "description_sw": "Description (Swahili)",
        "description_en": "Description (English)",
        "lead_institution": "Lead institution",
        "supporting_institutions": "Supporting institutions (one a line)",
        "target_date": "Target date",
        "weight": "Weight",
        "status": "Status",
        "progress": "Progress (%)",
        "version": "Version",
        "note": "Note",
        "focal_person": "Focal person (optional)",
        "focal_person_name": "Focal person's name",
        "focal_person_institution": "Focal person's institution",
        "focal_person_email": "Focal person's email",
        "focal_person_language": "Focal person's language",
        "new_resolution": "New resolution",
        "create": "Save the resolution",
        "edit_resolution": "Edit the resolution",
        "save_changes": "Save the changes",
        "actions": "Actions",
        "no_actions": "No actions.",
        "action_title": "Action",
        "institution": "Institution",
        "add_action": "Add an action",
        "change_action": "Change the action",
        "timeline": "Timeline",
        "no_timeline": "No progress recorded yet.",
        "when": "When",
        "by": "By",
        "evidence": "Evidence",
        "download": "Download",
        "record_update": "Record progress",
        "evidence_links": "Evidence links (one a line)",
        "evidence_files": "Evidence files (PDF, images, office documents; up to 5)",
        "stale": (
            "Someone else changed this resolution since you read it (it is now version"
            " {version}). Nothing was changed: below is the current version; make your"
            " change again."
        ),
        "saved": "Saved.",
        "pending": "Updates waiting for approval",
        "no_pending": "No updates are waiting.",
        "submitted_by": "Sent by",
        "approve": "Approve",
        "reject": "Reject",
        "reason": "Reason for rejecting",
        "approved": "The update is approved and now counts in the report.",
        "rejected": "The update is rejected.",
        "import": "Import resolutions from CSV",
        "import_file": "CSV file",
        "import_hint": (
            "Required columns: number, title_sw, title_en, lead_institution. The file is"
            " checked first; nothing is saved until you import it."
        ),
        "check": "Check the file",
        "import_now": "Import the {rows} resolutions",
        "dry_run_ok": "The file is valid: {rows} rows. Nothing is saved yet.",
        "dry_run_bad": "Problems found in the file: {count}. Nothing was saved.",
        "problem": "Problem",
        "more_problems": "And {count} more problems.",
        "row": "Row",
        "field": "Field",
        "imported": "{count} resolutions imported.",
        "no_file": "Choose a CSV file.",
        "too_big": "The file is too large.",
        "report": "Implementation report",
        "report_sw": "Ripoti kwa Kiswahili",
        "report_en": "Report in English",
        "overall": "Overall progress",
        "completed": "Completed",
        "overdue": "Overdue",
        "latest": "Latest update",
        "as_of": "As of",
        "service_report": "The service's report page",
        "read_only": "You may read only (auditor).",
        "open": "Open",
        "new_conference": "New conference",
        "create_conference": "Save the conference",
        "id": "Identifier (e.g. egov-2027)",
        "name_sw": "Name (Swahili)",
        "name_en": "Name (English)",
        "starts_on": "Starts on",
        "ends_on": "Ends on",
        "approval_required": "Focal persons' updates wait for a coordinator's approval",
        "conference_created": "The conference is saved.",
        "remove_action": "Remove this action",
        "action_removed": "The action is removed.",
        "import_kind": "The file holds",
        "kind_resolutions": "New resolutions",
        "kind_updates": "Progress on existing resolutions",
        "import_updates_hint": (
            "Required column: number; optional: status, progress, note, evidence, version."
            " One row per resolution."
        ),
        "updates_imported": "Progress recorded on {count} resolutions.",
        "erase_focal": "Erase a focal person's data",
        "erase_focal_hint": (
            "Personal Data Protection Act: the focal person leaves every resolution they"
            " follow, their name leaves their pending updates and their address the history;"
            " their progress updates stay, without their name. This cannot be undone."
        ),
        "email": "The focal person's email",
        "confirm_erase": "I understand that this cannot be undone",
        "erase_now": "Erase",
        "erased": "Their data was erased from {count} resolutions.",
        "must_confirm": "Confirm first.",
        "confirm": "Confirmation",
    },
}
STATUS_NAMES = {
    "not_started": {"sw": "Haijaanza", "en": "Not started"},
    "in_progress": {"sw": "Inaendelea", "en": "In progress"},
    "delayed": {"sw": "Imechelewa", "en": "Delayed"},
    "on_hold": {"sw": "Imesitishwa", "en": "On hold"},
    "completed": {"sw": "Imekamilika", "en": "Completed"},
}
RESOLUTION_FIELDS = (
    "title_sw",
    "title_en",
    "description_sw",
    "description_en",
    "lead_institution",
    "supporting_institutions",
    "target_date",
    "weight",
)


# -- pure helpers (unit-tested) --------------------------------------------------------------


def lines(value: str) -> list[str]:
    """A textarea's list: one item a line (or ';'-separated), blanks dropped."""
    return [part.strip() for part in value.replace(";", "\n").splitlines() if part.strip()]


def resolution_values(resolution: dict[str, Any]) -> dict[str, str]:
    """A resolution as its edit form shows it."""
    values = {name: resolution.get(name) for name in RESOLUTION_FIELDS}
    values["supporting_institutions"] = "\n".join(resolution.get("supporting_institutions") or [])
    return {k: "" if v is None else str(v) for k, v in values.items()}


def resolution_body(form: dict[str, str], *, new: bool) -> dict[str, Any]:
    """The JSON the resolutions API takes from a posted resolution form: a new resolution
    (every field sent, empty optional ones left out) or an edit (only what changed from
    the values the form was shown with, ``was_<field>``)."""
    body: dict[str, Any] = {}
    for name in RESOLUTION_FIELDS:
        raw = form.get(name, "").strip()
        if not new and raw == form.get(f"was_{name}", "").strip():
            continue
        if name == "supporting_institutions":
            body[name] = lines(raw)
        elif name == "weight":
            if raw:
                body[name] = int(raw) if raw.isdigit() else raw
        elif name == "target_date":
            if raw or not new:
                body[name] = raw or None
        elif raw or not new:
            body[name] = raw
    if new:
        number = form.get("number", "").strip()
        body["number"] = int(number) if number.isdigit() else number
        person = {
            "full_name": form.get("focal_person_name", "").strip(),
            "institution": form.get("focal_person_institution", "").strip(),
            "email": form.get("focal_person_email", "").strip(),
            "language": form.get("focal_person_language", "sw") or "sw",
        }
        if person["full_name"] or person["email"]:
            body["focal_persons"] = [person]
    return body


CONFERENCE_FIELDS = ("id", "name_sw", "name_en", "starts_on", "ends_on", "venue")


def conference_body(form: dict[str, str]) -> dict[str, Any]:
    """The JSON the resolutions API takes from the new-conference form (empty fields are
    sent empty, so the API names each one missing)."""
    body: dict[str, Any] = {name: form.get(name, "").strip() for name in CONFERENCE_FIELDS}
    for name in ("starts_on", "ends_on"):
        body[name] = body[name] or None
    body["reporting"] = {"approval_required": form.get("approval_required") == "on"}
    return body


def action_body(form: dict[str, str], *, new: bool) -> dict[str, Any]:
    """The JSON of an action form: a new action, or a change (status, progress, note)."""
    body: dict[str, Any] = {}
    names = ("title", "institution", "status", "progress", "weight") if new else ()
    names = names or ("status", "progress", "note")
    for name in names:
        raw = form.get(name, "").strip()
        if not raw:
            continue
        if name in ("progress", "weight"):
            body[name] = int(raw) if raw.isdigit() else raw
        else:
            body[name] = raw
    if not new and form.get("was_status") == body.get("status"):
        body.pop("status", None)
    if not new and form.get("was_progress") == str(body.get("progress", "")):
        body.pop("progress", None)
    return body


def field_errors(answer_body: Any) -> list[dict[str, str]]:
    """The fields a refusal names (or its message under ``form``)."""
    error = (answer_body or {}).get("error", {}) if isinstance(answer_body, dict) else {}
    fields = [
        {"field": str(f.get("field", "")), "reason": str(f.get("reason", ""))}
        for f in error.get("fields") or []
    ]
    return fields or [{"field": "form", "reason": str(error.get("message", ""))}]


def import_table(report: dict[str, Any]) -> list[dict[str, str]]:
    """A dry run's problems as table rows (row, field, reason), in file order."""
    problems = report.get("problems") or (report.get("error", {}).get("details") or {}).get(
        "problems", []
    )
    rows = [
        {
            "row": str(p.get("row", "")),
            "field": str(p.get("field", "")),
            "reason": str(p.get("reason", "")),
        }
        for p in problems
    ]
    return sorted(rows, key=lambda r: int(r["row"]) if r["row"].isdigit() else 0)


def current_version(answer_body: Any) -> int | None:
    """The current version a 409 names."""
    error = (answer_body or {}).get("error", {}) if isinstance(answer_body, dict) else {}
    value = (error.get("details") or {}).get("current_version")
    return int(value) if isinstance(value, int) else None


# -- pages -----------------------------------------------------------------------------------


def _page(
    request: Request, template: str, session: StaffSession, status: int = 200, **context: Any
) -> HTMLResponse:
    lang = _lang(request, session)
    return render(
        request,
        template,
        session,
        status=status,
        c=COORDINATOR_LABELS[lang],
        status_name=lambda s: STATUS_NAMES.get(s, {}).get(lang, s),
        writer=session.may(WRITE),
        **context,
    )


async def _get(request: Request, session: StaffSession, path: str, **kw: Any) -> Any:
    return _or_fail(
        request, session, await _call(request, session, "resolutions", "GET", path, **kw)
    )


async def _conference(request: Request, session: StaffSession, cid: str) -> dict[str, Any]:
    return dict(await _get(request, session, f"/api/v1/conferences/{quote(cid, safe='')}"))


async def _resolution(request: Request, session: StaffSession, rid: str) -> dict[str, Any]:
    return dict(await _get(request, session, f"/api/v1/resolutions/{quote(rid, safe='')}"))


async def _statuses(request: Request, session: StaffSession) -> list[str]:
    return list(await _get(request, session, "/api/v1/statuses"))


async def _notice(request: Request, session: StaffSession, text: str) -> None:
    await handlers.remember(_ctx_of(request), session, coordinator_notice=text)


def _ctx_of(request: Request) -> handlers.Context:
    return request.app.state.context


async def _take_notice(request: Request, session: StaffSession) -> str:
    notice = str(session.data.pop("coordinator_notice", "") or "")
    if notice:
        await handlers.remember(_ctx_of(request), session)
    return notice


@router.get("/coordinators", response_class=HTMLResponse)
async def conferences(request: Request) -> Response:
    session = await _require(request, READ)
    found = await _get(request, session, "/api/v1/conferences")
    return _page(request, "coord_conferences.html.j2", session, conferences=found)


@router.get("/coordinators/conferences/new", response_class=HTMLResponse)
async def new_conference(request: Request) -> Response:
    session = await _require(request, WRITE)
    return _page(request, "coord_conference_new.html.j2", session, values={}, errors=[])


@router.post("/coordinators/conferences/new", response_class=HTMLResponse)
async def create_conference(request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    answer = await _call(
        request, session, "resolutions", "POST", "/api/v1/conferences", json=conference_body(form)
    )
    if not answer.ok:
        errors = [
            {**e, "field": e["field"].removeprefix("reporting.")} for e in field_errors(answer.body)
        ]
        return _page(
            request,
            "coord_conference_new.html.j2",
            session,
            status=answer.status if answer.status < 500 else 502,
            values=form,
            errors=errors,
        )
    c = COORDINATOR_LABELS[_lang(request, session)]
    await _notice(request, session, c["conference_created"])
    cid = quote(str(answer.body["id"]), safe="")
    return RedirectResponse(f"/coordinators/conferences/{cid}", status_code=303)


@router.get("/coordinators/focal-persons/erase", response_class=HTMLResponse)
async def erase_focal_form(request: Request) -> Response:
    session = await _require(request, WRITE)
    notice = await _take_notice(request, session)
    return _page(request, "coord_erase.html.j2", session, values={}, errors=[], notice=notice)


@router.post("/coordinators/focal-persons/erase", response_class=HTMLResponse)
async def erase_focal(request: Request) -> Response:
    """PDPA erasure of a focal person, through the resolutions service (confirmed)."""
    session = await _require(request, WRITE)
    form = await _form(request, session)
    c = COORDINATOR_LABELS[_lang(request, session)]
    email = form.get("email", "").strip()
    if form.get("confirm") != "on":
        errors = [{"field": "confirm", "reason": c["must_confirm"]}]
        return _page(
            request, "coord_erase.html.j2", session, status=422, values=form, errors=errors
        )
    answer = await _call(
        request,
        session,
        "resolutions",
        "POST",
        "/api/v1/focal-persons/erase",
        json={"email": email},
    )
    if not answer.ok:
        return _page(
            request,
            "coord_erase.html.j2",
            session,
            status=answer.status if answer.status < 500 else 502,
            values=form,
            errors=field_errors(answer.body),
        )
    count = len((answer.body or {}).get("resolutions", []))
    await _notice(request, session, c["erased"].format(count=count))
    return RedirectResponse("/coordinators/focal-persons/erase", status_code=303)


@router.get("/coordinators/conferences/{cid}", response_class=HTMLResponse)
async def conference(cid: str, request: Request) -> Response:
    session = await _require(request, READ)
    conf = await _conference(request, session, cid)
    found = await _get(request, session, f"/api/v1/conferences/{quote(cid, safe='')}/resolutions")
    return _page(
        request,
        "coord_conference.html.j2",
        session,
        conf=conf,
        resolutions=found,
        notice=await _take_notice(request, session),
    )


@router.get("/coordinators/conferences/{cid}/resolutions/new", response_class=HTMLResponse)
async def new_resolution(cid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    conf = await _conference(request, session, cid)
    return _page(request, "coord_new.html.j2", session, conf=conf, values={}, errors=[])


@router.post("/coordinators/conferences/{cid}/resolutions/new", response_class=HTMLResponse)
async def create_resolution(cid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    conf = await _conference(request, session, cid)
    answer = await _call(
        request,
        session,
        "resolutions",
        "POST",
        f"/api/v1/conferences/{quote(cid, safe='')}/resolutions",
        json=resolution_body(form, new=True),
    )
    if not answer.ok:
        return _page(
            request,
            "coord_new.html.j2",
            session,
            status=answer.status if answer.status < 500 else 502,
            conf=conf,
            values=form,
            errors=field_errors(answer.body),
        )
    return RedirectResponse(f"/coordinators/resolutions/{answer.body['id']}", status_code=303)


async def _resolution_page(
    request: Request,
    session: StaffSession,
    rid: str,
    *,
    status: int = 200,
    errors: list[dict[str, str]] | None = None,
    stale: int | None = None,
    notice: str = "",
) -> HTMLResponse:
    resolution = await _resolution(request, session, rid)
    conf = await _conference(request, session, resolution["conference_id"])
    timeline = await _get(request, session, f"/api/v1/resolutions/{quote(rid, safe='')}/timeline")
    return _page(
        request,
        "coord_resolution.html.j2",
        session,
        status=status,
        conf=conf,
        r=resolution,
        values=resolution_values(resolution),
        timeline=list(reversed(timeline)),
        statuses=await _statuses(request, session),
        errors=errors or [],
        stale=stale,
        notice=notice or await _take_notice(request, session),
    )


@router.get("/coordinators/resolutions/{rid}", response_class=HTMLResponse)
async def resolution_page(rid: str, request: Request) -> Response:
    session = await _require(request, READ)
    return await _resolution_page(request, session, rid)


async def _write(
    request: Request,
    session: StaffSession,
    rid: str,
    method: str,
    path: str,
    form: dict[str, str],
    body: Any,
) -> Response:
    """A versioned write (If-Match: the version the form was read at). A stale version
    answers 409 with the page of the current version; nothing was changed."""
    answer = await _call(
        request,
        session,
        "resolutions",
        method,
        path,
        json=body,
        headers={"If-Match": f'"{form.get("version", "")}"'},
    )
    return await _after_write(request, session, rid, answer)


async def _after_write(
    request: Request, session: StaffSession, rid: str, answer: Answer
) -> Response:
    """The page after a versioned write: the resolution again (saved), its current
    version (409), or the form's problems."""
    if answer.status == 409 and answer.error_code == "version_conflict":
        return await _resolution_page(
            request, session, rid, status=409, stale=current_version(answer.body)
        )
    if answer.status == 404:
        raise _not_found(request, session)
    if not answer.ok:
        return await _resolution_page(
            request,
            session,
            rid,
            status=answer.status if answer.status < 500 else 502,
            errors=field_errors(answer.body),
        )
    await _notice(request, session, COORDINATOR_LABELS[_lang(request, session)]["saved"])
    return RedirectResponse(f"/coordinators/resolutions/{rid}", status_code=303)


@router.post("/coordinators/resolutions/{rid}/edit", response_class=HTMLResponse)
async def edit_resolution(rid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    body = resolution_body(form, new=False)
    if not body:
        return RedirectResponse(f"/coordinators/resolutions/{rid}", status_code=303)
    path = f"/api/v1/resolutions/{quote(rid, safe='')}"
    return await _write(request, session, rid, "PATCH", path, form, body)


@router.post("/coordinators/resolutions/{rid}/actions", response_class=HTMLResponse)
async def add_action(rid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    path = f"/api/v1/resolutions/{quote(rid, safe='')}/actions"
    return await _write(request, session, rid, "POST", path, form, action_body(form, new=True))


@router.post("/coordinators/resolutions/{rid}/actions/{aid}", response_class=HTMLResponse)
async def change_action(rid: str, aid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    body = action_body(form, new=False)
    if not body:
        return RedirectResponse(f"/coordinators/resolutions/{rid}", status_code=303)
    path = f"/api/v1/resolutions/{quote(rid, safe='')}/actions/{quote(aid, safe='')}"
    return await _write(request, session, rid, "PATCH", path, form, body)


@router.post("/coordinators/resolutions/{rid}/actions/{aid}/remove", response_class=HTMLResponse)
async def remove_action(rid: str, aid: str, request: Request) -> Response:
    """Remove an action (the version check as every write); the roll-up is recomputed."""
    session = await _require(request, WRITE)
    form = await _form(request, session)
    path = f"/api/v1/resolutions/{quote(rid, safe='')}/actions/{quote(aid, safe='')}"
    answer = await _call(
        request,
        session,
        "resolutions",
        "DELETE",
        path,
        headers={"If-Match": f'"{form.get("version", "")}"'},
    )
    if answer.ok:
        c = COORDINATOR_LABELS[_lang(request, session)]
        await _notice(request, session, c["action_removed"])
        return RedirectResponse(f"/coordinators/resolutions/{rid}", status_code=303)
    return await _after_write(request, session, rid, answer)


@router.post("/coordinators/resolutions/{rid}/updates", response_class=HTMLResponse)
async def record_update(rid: str, request: Request) -> Response:
    """Record progress with evidence (status, progress, note, links, files): passed on
    to the resolutions service as the same multipart form; it checks the files by their
    content and names a refused one."""
    session = await _require(request, WRITE)
    form = await _form(request, session)
    raw = await request.form()
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    for item in raw.getlist("files")[:MAX_FILES]:
        if isinstance(item, str) or not (item.filename or item.size):
            continue
        data = await item.read(MAX_FILE_BYTES + 1)
        files.append(("files", (item.filename or "evidence", data, "application/octet-stream")))
    fields: dict[str, Any] = {
        k: form[k].strip() for k in ("status", "progress", "note") if form.get(k, "").strip()
    }
    if form.get("was_status") == fields.get("status") and "note" not in fields and files:
        fields.pop("status")
    links = lines(form.get("evidence", ""))
    if links:
        fields["evidence"] = links
    path = f"/api/v1/resolutions/{quote(rid, safe='')}/updates/with-files"
    answer = await _call(
        request,
        session,
        "resolutions",
        "POST",
        path,
        data=fields,
        files=files or None,
        headers={"If-Match": f'"{form.get("version", "")}"'},
    )
    return await _after_write(request, session, rid, answer)


@router.get("/coordinators/resolutions/{rid}/evidence/{sha256}")
async def evidence(rid: str, sha256: str, request: Request) -> Response:
    """An evidence file, fetched from the resolutions service with the person's token
    (the browser never sees a token), passed on as the download the service made it."""
    session = await _require(request, READ)
    if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
        raise _not_found(request, session)
    answer = await _call(
        request,
        session,
        "resolutions",
        "GET",
        f"/api/v1/resolutions/{quote(rid, safe='')}/evidence/{sha256}",
    )
    if not answer.ok:
        _or_fail(request, session, answer)
    keep = ("content-type", "content-disposition", "etag")
    headers = {k: v for k, v in answer.headers.items() if k.lower() in keep}
    headers.update({"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})
    return Response(answer.content, headers=headers)


# -- focal persons' pending updates ----------------------------------------------------------


@router.get("/coordinators/conferences/{cid}/pending", response_class=HTMLResponse)
async def pending(cid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    conf = await _conference(request, session, cid)
    found = await _get(
        request, session, f"/api/v1/conferences/{quote(cid, safe='')}/pending-updates"
    )
    return _page(
        request,
        "coord_pending.html.j2",
        session,
        conf=conf,
        pending=found,
        notice=await _take_notice(request, session),
        errors=[],
    )


@router.post(
    "/coordinators/conferences/{cid}/pending/{rid}/{pid}/{decision}",
    response_class=HTMLResponse,
)
async def decide_pending(cid: str, rid: str, pid: str, decision: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    form = await _form(request, session)
    if decision not in ("approve", "reject"):
        raise _not_found(request, session)
    c = COORDINATOR_LABELS[_lang(request, session)]
    path = f"/api/v1/resolutions/{quote(rid, safe='')}/pending-updates/{quote(pid, safe='')}/"
    if decision == "approve":
        answer = await _call(
            request,
            session,
            "resolutions",
            "POST",
            path + "approve",
            headers={"If-Match": f'"{form.get("version", "")}"'},
        )
    else:
        answer = await _call(
            request,
            session,
            "resolutions",
            "POST",
            path + "reject",
            json={"reason": form.get("reason", "").strip()},
        )
    if answer.status == 409 and answer.error_code == "version_conflict":
        version = current_version(answer.body)
        await _notice(request, session, c["stale"].format(version=version))
    elif not answer.ok:
        conf = await _conference(request, session, cid)
        found = await _get(
            request, session, f"/api/v1/conferences/{quote(cid, safe='')}/pending-updates"
        )
        return _page(
            request,
            "coord_pending.html.j2",
            session,
            status=answer.status if answer.status < 500 else 502,
            conf=conf,
            pending=found,
            notice="",
            errors=field_errors(answer.body),
        )
    else:
        await _notice(request, session, c["approved" if decision == "approve" else "rejected"])
    return RedirectResponse(f"/coordinators/conferences/{cid}/pending", status_code=303)


# -- the CSV import --------------------------------------------------------------------------


@router.get("/coordinators/conferences/{cid}/import", response_class=HTMLResponse)
async def import_form(cid: str, request: Request) -> Response:
    session = await _require(request, WRITE)
    conf = await _conference(request, session, cid)
    kind = "updates" if request.query_params.get("kind") == "updates" else "resolutions"
    return _page(
        request, "coord_import.html.j2", session, conf=conf, report=None, errors=[], kind=kind
    )


@router.post("/coordinators/conferences/{cid}/import", response_class=HTMLResponse)
async def import_post(cid: str, request: Request) -> Response:
    """``step=check``: the uploaded file's dry run, shown as a table (the file is kept in
    the session, by its digest); ``step=import``: the checked file, imported."""
    session = await _require(request, WRITE)
    form = await _form(request, session)
    conf = await _conference(request, session, cid)
    c = COORDINATOR_LABELS[_lang(request, session)]
    # What the file holds: new resolutions, or progress on existing ones.
    kind = "updates" if form.get("kind") == "updates" else "resolutions"
    path = f"/api/v1/conferences/{quote(cid, safe='')}/{kind}/import"
    if form.get("step") == "import":
        kept = session.data.get("coordinator_import") or {}
        data = str(kept.get("csv", "")).encode()
        if (
            kept.get("conference") != cid
            or kept.get("kind", "resolutions") != kind
            or hashlib.sha256(data).hexdigest() != form.get("sha256")
        ):
            return _page(
                request,
                "coord_import.html.j2",
                session,
                kind=kind,
                status=422,
                conf=conf,
                report=None,
                errors=[{"field": "file", "reason": c["no_file"]}],
            )
        answer = await _call(
            request, session, "resolutions", "POST", path, content=data, headers=CSV_HEADERS
        )
        if answer.ok:
            await handlers.remember(_ctx_of(request), session, coordinator_import=None)
            count = (answer.body or {}).get("imported", 0)
            done = c["updates_imported"] if kind == "updates" else c["imported"]
            await _notice(request, session, done.format(count=count))
            return RedirectResponse(f"/coordinators/conferences/{cid}", status_code=303)
        return _page(
            request,
            "coord_import.html.j2",
            session,
            kind=kind,
            status=answer.status if answer.status < 500 else 502,
            conf=conf,
            report={"valid": False, "rows": None, "more_problems": 0},
            problems=import_table(answer.body or {}) or field_errors(answer.body),
            errors=[],
        )
    raw = await request.form()
    upload = raw.get("file")
    data = b""
    if upload is not None and not isinstance(upload, str):
        data = await upload.read(MAX_CSV_BYTES + 1)
    error = c["no_file"] if not data else (c["too_big"] if len(data) > MAX_CSV_BYTES else "")
    if error:
        return _page(
            request,
            "coord_import.html.j2",
            session,
            kind=kind,
            status=422 if not data else 413,
            conf=conf,
            report=None,
            errors=[{"field": "file", "reason": error}],
        )
    answer = await _call(
        request,
        session,
        "resolutions",
        "POST",
        path,
        params={"dry_run": "true"},
        content=data,
        headers=CSV_HEADERS,
    )
    if not answer.ok:
        return _page(
            request,
            "coord_import.html.j2",
            session,
            kind=kind,
            status=answer.status if answer.status < 500 else 502,
            conf=conf,
            report=None,
            errors=[{"field": "file", "reason": e["reason"]} for e in field_errors(answer.body)],
        )
    report = dict(answer.body)
    sha = ""
    if report.get("valid"):
        text = data.decode("utf-8", errors="replace")
        await handlers.remember(
            _ctx_of(request),
            session,
            coordinator_import={"conference": cid, "kind": kind, "csv": text},
        )
        sha = hashlib.sha256(text.encode()).hexdigest()
    return _page(
        request,
        "coord_import.html.j2",
        session,
        kind=kind,
        conf=conf,
        report=report,
        problems=import_table(report),
        sha256=sha,
        errors=[],
    )


# -- the implementation report ---------------------------------------------------------------


@router.get("/coordinators/conferences/{cid}/report", response_class=HTMLResponse)
async def report_preview(cid: str, request: Request) -> Response:
    """The report as it will be shown, in the language chosen (``?report=sw|en``): the
    resolutions service's report data, rendered here."""
    session = await _require(request, READ)
    conf = await _conference(request, session, cid)
    data = await _get(
        request,
        session,
        f"/api/v1/conferences/{quote(cid, safe='')}/report",
        params={"format": "json"},
    )
    wanted = request.query_params.get("report")
    report_lang = wanted if wanted in ("sw", "en") else _lang(request, session)
    return _page(
        request,
        "coord_report.html.j2",
        session,
        conf=conf,
        data=data,
        rl=report_lang,
        rc=COORDINATOR_LABELS[report_lang],
        rt=LABELS[report_lang],
    )
