"""Name badges as PDF (fpdf2): A6 portrait, name, institution, a band in the category's
colour, and the ticket's QR code (segno), one badge a page, in the order given."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import segno
from fpdf import FPDF

# Category colours (the default categories; other codes get a stable colour of their own).
COLOURS: dict[str, tuple[int, int, int]] = {
    "permanent_secretary": (128, 0, 32),
    "accounting_officer": (0, 82, 147),
    "director_or_head_of_ict": (0, 110, 60),
    "ict_officer": (0, 120, 170),
    "other_officer": (90, 90, 90),
}


def colour_of(category: str) -> tuple[int, int, int]:
    if category in COLOURS:
        return COLOURS[category]
    digest = hashlib.sha256(category.encode()).digest()
    return (digest[0] // 2, digest[1] // 2, digest[2] // 2)  # dark enough for white text


def _latin1(text: str) -> str:
    # The core fonts are Latin-1; names outside it keep their letters where they can.
    return text.encode("latin-1", "replace").decode("latin-1")


def render_badges(event: dict[str, Any], people: list[dict[str, Any]]) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format=(105, 148))  # A6
    pdf.set_auto_page_break(False)
    pdf.set_title(_latin1(f"{event.get('title_en', '')} badges"))
    for person in people:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_xy(8, 8)
        pdf.multi_cell(
            89, 5, _latin1(event.get("title_sw") or event.get("title_en", "")), align="C"
        )
        pdf.set_font("Helvetica", "B", 20)
        pdf.set_xy(8, 30)
        pdf.multi_cell(89, 9, _latin1(person["full_name"]), align="C")
        pdf.set_font("Helvetica", "", 12)
        pdf.set_x(8)
        pdf.multi_cell(89, 6, _latin1(person.get("institution", "")), align="C")
        if person.get("ticket"):
            buf = io.BytesIO()
            segno.make_qr(person["ticket"], error="m").save(buf, kind="png", scale=4, border=2)
            buf.seek(0)
            pdf.image(buf, x=30, y=72, w=45, h=45)
        r, g, b = colour_of(person.get("category", ""))
        pdf.set_fill_color(r, g, b)
        pdf.rect(0, 124, 105, 24, style="F")
        pdf.set_text_color(255, 255, 255)
        pdf.set_font("Helvetica", "B", 12)
        pdf.set_xy(0, 130)
        pdf.cell(105, 6, _latin1(person.get("category", "").replace("_", " ").upper()), align="C")
        pdf.set_xy(0, 137)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(105, 5, person.get("reference", ""), align="C")
        pdf.set_text_color(0, 0, 0)
    return bytes(pdf.output())
