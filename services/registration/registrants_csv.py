"""An organiser's CSV file of registrants, read into registration requests. Pure: no I/O.

Reading never raises on a bad row: it returns every row's problems (row numbers as a
spreadsheet shows them: the header is row 1; the field is the file's column), so a dry
run reports them all at once and an import with any of them writes nothing. What a
report lists is bounded whatever the file holds (``MAX_REPORTED_PROBLEMS`` and a count
of the rest); echoed column names are cut to ``MAX_ECHO`` characters.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.registration.domain import (
    ANSWER_COLUMN,
    DomainError,
    Event,
    RegistrationRequest,
)
from shared.text import without_controls

MAX_ROWS = 2000
MAX_REPORTED_PROBLEMS = 100
MAX_ECHO = 64
REQUIRED = ("full_name", "email", "phone", "institution", "position", "category")
OPTIONAL = (
    "region",
    "language",
    "dietary_needs",
    "accessibility_needs",
    "accessibility_other",
)
LIST_SEPARATOR = ";"


@dataclass
class Registrants:
    """The rows read (row number, request), every problem, and the file's size."""

    rows: list[tuple[int, RegistrationRequest]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    total_rows: int = 0

    def problem(self, row: int, column: str, reason: str) -> None:
        self.problems.append({"row": row, "field": _echo(column), "reason": reason})

    def report(self) -> dict[str, Any]:
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        return {
            "rows": self.total_rows,
            "valid_rows": self.total_rows - len({p["row"] for p in self.problems if p["row"] > 1}),
            "problems": shown,
            "more_problems": more or None,
        }


def _echo(text: str) -> str:
    return without_controls(text, keep_line_breaks=False)[:MAX_ECHO]


def read_registrants(body: bytes, event: Event, now: datetime) -> Registrants:
    """The file's registration requests for ``event``, checked as an organiser's import
    is (``via="import"``): each field, the category, the answers, and emails unique
    within the file; or the problems of every row."""
    found = Registrants()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        found.problem(1, "file", "not UTF-8 text")
        return found
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        found.problem(1, "file", f"not a CSV file ({exc})")
        return found
    questions = {ANSWER_COLUMN.format(q.id): q for q in event.questions}
    known = set(REQUIRED) | set(OPTIONAL) | set(questions)
    for column in header:
        if column not in known:
            found.problem(1, column or "(empty)", "unknown column")
    if len(set(header)) != len(header):
        found.problem(1, "header", "a column appears twice")
    for column in REQUIRED:
        if column not in header:
            found.problem(1, column, "required column missing")
    if found.problems:
        return found
    emails: dict[str, int] = {}
    row_number = 1
    try:
        for cells in reader:
            row_number += 1
            if not any(c.strip() for c in cells):
                continue  # a blank line
            found.total_rows += 1
            if found.total_rows > MAX_ROWS:
                found.problem(row_number, "file", f"more than {MAX_ROWS} rows")
                break
            if len(cells) != len(header):
                found.problem(row_number, "row", f"{len(cells)} cells for {len(header)} columns")
                continue
            _read_row(found, row_number, dict(zip(header, cells, strict=True)), event, now, emails)
    except csv.Error as exc:
        found.problem(row_number, "file", f"not a CSV file ({exc})")
    return found


def _read_row(
    found: Registrants,
    row: int,
    cells: dict[str, str],
    event: Event,
    now: datetime,
    emails: dict[str, int],
) -> None:
    payload: dict[str, Any] = {}
    for name in (*REQUIRED, *OPTIONAL):
        value = cells.get(name, "").strip()
        if not value:
            continue
        if name == "accessibility_needs":
            payload[name] = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
        else:
            payload[name] = value
    payload["consent"] = {"accepted": True}  # the organiser confirms it (see the API)
    before = len(found.problems)
    request: RegistrationRequest | None = None
    try:
        request = RegistrationRequest.model_validate(payload)
    except ValidationError as exc:
        for error in exc.errors():
            column = str(error["loc"][0]) if error["loc"] else "row"
            reason = "required" if error["type"] == "missing" else error["msg"]
            found.problem(row, column, reason.removeprefix("Value error, "))
    category = cells.get("category", "").strip()
    if category:
        try:
            event.check_can_register(category, now, via="import")
        except DomainError as exc:
            found.problem(row, "category", exc.message)
        else:
            raw = {
                q.id: cells[ANSWER_COLUMN.format(q.id)]
                for q in event.questions
                if cells.get(ANSWER_COLUMN.format(q.id), "").strip()
            }
            try:
                answers = event.check_answers(category, raw, typed=True)
            except DomainError as exc:
                for problem in (exc.details or {}).get("fields", []):
                    found.problem(row, problem["field"], problem["reason"])
            else:
                if request is not None:
                    request = request.model_copy(update={"answers": answers})
    if request is not None:
        first = emails.setdefault(request.email, row)
        if first != row:
            found.problem(row, "email", f"the same email as row {first}")
    if request is not None and len(found.problems) == before:
        found.rows.append((row, request))
