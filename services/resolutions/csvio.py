"""CSV import and export of resolutions and progress updates. Pure: no I/O.

Parsing never raises on a bad row: it returns the rows' problems (row numbers as a
spreadsheet shows them: the header is row 1), so a dry run can report them at once.
What a report lists is bounded whatever the file holds: the first
``MAX_REPORTED_PROBLEMS`` problems and how many more, each naming the column it echoes
in at most ``MAX_ECHO`` characters (control characters shown escaped).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from services.resolutions.domain import (
    DomainError,
    ProgressUpdate,
    ResolutionSpec,
    check_status,
    check_target,
)
from shared.text import without_controls

MAX_ROWS = 2000
MAX_REPORTED_PROBLEMS = 100
MAX_ECHO = 64

RESOLUTION_REQUIRED = ("number", "title_sw", "title_en", "lead_institution")
RESOLUTION_OPTIONAL = (
    "description_sw",
    "description_en",
    "supporting_institutions",
    "target_date",
    "status",
    "progress",
    "weight",
    "focal_person_name",
    "focal_person_institution",
    "focal_person_email",
    "focal_person_phone",
    "focal_person_language",
)
PROGRESS_REQUIRED = ("number",)
PROGRESS_OPTIONAL = ("status", "progress", "note", "evidence", "version")

# A CSV column for each field of the validated models, to name problems as the file does.
_FOCAL_COLUMNS = {
    "full_name": "focal_person_name",
    "institution": "focal_person_institution",
    "email": "focal_person_email",
    "phone": "focal_person_phone",
    "language": "focal_person_language",
}
LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class RowProblem:
    """One problem of one row (row 1 is the header) in one column."""

    row: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass
class ParsedFile:
    """The valid rows (row number, model), the first problems and how many more."""

    rows: list[tuple[int, Any]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    more_problems: int = 0
    row_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.more_problems

    def add(self, problems: Iterable[RowProblem]) -> None:
        """Keep the first ``MAX_REPORTED_PROBLEMS``; count the others."""
        for problem in problems:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(problem)
            else:
                self.more_problems += 1


def echo(value: str) -> str:
    """A value of the file, as a report may repeat it: control characters escaped, at
    most ``MAX_ECHO`` characters."""
    shown = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in value[: MAX_ECHO + 1]
    )
    return shown if len(shown) <= MAX_ECHO else shown[: MAX_ECHO - 1] + "\u2026"


def decode(body: bytes) -> str:
    """The body as text (UTF-8, with or without the BOM Excel writes)."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("invalid_csv", "The file is not UTF-8 text.", field="body") from exc


def _read(
    text: str, required: Sequence[str], optional: Sequence[str], result: ParsedFile
) -> list[tuple[int, dict[str, str]]]:
    """Rows as dicts of non-empty cells, after checking the header (problems go to
    ``result``)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        result.add([RowProblem(1, "header", "the file is empty")])
        return []
    except csv.Error as exc:
        result.add([RowProblem(1, "header", f"unreadable CSV: {exc}")])
        return []
    columns = [h.strip().lower() for h in header]
    known = set(required) | set(optional)
    unknown = [name for name in columns if name not in known]
    missing = [name for name in required if name not in columns]
    if unknown:
        result.add(
            [
                RowProblem(
                    1,
                    "header",
                    f"expected the columns {', '.join(required)}"
                    f" and optionally {', '.join(optional)}",
                )
            ]
        )
        result.add(RowProblem(1, echo(name) or "(empty)", "unknown column") for name in unknown)
    result.add(RowProblem(1, name, "required column is missing") for name in missing)
    if len(set(columns)) != len(columns):
        result.add([RowProblem(1, "header", "a column appears twice")])
    if not result.ok:
        return []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank lines (spreadsheets add them at the end)
            if len(cells) > len(columns):
                result.add(
                    [RowProblem(line, "row", f"{len(cells)} cells for {len(columns)} columns")]
                )
                continue
            values = {c: v.strip() for c, v in zip(columns, cells, strict=False) if v.strip()}
            rows.append((line, values))
            if len(rows) > MAX_ROWS:
                result.problems, result.more_problems = [], 0
                result.add([RowProblem(line, "row", f"more than {MAX_ROWS} rows")])
                return []
    except csv.Error as exc:
        result.add([RowProblem(reader.line_num, "row", f"unreadable CSV: {exc}")])
    return rows


def _problems_of(
    line: int, exc: ValidationError, column_of: Mapping[str, str] | None = None
) -> list[RowProblem]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        name = loc[0] if loc else "row"
        if name == "focal_persons" and len(loc) >= 3:
            name = _FOCAL_COLUMNS.get(loc[2], "focal_person_" + loc[2])
        elif column_of:
            name = column_of.get(name, name)
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            reason = "required"
        out.append(RowProblem(line, name, reason))
    return out


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(LIST_SEPARATOR) if v.strip()]


def parse_resolutions(
    text: str, *, conference_starts: str, existing_numbers: Iterable[int]
) -> ParsedFile:
    """Validate a resolutions file: every row's problems, and the valid specs."""
    result = ParsedFile()
    rows = _read(text, RESOLUTION_REQUIRED, RESOLUTION_OPTIONAL, result)
    result.row_count = len(rows)
    taken = set(existing_numbers)
    seen: dict[int, int] = {}
    for line, cells in rows:
        data: dict[str, Any] = {k: v for k, v in cells.items() if not k.startswith("focal_person_")}
        if "supporting_institutions" in data:
            data["supporting_institutions"] = _split(data["supporting_institutions"])
        focal = {k: cells[col] for k, col in _FOCAL_COLUMNS.items() if col in cells}
        if focal:
            focal.setdefault("institution", cells.get("lead_institution", ""))
            data["focal_persons"] = [focal]
        try:
            spec = ResolutionSpec.model_validate(data)
        except ValidationError as exc:
            result.add(_problems_of(line, exc))
            continue
        problems = _rule_problems(line, spec, conference_starts)
        if spec.number in taken:
            problems.append(
                RowProblem(line, "number", "the conference already has a resolution with it")
            )
        elif spec.number in seen:
            problems.append(
                RowProblem(line, "number", f"the same number is on row {seen[spec.number]}")
            )
        seen.setdefault(spec.number, line)
        if problems:
            result.add(problems)
        else:
            result.rows.append((line, spec))
    return result


def _rule_problems(line: int, spec: ResolutionSpec, conference_starts: str) -> list[RowProblem]:
    problems = []
    for check in (
        lambda: check_status(spec.status),
        lambda: check_target(spec.target_date, conference_starts),
    ):
        try:
            check()
        except DomainError as exc:
            problems.append(RowProblem(line, exc.field or "row", exc.message))
    return problems


class ProgressRow(BaseModel):
    """One row of a bulk progress file: which resolution, and its update."""

    number: int
    update: ProgressUpdate


def parse_progress(text: str, *, resolutions: Mapping[int, Mapping[str, Any]]) -> ParsedFile:
    """Validate a bulk progress file against the conference's resolutions (by number)."""
    result = ParsedFile()
    rows = _read(text, PROGRESS_REQUIRED, PROGRESS_OPTIONAL, result)
    result.row_count = len(rows)
    seen: dict[int, int] = {}
    for line, cells in rows:
        problems: list[RowProblem] = []
        raw_number = cells.get("number", "")
        number = int(raw_number) if raw_number.isascii() and raw_number.isdigit() else None
        current = resolutions.get(number) if number is not None else None
        if current is None:
            problems.append(RowProblem(line, "number", "no resolution with this number"))
        elif number in seen:
            problems.append(RowProblem(line, "number", f"the same number is on row {seen[number]}"))
        data: dict[str, Any] = {
            k: v for k, v in cells.items() if k in ("status", "progress", "note", "version")
        }
        data["evidence"] = _split(cells.get("evidence"))
        try:
            update = ProgressUpdate.model_validate(data)
        except ValidationError as exc:
            result.add(problems + _problems_of(line, exc))
            continue
        if update.status is not None:
            try:
                check_status(update.status)
            except DomainError as exc:
                problems.append(RowProblem(line, "status", exc.message))
        if current is not None:
            if update.version is not None and update.version != current["version"]:
                problems.append(
                    RowProblem(
                        line,
                        "version",
                        f"the resolution changed since it was read (now {current['version']})",
                    )
                )
            if update.progress is not None and current.get("actions"):
                problems.append(
                    RowProblem(line, "progress", "computed from the resolution's actions")
                )
        if number is not None:
            seen.setdefault(number, line)
        if problems:
            result.add(problems)
        else:
            assert number is not None
            result.rows.append((line, ProgressRow(number=number, update=update)))
    return result


# --------------------------------------------------------------------------- export


EXPORT_COLUMNS = (
    "number",
    "title_sw",
    "title_en",
    "description_sw",
    "description_en",
    "lead_institution",
    "supporting_institutions",
    "target_date",
    "status",
    "progress",
    "weight",
    "version",
    "overdue",
    "latest_update_at",
    "latest_update_note",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = LIST_SEPARATOR.join(str(v) for v in value)
    # Text stored before control characters were refused leaves without them.
    text = without_controls(str(value))
    # Spreadsheets run a cell starting with these as a formula (CSV injection).
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def render_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with the given columns (a header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
