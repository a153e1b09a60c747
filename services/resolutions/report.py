"""The implementation report: what e-GA puts on the screen at the conference. Pure.

``build_report`` turns a conference and its resolutions into the report's data (used by
the HTML, CSV and JSON forms alike); the chart is drawn here as inline SVG, so the page
needs nothing from the internet and prints cleanly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.resolutions.csvio import render_csv
from services.resolutions.domain import STATUS_LABELS, Conference, Resolution, weighted_mean

Language = Literal["sw", "en", "both"]
TEMPLATES = Path(__file__).parent / "templates"
REPORT_CSV_COLUMNS = (
    "number",
    "title_sw",
    "title_en",
    "lead_institution",
    "status",
    "status_sw",
    "status_en",
    "progress",
    "weight",
    "target_date",
    "overdue",
    "days_overdue",
    "actions",
    "latest_update_at",
    "latest_update_note",
)


def build_report(
    conference: Conference, resolutions: Sequence[Resolution], today: date
) -> dict[str, Any]:
    """The report's data: overall progress, counts by status, one row per resolution."""
    rows = []
    for resolution in resolutions:
        latest = resolution.latest_update
        overdue = resolution.is_overdue(today)
        target = resolution.target_date
        status = resolution.status
        rows.append(
            {
                "id": resolution.id,
                "number": resolution.number,
                "title_sw": resolution.title_sw,
                "title_en": resolution.title_en,
                "lead_institution": resolution.lead_institution,
                "status": status,
                "status_sw": STATUS_LABELS.get(status, {}).get("sw", status),
                "status_en": STATUS_LABELS.get(status, {}).get("en", status),
                "progress": resolution.progress,
                "weight": resolution.weight,
                "target_date": target.isoformat() if target else None,
                "overdue": overdue,
                "days_overdue": (today - target).days if overdue and target else 0,
                "actions": len(resolution.actions),
                "latest_update_at": latest.at[:10] if latest else None,
                "latest_update_note": latest.note if latest else None,
                "latest_update_progress": latest.progress if latest else None,
            }
        )
    by_status = [
        {"status": s, "sw": label["sw"], "en": label["en"], "colour": label["colour"], "count": 0}
        for s, label in STATUS_LABELS.items()
    ]
    index = {b["status"]: b for b in by_status}
    for row in rows:
        if row["status"] in index:
            index[row["status"]]["count"] += 1
    overall = weighted_mean(rows)
    return {
        "conference": {
            "id": conference.id,
            "name_sw": conference.name_sw,
            "name_en": conference.name_en,
            "starts_on": conference.starts_on.isoformat(),
            "ends_on": conference.ends_on.isoformat(),
            "venue": conference.venue,
        },
        "as_of": today.isoformat(),
        "resolution_count": len(rows),
        "overall_progress": overall if overall is not None else 0,
        "completed": index["completed"]["count"],
        "overdue_count": sum(1 for r in rows if r["overdue"]),
        "by_status": by_status,
        "resolutions": rows,
    }


def export_rows(
    conference: Conference, resolutions: Sequence[Resolution], today: date
) -> list[dict[str, Any]]:
    """The export's rows: each resolution's details and version with its report row."""
    by_id = {r.id: r for r in resolutions}
    return [
        {**by_id[row["id"]].details(), **row, "version": by_id[row["id"]].version}
        for row in build_report(conference, resolutions, today)["resolutions"]
    ]


def status_chart_svg(by_status: Sequence[Mapping[str, Any]], lang: Language) -> str:
    """A horizontal bar chart of resolutions by status, as inline SVG."""
    bar_h, gap, label_w, bar_w = 26, 10, 240, 400
    most = max([b["count"] for b in by_status] + [1])
    height = len(by_status) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'viewBox="0 0 {label_w + bar_w + 60} {height}" '
        f'aria-label="{escape(_label(lang, "Maazimio kwa hali", "Resolutions by status"))}">'
    ]
    for i, b in enumerate(by_status):
        y = gap + i * (bar_h + gap)
        width = round(bar_w * b["count"] / most) if b["count"] else 0
        name = escape(_label(lang, b["sw"], b["en"]))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.0f}" text-anchor="end" '
            f'class="chart-label">{name}</text>'
            f'<rect x="{label_w}" y="{y}" width="{width}" height="{bar_h}" '
            f'fill="{b["colour"]}" data-status="{b["status"]}"/>'
            f'<text x="{label_w + width + 8}" y="{y + bar_h * 0.7:.0f}" '
            f'class="chart-value">{b["count"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _label(lang: Language, sw: str, en: str) -> str:
    return {"sw": sw, "en": en}.get(lang, f"{sw} / {en}")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Mapping[str, Any], lang: Language = "both") -> str:
    """The report as a self-contained HTML page (inline CSS and SVG, no scripts)."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        r=report,
        lang=lang,
        t=lambda sw, en: _label(lang, sw, en),
        colours={s: label["colour"] for s, label in STATUS_LABELS.items()},
        chart=status_chart_svg(report["by_status"], lang),
    )


def render_report_csv(report: Mapping[str, Any]) -> str:
    """One row per resolution, with its status in both languages and the overdue flag."""
    return render_csv(report["resolutions"], REPORT_CSV_COLUMNS)
