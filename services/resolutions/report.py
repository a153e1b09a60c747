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
from services.resolutions.domain import (
    STATUS_LABELS,
    Conference,
    Resolution,
    weighted_mean,
)

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
                "history": progress_history(resolution),
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
        "scorecard": scorecard(resolutions, today),
    }


def progress_history(resolution: Resolution) -> list[dict[str, Any]]:
    """The resolution's progress over time, from its timeline: where it started (at its
    creation), then each day's last entry."""
    start = resolution.progress
    for record in resolution.versions:
        if "progress" in record.changes:
            start = record.changes["progress"]["from"]
            break
    points = [{"date": resolution.created_at[:10], "progress": start}]
    for entry in resolution.timeline:
        point = {"date": entry.at[:10], "progress": entry.progress}
        if len(points) > 1 and points[-1]["date"] == point["date"]:
            points[-1] = point
        else:
            points.append(point)
    return points


def scorecard(resolutions: Sequence[Resolution], today: date) -> list[dict[str, Any]]:
    """Per lead institution: resolutions led, completed, completed on time (by the target
    date, or without one), overdue, and their average progress (unweighted, rounded)."""
    cards: dict[str, dict[str, Any]] = {}
    for r in resolutions:
        card = cards.setdefault(
            r.lead_institution,
            {
                "institution": r.lead_institution,
                "led": 0,
                "completed": 0,
                "on_time": 0,
                "overdue": 0,
                "_progress": 0,
            },
        )
        card["led"] += 1
        card["_progress"] += r.progress
        done = r.completed_on()
        if done is not None:
            card["completed"] += 1
            if r.target_date is None or done <= r.target_date:
                card["on_time"] += 1
        if r.is_overdue(today):
            card["overdue"] += 1
    out = []
    for card in cards.values():
        total = card.pop("_progress")
        card["average_progress"] = int(total / card["led"] + 0.5)
        out.append(card)
    return sorted(out, key=lambda c: (-c["average_progress"], c["institution"]))


def across_conferences(
    items: Sequence[tuple[Conference, Sequence[Resolution]]], today: date
) -> dict[str, Any]:
    """Several conferences' reports side by side: one column per conference given."""
    columns = []
    for conference, resolutions in items:
        full = build_report(conference, resolutions, today)
        columns.append(
            {
                "conference": full["conference"],
                "resolution_count": full["resolution_count"],
                "overall_progress": full["overall_progress"],
                "completed": full["completed"],
                "overdue_count": full["overdue_count"],
                "by_status": full["by_status"],
                "resolutions": [
                    {
                        k: row[k]
                        for k in (
                            "number",
                            "title_sw",
                            "title_en",
                            "lead_institution",
                            "status",
                            "status_sw",
                            "status_en",
                            "progress",
                            "overdue",
                        )
                    }
                    for row in full["resolutions"]
                ],
            }
        )
    return {"as_of": today.isoformat(), "conference_count": len(columns), "conferences": columns}


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


def progress_svg(history: Sequence[Mapping[str, Any]], label: str) -> str:
    """A small line chart of progress (0–100 %) over time, as inline SVG (no script)."""
    width, height, pad = 240, 60, 4
    days = [date.fromisoformat(p["date"]) for p in history]
    first, last = (days[0], days[-1]) if days else (date.today(), date.today())
    span = max((last - first).days, 1)

    def xy(day: date, value: int) -> str:
        x = pad + (width - 2 * pad) * (day - first).days / span
        y = height - pad - (height - 2 * pad) * value / 100
        return f"{x:.1f},{y:.1f}"

    # A step line: progress holds until the next entry.
    points: list[str] = []
    for i, (day, p) in enumerate(zip(days, history, strict=True)):
        if i:
            points.append(xy(day, history[i - 1]["progress"]))
        points.append(xy(day, p["progress"]))
    summary = ", ".join(f"{p['date']} {p['progress']}%" for p in history)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="spark" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(label)}: {escape(summary)}">'
        f'<line x1="{pad}" y1="{pad}" x2="{width - pad}" y2="{pad}" stroke="#d0d7de"/>'
        f'<polyline fill="none" stroke="#0b4f8a" stroke-width="2" '
        f'points="{" ".join(points)}"/></svg>'
    )


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
        spark=lambda row: progress_svg(
            row["history"], _label(lang, "Maendeleo kwa muda", "Progress over time")
        ),
    )


def render_across_html(data: Mapping[str, Any], lang: Language = "both") -> str:
    """Conferences side by side as a self-contained HTML page."""
    template = _environment().get_template("across.html.j2")
    return template.render(
        d=data,
        lang=lang,
        t=lambda sw, en: _label(lang, sw, en),
        colours={s: label["colour"] for s, label in STATUS_LABELS.items()},
    )


def render_report_csv(report: Mapping[str, Any]) -> str:
    """One row per resolution, with its status in both languages and the overdue flag."""
    return render_csv(report["resolutions"], REPORT_CSV_COLUMNS)
