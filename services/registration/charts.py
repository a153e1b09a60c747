"""Evaluation charts drawn on the server: one SVG bar chart per question.

Plain SVG text (no library, no script): a title and a description for screen readers,
one labelled bar per answer with its count and share, so the chart reads without colour
and prints as it shows.
"""

from __future__ import annotations

from html import escape
from typing import Any

BAR_COLOUR = "#005293"  # e-GA blue: 7.9:1 against white
WIDTH = 640
ROW = 30
LABEL_W = 230


def bar_chart(question: dict[str, Any], language: str = "en") -> str:
    """The distribution of one question (``domain.evaluation_results``) as SVG."""
    title = question.get(f"label_{language}") or question.get("label_en", "")
    rows = question.get("distribution") or []
    total = sum(r["count"] for r in rows) or 1
    biggest = max((r["count"] for r in rows), default=0) or 1
    height = 40 + ROW * max(len(rows), 1)
    answers = "majibu" if language == "sw" else "answers"
    summary = "; ".join(f"{r['label']}: {r['count']}" for r in rows) or "-"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" aria-labelledby="t d" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<title id="t">{escape(title)}</title>',
        f'<desc id="d">{escape(summary)} ({question.get("answers", 0)} {answers})</desc>',
        f'<text x="0" y="18" font-weight="bold" fill="#1b1b1b">{escape(title)}</text>',
    ]
    bar_space = WIDTH - LABEL_W - 110
    for i, row in enumerate(rows):
        y = 32 + i * ROW
        w = round(bar_space * row["count"] / biggest)
        share = round(100 * row["count"] / total)
        label = str(row["label"])
        shown = label if len(label) <= 32 else label[:31] + "…"
        parts += [
            f'<text x="0" y="{y + 16}" fill="#1b1b1b">{escape(shown)}</text>',
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{max(w, 1)}" height="18" '
            f'fill="{BAR_COLOUR}"/>',
            f'<text x="{LABEL_W + max(w, 1) + 6}" y="{y + 16}" fill="#1b1b1b">'
            f"{row['count']} ({share}%)</text>",
        ]
    parts.append("</svg>")
    return "\n".join(parts)
