"""The event editor's catalogue pages: an event's participant categories and its custom
questions, edited without JavaScript and saved through registration's events API
(``PATCH /api/v1/events/{id}`` with ``categories`` or ``questions``, each the whole list).

Like the event's details (``web.event_editor``) nothing is saved before a preview: the
organiser sees each category or question before and after, then confirms. What the API
refuses (422 with fields such as ``categories.1.fee_tzs``) is shown beside that field.

The form's rows are numbered: ``cat-<n>-<field>`` and ``q-<n>-<field>``; one blank row
adds a category or question, "another row" adds one more, "remove" takes one out.
Parsing the form into the API's body is pure (``parse_categories``, ``parse_questions``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import handlers, web

router = APIRouter(include_in_schema=False)

Form = Mapping[str, Sequence[str]]
QUESTION_TYPES = (
    "short_text",
    "long_text",
    "single_choice",
    "multiple_choice",
    "yes_no",
    "number",
    "date",
)
MAX_ROWS = 50
CATEGORY_FIELDS = (
    "code",
    "name_sw",
    "name_en",
    "fee_tzs",
    "quota",
    "requires_approval",
    "requires_nomination",
)
QUESTION_FIELDS = ("id", "type", "label_sw", "label_en", "required", "categories", "choices")

LABELS: dict[str, dict[str, Any]] = {
    "sw": {
        "categories_title": "Makundi ya washiriki",
        "questions_title": "Maswali ya ziada",
        "category_n": "Kundi {n}",
        "question_n": "Swali {n}",
        "code": "Msimbo",
        "code_hint": "herufi ndogo, tarakimu na _ (mf. mshiriki_binafsi)",
        "name_sw": "Jina (Kiswahili)",
        "name_en": "Jina (Kiingereza)",
        "fee_tzs": "Ada (TZS, 0 = bure)",
        "quota": "Nafasi zilizotengwa (tupu = hakuna kikomo)",
        "requires_approval": "Inahitaji idhini ya mratibu",
        "requires_nomination": "Inahitaji uteuzi wa taasisi",
        "id": "Kitambulisho cha swali",
        "type": "Aina ya swali",
        "label_sw": "Swali (Kiswahili)",
        "label_en": "Swali (Kiingereza)",
        "required": "Lazima kujibiwa",
        "categories": "Linaulizwa makundi haya (bila kuchagua: wote)",
        "choices": "Machaguo, moja kwa kila mstari: msimbo | Kiswahili | Kiingereza | kikomo",
        "remove": "Ondoa",
        "more": "Ongeza mstari mwingine",
        "none": "hakuna",
        "free": "bure",
        "types": {
            "short_text": "Maandishi mafupi",
            "long_text": "Maandishi marefu",
            "single_choice": "Chaguo moja",
            "multiple_choice": "Machaguo mengi",
            "yes_no": "Ndiyo / Hapana",
            "number": "Namba",
            "date": "Tarehe",
        },
        "whole_number": "weka namba kamili isiyo hasi",
        "required_field": "inahitajika",
        "bad_choice": "mstari {n}: msimbo | Kiswahili | Kiingereza | kikomo",
        "at_least_one": "tukio linahitaji angalau kundi moja",
        "editor_links": "Badilisha pia",
        "saved": "Mabadiliko yamehifadhiwa.",
        "note": "Hakuna kinachohifadhiwa kabla ya kuthibitisha baada ya kuhakiki.",
    },
    "en": {
        "categories_title": "Participant categories",
        "questions_title": "Custom questions",
        "category_n": "Category {n}",
        "question_n": "Question {n}",
        "code": "Code",
        "code_hint": "lower-case letters, digits and _ (e.g. private_participant)",
        "name_sw": "Name (Swahili)",
        "name_en": "Name (English)",
        "fee_tzs": "Fee (TZS, 0 = free)",
        "quota": "Reserved seats (empty = no limit)",
        "requires_approval": "Needs the organiser's approval",
        "requires_nomination": "Needs an institution's nomination",
        "id": "Question id",
        "type": "Question type",
        "label_sw": "Question (Swahili)",
        "label_en": "Question (English)",
        "required": "Must be answered",
        "categories": "Asked of these categories (none chosen: everyone)",
        "choices": "Choices, one a line: code | Swahili | English | limit",
        "remove": "Remove",
        "more": "Add another row",
        "none": "none",
        "free": "free",
        "types": {
            "short_text": "Short text",
            "long_text": "Long text",
            "single_choice": "One choice",
            "multiple_choice": "Several choices",
            "yes_no": "Yes / No",
            "number": "Number",
            "date": "Date",
        },
        "whole_number": "enter a whole number, not negative",
        "required_field": "required",
        "bad_choice": "line {n}: code | Swahili | English | limit",
        "at_least_one": "an event needs at least one category",
        "editor_links": "Also edit",
        "saved": "The changes are saved.",
        "note": "Nothing is saved before you confirm after the preview.",
    },
}


def _one(form: Form, name: str) -> str:
    values = form.get(name) or []
    return str(values[0]).strip() if values else ""


def _whole(raw: str) -> int | None:
    """A whole, non-negative number as people write it (``150,000`` or ``150 000``)."""
    digits = raw.replace(" ", "").replace(",", "")
    return int(digits) if re.fullmatch(r"\d{1,12}", digits) else None


def rows_of(form: Form) -> int:
    raw = _one(form, "rows")
    return min(int(raw), MAX_ROWS) if raw.isdigit() else 0


def _blank(form: Form, prefix: str, n: int, fields: Sequence[str]) -> bool:
    return not any(
        _one(form, f"{prefix}-{n}-{f}") for f in fields if f not in ("type", "categories")
    )


def parse_categories(
    form: Form, t: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[int]]:
    """The ``categories`` of the API's body from the form's rows; the problems found
    before asking (field = the input's id); and the form row of each body item."""
    body: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    rows: list[int] = []
    for n in range(rows_of(form)):
        p = f"cat-{n}-"
        if _one(form, p + "remove") or _blank(form, "cat", n, CATEGORY_FIELDS):
            continue
        item: dict[str, Any] = {
            "code": _one(form, p + "code"),
            "name_sw": _one(form, p + "name_sw"),
            "name_en": _one(form, p + "name_en"),
            "requires_approval": bool(_one(form, p + "requires_approval")),
            "requires_nomination": bool(_one(form, p + "requires_nomination")),
        }
        for name in ("code", "name_sw", "name_en"):
            if not item[name]:
                errors.append({"field": p + name, "reason": t["required_field"]})
        fee = _one(form, p + "fee_tzs") or "0"
        item["fee_tzs"] = _whole(fee)
        if item["fee_tzs"] is None:
            errors.append({"field": p + "fee_tzs", "reason": t["whole_number"]})
        quota = _one(form, p + "quota")
        item["quota"] = _whole(quota) if quota else None
        if quota and item["quota"] is None:
            errors.append({"field": p + "quota", "reason": t["whole_number"]})
        body.append(item)
        rows.append(n)
    if not body and not errors:
        errors.append({"field": "cat-0-code", "reason": t["at_least_one"]})
    return body, errors, rows


def parse_choices(
    text: str, field: str, t: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """``code | label sw | label en | limit`` a line (the limit optional)."""
    choices: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines, start=1):
        parts = [part.strip() for part in line.split("|")]
        if len(parts) not in (3, 4) or not all(parts[:3]):
            errors.append({"field": field, "reason": t["bad_choice"].format(n=i)})
            continue
        choice: dict[str, Any] = {"code": parts[0], "label_sw": parts[1], "label_en": parts[2]}
        limit = parts[3] if len(parts) == 4 else ""
        choice["limit"] = _whole(limit) if limit else None
        if limit and choice["limit"] is None:
            errors.append({"field": field, "reason": t["bad_choice"].format(n=i)})
            continue
        choices.append(choice)
    return choices, errors


def parse_questions(
    form: Form, t: Mapping[str, Any], existing: Sequence[Mapping[str, Any]] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[int]]:
    """The ``questions`` of the API's body from the form's rows. A question the event has
    already keeps what this form does not edit (help texts, number and length limits)."""
    before = {str(q.get("id")): dict(q) for q in existing}
    body: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    rows: list[int] = []
    for n in range(rows_of(form)):
        p = f"q-{n}-"
        if _one(form, p + "remove") or _blank(form, "q", n, QUESTION_FIELDS):
            continue
        qid = _one(form, p + "id")
        kind = _one(form, p + "type")
        item = {k: v for k, v in before.get(qid, {}).items() if k not in ("choices",)}
        item.update(
            {
                "id": qid,
                "type": kind,
                "label_sw": _one(form, p + "label_sw"),
                "label_en": _one(form, p + "label_en"),
                "required": bool(_one(form, p + "required")),
                "categories": [str(c) for c in form.get(p + "categories") or [] if str(c)],
            }
        )
        for name in ("id", "label_sw", "label_en"):
            if not item[name]:
                errors.append({"field": p + name, "reason": t["required_field"]})
        if kind not in QUESTION_TYPES:
            errors.append({"field": p + "type", "reason": t["required_field"]})
        choices, problems = parse_choices(_one_raw(form, p + "choices"), p + "choices", t)
        errors += problems
        item["choices"] = choices if kind in ("single_choice", "multiple_choice") else []
        if kind != "multiple_choice":
            item.pop("max_choices", None)
        if kind != "number":
            item.pop("min_value", None)
            item.pop("max_value", None)
        if kind not in ("short_text", "long_text"):
            item.pop("max_length", None)
        body.append(item)
        rows.append(n)
    return body, errors, rows


def _one_raw(form: Form, name: str) -> str:
    values = form.get(name) or []
    return str(values[0]) if values else ""


def api_errors(
    fields: Sequence[Mapping[str, Any]], prefix: str, list_name: str, rows: Sequence[int]
) -> list[dict[str, str]]:
    """The API's refusals (``categories.1.fee_tzs``) as the form's fields (``cat-3-fee_tzs``)."""
    first = {"cat": "code", "q": "id"}[prefix]
    out = []
    for f in fields:
        parts = str(f.get("field", "")).split(".")
        target = f"{prefix}-{rows[0] if rows else 0}-{first}"
        if parts and parts[0] == list_name and len(parts) > 1 and parts[1].isdigit():
            index = int(parts[1])
            row = rows[index] if index < len(rows) else index
            name = parts[2] if len(parts) > 2 else first
            if name == "choices" or name not in (*CATEGORY_FIELDS, *QUESTION_FIELDS):
                name = "choices" if "choices" in parts else first
            target = f"{prefix}-{row}-{name}"
        out.append({"field": target, "reason": str(f.get("reason", ""))})
    return out


# -- what the form shows ---------------------------------------------------------------------


def category_values(categories: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {"rows": [str(len(categories) + 1)]}
    for n, c in enumerate(categories):
        p = f"cat-{n}-"
        form[p + "code"] = [str(c.get("code", ""))]
        form[p + "name_sw"] = [str(c.get("name_sw", ""))]
        form[p + "name_en"] = [str(c.get("name_en", ""))]
        form[p + "fee_tzs"] = [str(c.get("fee_tzs", 0))]
        form[p + "quota"] = ["" if c.get("quota") is None else str(c["quota"])]
        for flag in ("requires_approval", "requires_nomination"):
            form[p + flag] = ["yes"] if c.get(flag) else []
    return form


def question_values(questions: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {"rows": [str(len(questions) + 1)]}
    for n, q in enumerate(questions):
        p = f"q-{n}-"
        form[p + "id"] = [str(q.get("id", ""))]
        form[p + "type"] = [str(q.get("type", ""))]
        form[p + "label_sw"] = [str(q.get("label_sw", ""))]
        form[p + "label_en"] = [str(q.get("label_en", ""))]
        form[p + "required"] = ["yes"] if q.get("required") else []
        form[p + "categories"] = [str(c) for c in q.get("categories") or []]
        form[p + "choices"] = [
            "\n".join(
                " | ".join(
                    [c["code"], c["label_sw"], c["label_en"]]
                    + ([str(c["limit"])] if c.get("limit") is not None else [])
                )
                for c in q.get("choices") or []
            )
        ]
    return form


def describe_category(c: Mapping[str, Any], t: Mapping[str, Any], lang: str) -> str:
    fee = f"TZS {c['fee_tzs']:,}" if c.get("fee_tzs") else t["free"]
    quota = c.get("quota")
    flags = [t[f] for f in ("requires_approval", "requires_nomination") if c.get(f)]
    name = c.get("name_en") if lang == "en" else c.get("name_sw")
    parts = [
        f"{name} ({c.get('code')})",
        fee,
        f"{t['quota']}: {t['none'] if quota is None else quota}",
    ]
    return " · ".join(parts + flags)


def describe_question(q: Mapping[str, Any], t: Mapping[str, Any], lang: str) -> str:
    label = q.get("label_en") if lang == "en" else q.get("label_sw")
    parts = [f"{label} ({q.get('id')})", t["types"].get(q.get("type"), str(q.get("type")))]
    if q.get("required"):
        parts.append(t["required"])
    if q.get("categories"):
        parts.append(", ".join(q["categories"]))
    for c in q.get("choices") or []:
        text = c["label_en"] if lang == "en" else c["label_sw"]
        parts.append(text + (f" ≤ {c['limit']}" if c.get("limit") is not None else ""))
    return " · ".join(parts)


def changes_of(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    key: str,
    describe: Any,
) -> list[tuple[str, str, str]]:
    """(item, before, after) for each item added, changed or removed."""
    old = {str(i.get(key)): describe(i) for i in before}
    new = {str(i.get(key)): describe(i) for i in after}
    keys = list(dict.fromkeys([*old, *new]))
    return [(k, old.get(k, "—"), new.get(k, "—")) for k in keys if old.get(k) != new.get(k)]


CATEGORY_KEYS = (
    "code",
    "name_sw",
    "name_en",
    "fee_tzs",
    "quota",
    "requires_approval",
    "requires_nomination",
)


def _categories_of(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{k: c.get(k) for k in CATEGORY_KEYS} for c in event.get("categories") or []]


def _questions_of(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(q) for q in event.get("questions") or []]


# -- pages -----------------------------------------------------------------------------------

KINDS = {
    "categories": {
        "prefix": "cat",
        "key": "code",
        "fields": CATEGORY_FIELDS,
        "current": _categories_of,
        "values": category_values,
        "describe": describe_category,
        "title": "categories_title",
        "row": "category_n",
    },
    "questions": {
        "prefix": "q",
        "key": "id",
        "fields": QUESTION_FIELDS,
        "current": _questions_of,
        "values": question_values,
        "describe": describe_question,
        "title": "questions_title",
        "row": "question_n",
    },
}


def _page(
    request: Request,
    session: Any,
    event: Mapping[str, Any],
    kind: str,
    values: Mapping[str, Sequence[str]],
    *,
    changes: list[tuple[str, str, str]] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
    flash: str | None = None,
) -> Response:
    lang = web._lang(request, session)
    spec = KINDS[kind]
    return web.render(
        request,
        "event_catalogue.html.j2",
        session,
        status=status,
        event=event,
        kind=kind,
        spec=spec,
        e=LABELS[lang],
        rows=rows_of(values),
        values=values,
        hidden=[(k, v) for k, vs in values.items() for v in vs],
        changes=changes or [],
        errors=errors or [],
        error_of={e["field"]: e["reason"] for e in errors or []},
        types=QUESTION_TYPES,
        event_categories=_categories_of(event),
        flash=flash,
    )


# -- reminder rules (notification's ``/api/v1/events/{id}/reminder-rules``) ---------------

REMINDER_UNITS = {"days": 86400, "hours": 3600, "minutes": 60}
# notification's bounds (api.ReminderRules): at most 10 offsets, each 1 minute .. 365 days.
MAX_REMINDERS = 10

LABELS["sw"].update(
    {
        "reminders_title": "Vikumbusho",
        "reminder_n": "Kikumbusho {n}",
        "amount": "Muda kabla ya kuanza",
        "unit": "Kipimo",
        "units": {"days": "siku", "hours": "saa", "minutes": "dakika"},
        "before": "{amount} {unit} kabla ya kuanza",
        "defaults": "Rudi kwenye vikumbusho vya kawaida",
        "defaults_name": "vikumbusho vya kawaida vya huduma",
        "source_event": "Vikumbusho vya tukio hili",
        "source_default": "Vikumbusho vya kawaida",
        "scheduled": "Vikumbusho vilivyopangwa",
        "due_at": "Saa ya kutumwa (saa za Afrika Mashariki)",
        "status": "Hali",
        "notifications": "Ujumbe",
        "no_reminders": "Hakuna kikumbusho kilichopangwa (tukio bado halijajulikana kwa huduma ya taarifa, au muda wake umepita).",
        "reminder_statuses": {
            "pending": "kinasubiri",
            "done": "kimetumwa",
            "cancelled": "kimefutwa",
        },
        "reminders_unavailable": "Huduma ya taarifa haipatikani sasa: vikumbusho haviwezi kuonyeshwa.",
        "change_reminders": "Badilisha vikumbusho",
        "positive": "weka namba kamili kubwa kuliko sifuri",
        "too_many": "vikumbusho visizidi 10",
    }
)
LABELS["en"].update(
    {
        "reminders_title": "Reminders",
        "reminder_n": "Reminder {n}",
        "amount": "Time before the start",
        "unit": "Unit",
        "units": {"days": "days", "hours": "hours", "minutes": "minutes"},
        "before": "{amount} {unit} before the start",
        "defaults": "Back to the default reminders",
        "defaults_name": "the service's default reminders",
        "source_event": "This event's own reminders",
        "source_default": "The default reminders",
        "scheduled": "Scheduled reminders",
        "due_at": "Sent at (East Africa Time)",
        "status": "Status",
        "notifications": "Messages",
        "no_reminders": "No reminder is scheduled (the notification service does not know the event yet, or its time has passed).",
        "reminder_statuses": {"pending": "pending", "done": "sent", "cancelled": "cancelled"},
        "reminders_unavailable": "The notification service cannot be reached now: the reminders cannot be shown.",
        "change_reminders": "Change the reminders",
        "positive": "enter a whole number above zero",
        "too_many": "at most 10 reminders",
    }
)


def reminder_values(offsets_s: Sequence[int]) -> dict[str, list[str]]:
    """The form's rows for these offsets (each in the largest whole unit), one blank more."""
    values: dict[str, list[str]] = {"rows": [str(len(offsets_s) + 1)]}
    for n, offset in enumerate(offsets_s):
        unit = next(u for u, s in REMINDER_UNITS.items() if offset % s == 0 or u == "minutes")
        values[f"rem-{n}-amount"] = [str(offset // REMINDER_UNITS[unit])]
        values[f"rem-{n}-unit"] = [unit]
    return values


def describe_offset(offset_s: int, t: Mapping[str, Any]) -> str:
    """ "7 days before the start" (in the largest whole unit)."""
    for unit, seconds in REMINDER_UNITS.items():
        if offset_s % seconds == 0 or unit == "minutes":
            return str(t["before"]).format(amount=offset_s // seconds, unit=t["units"][unit])
    return str(offset_s)  # pragma: no cover


def parse_reminders(
    form: Form, t: Mapping[str, Any]
) -> tuple[list[int], list[dict[str, str]], list[int]]:
    """The ``offsets_s`` of the API's body from the form's rows (largest first), the
    problems found before asking (field = the input's id) and the form row of each."""
    found: list[tuple[int, int]] = []
    errors: list[dict[str, str]] = []
    for n in range(rows_of(form)):
        p = f"rem-{n}-"
        raw = _one(form, p + "amount")
        if _one(form, p + "remove") or not raw:
            continue
        amount = _whole(raw)
        unit = _one(form, p + "unit")
        if unit not in REMINDER_UNITS:
            errors.append({"field": p + "unit", "reason": t["required_field"]})
            continue
        if not amount:
            errors.append({"field": p + "amount", "reason": t["positive"]})
            continue
        found.append((amount * REMINDER_UNITS[unit], n))
    if len(found) > MAX_REMINDERS:
        errors.append({"field": f"rem-{found[MAX_REMINDERS][1]}-amount", "reason": t["too_many"]})
    found.sort(key=lambda item: -item[0])
    return [o for o, _ in found], errors, [n for _, n in found]


def reminder_api_errors(
    fields: Sequence[Mapping[str, Any]], offsets: Sequence[int], rows: Sequence[int]
) -> list[dict[str, str]]:
    """notification's 422 (``offsets_s.1``, ``offsets_s``) beside the form's field."""
    out = []
    for f in fields:
        parts = str(f.get("field", "")).split(".")
        index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        row = rows[index] if index < len(rows) else (rows[0] if rows else 0)
        out.append({"field": f"rem-{row}-amount", "reason": str(f.get("reason", ""))})
    return out


async def _reminder_rules(request: Request, session: Any, event_id: str) -> dict[str, Any] | None:
    """The event's reminder rules and scheduled reminders; None when notification is away."""
    try:
        answer = await handlers.call(
            web._ctx(request),
            session,
            "notification",
            "GET",
            f"/api/v1/events/{event_id}/reminder-rules",
        )
    except handlers.ServiceUnavailable:
        return None
    return answer.body if answer.ok and isinstance(answer.body, dict) else None


def _reminders_page(
    request: Request,
    session: Any,
    event: Mapping[str, Any],
    rules: Mapping[str, Any] | None,
    values: Mapping[str, Sequence[str]],
    *,
    changes: list[tuple[str, str, str]] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
    flash: str | None = None,
) -> Response:
    lang = web._lang(request, session)
    e = LABELS[lang]
    return web.render(
        request,
        "event_reminders.html.j2",
        session,
        status=status,
        event=event,
        e=e,
        rules=rules,
        current=[describe_offset(o, e) for o in (rules or {}).get("offsets_s") or []],
        rows=max(rows_of(values), 1),
        values=values,
        units=list(REMINDER_UNITS),
        hidden=[(k, v) for k, vs in values.items() for v in vs],
        changes=changes or [],
        errors=errors or [],
        error_of={x["field"]: x["reason"] for x in errors or []},
        flash=flash,
        describe=lambda offset: describe_offset(offset, e),
    )


async def reminders_section(request: Request, session: Any, event_id: str) -> dict[str, Any]:
    """What the event editor's reminders section shows (``_reminders.html.j2``)."""
    e = LABELS[web._lang(request, session)]
    rules = await _reminder_rules(request, session, event_id)
    return {
        "e": e,
        "rules": rules,
        "current": [describe_offset(o, e) for o in (rules or {}).get("offsets_s") or []],
        "describe": lambda offset: describe_offset(offset, e),
    }


@router.get("/events/{event_id}/edit/reminders", response_class=HTMLResponse)
async def reminders_editor(event_id: str, request: Request) -> Response:
    session = await web._require(request, "edit_event")
    event = await web._event(request, session, event_id)
    rules = await _reminder_rules(request, session, event_id)
    values = reminder_values((rules or {}).get("offsets_s") or [])
    flash = session.data.pop("flash", None)
    if flash:
        await handlers.remember(web._ctx(request), session)
    return _reminders_page(request, session, event, rules, values, flash=flash)


@router.post("/events/{event_id}/edit/reminders", response_class=HTMLResponse)
async def reminders_editor_post(event_id: str, request: Request) -> Response:
    """``more`` adds a row, ``defaults`` previews going back to the service's defaults,
    ``preview`` shows the changes, ``save`` sends them (``PUT …/reminder-rules``)."""
    session = await web._require(request, "edit_event")
    await web._form(request, session)  # the CSRF check
    raw = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in raw.multi_items():
        if key not in ("csrf_token", "step"):
            values.setdefault(key, []).append(str(value))
    event = await web._event(request, session, event_id)
    rules = await _reminder_rules(request, session, event_id)
    e = LABELS[web._lang(request, session)]
    step = str(raw.get("step") or "preview")
    if step == "edit":
        values.pop("to_defaults", None)
        return _reminders_page(request, session, event, rules, values)
    if step == "more":
        values["rows"] = [str(min(rows_of(values) + 1, MAX_ROWS))]
        return _reminders_page(request, session, event, rules, values)
    if step == "defaults":
        values["to_defaults"] = ["yes"]
    to_defaults = bool(values.get("to_defaults"))
    offsets, errors, rows = ([], [], []) if to_defaults else parse_reminders(values, e)
    if errors:
        return _reminders_page(request, session, event, rules, values, errors=errors, status=422)
    before = [describe_offset(o, e) for o in (rules or {}).get("offsets_s") or []]
    after = [e["defaults_name"]] if to_defaults else [describe_offset(o, e) for o in offsets]
    changes = (
        []
        if before == after
        else [(e["reminders_title"], "; ".join(before) or "—", "; ".join(after) or "—")]
    )
    if step != "save" or not changes:
        return _reminders_page(request, session, event, rules, values, changes=changes)
    answer = await web._call(
        request,
        session,
        "notification",
        "PUT",
        f"/api/v1/events/{event_id}/reminder-rules",
        json={"offsets_s": None if to_defaults else offsets},
    )
    if not answer.ok:
        values.pop("to_defaults", None)
        error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
        fields = error.get("fields") or [{"field": "offsets_s", "reason": error.get("message", "")}]
        return _reminders_page(
            request,
            session,
            event,
            rules,
            values,
            errors=reminder_api_errors(fields, offsets, rows),
            status=answer.status if 400 <= answer.status < 500 else 502,
        )
    await handlers.remember(web._ctx(request), session, flash=e["saved"])
    return RedirectResponse(f"/events/{event_id}/edit/reminders", status_code=303)


@router.get("/events/{event_id}/edit/{kind}", response_class=HTMLResponse)
async def catalogue_editor(event_id: str, kind: str, request: Request) -> Response:
    session = await web._require(request, "edit_event")
    if kind not in KINDS:
        raise web._not_found(request, session)
    event = await web._event(request, session, event_id)
    values = KINDS[kind]["values"](KINDS[kind]["current"](event))
    flash = session.data.pop("flash", None)
    if flash:
        await handlers.remember(web._ctx(request), session)
    return _page(request, session, event, kind, values, flash=flash)


@router.post("/events/{event_id}/edit/{kind}", response_class=HTMLResponse)
async def catalogue_editor_post(event_id: str, kind: str, request: Request) -> Response:
    """``step=more`` adds a row, ``preview`` shows the changes, ``save`` sends the whole list."""
    session = await web._require(request, "edit_event")
    if kind not in KINDS:
        raise web._not_found(request, session)
    await web._form(request, session)  # the CSRF check
    raw = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in raw.multi_items():
        if key not in ("csrf_token", "step"):
            values.setdefault(key, []).append(str(value))
    event = await web._event(request, session, event_id)
    spec = KINDS[kind]
    lang = web._lang(request, session)
    t = LABELS[lang]
    step = str(raw.get("step") or "preview")
    if step == "edit":
        return _page(request, session, event, kind, values)
    if step == "more":
        values["rows"] = [str(min(rows_of(values) + 1, MAX_ROWS))]
        return _page(request, session, event, kind, values)
    before = spec["current"](event)
    if kind == "categories":
        body, errors, rows = parse_categories(values, t)
    else:
        body, errors, rows = parse_questions(values, t, before)
    if errors:
        return _page(request, session, event, kind, values, errors=errors, status=422)

    def describe(item: Mapping[str, Any]) -> str:
        return str(spec["describe"](item, t, lang))

    changes = changes_of(before, body, spec["key"], describe)
    if step != "save" or not changes:
        return _page(request, session, event, kind, values, changes=changes)
    answer = await web._call(
        request, session, "registration", "PATCH", f"/api/v1/events/{event_id}", json={kind: body}
    )
    if not answer.ok:
        error = (answer.body or {}).get("error", {}) if isinstance(answer.body, dict) else {}
        fields = error.get("fields") or [{"field": kind, "reason": error.get("message", "")}]
        return _page(
            request,
            session,
            event,
            kind,
            values,
            errors=api_errors(fields, spec["prefix"], kind, rows),
            status=answer.status if 400 <= answer.status < 500 else 502,
        )
    await handlers.remember(web._ctx(request), session, flash=t["saved"])
    return RedirectResponse(f"/events/{event_id}/edit/{kind}", status_code=303)
