"""Certificates of attendance as PDF (fpdf2), from the templates in files.

A template is a folder under ``templates/certificates/<name>/``: ``template.json`` (the
issuer's name in both languages, the signatory's name and title, the colour, the file
names of the background and the logos) and those images. The PDF is A4 landscape and
bilingual, the participant's language first: their name and institution, the event, the
days they attended with the CPD hours of each, the serial and a QR code of the public
verification page. Rendering is pure (no I/O but reading the template once), so the
same certificate always draws the same page.

Text is drawn in the PDF core font Helvetica (Windows-1252): Swahili and English need
nothing more, and a name with a letter outside it is drawn with its accent removed
(NFKD) rather than refused. Embedding a Unicode font is one setting away
(``FPDF.add_font``) but costs a font subset per document.
"""

from __future__ import annotations

import io
import json
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import segno
from fpdf import FPDF
from PIL import Image

TEMPLATES = Path(__file__).parent / "templates" / "certificates"
_MONTHS = {
    "sw": [
        "Januari", "Februari", "Machi", "Aprili", "Mei", "Juni",
        "Julai", "Agosti", "Septemba", "Oktoba", "Novemba", "Desemba",
    ],
    "en": [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ],
}  # fmt: skip
WORDS = {
    "sw": {
        "title": "CHETI CHA USHIRIKI",
        "certifies": "Inathibitishwa kwamba",
        "of": "wa",
        "attended": "alihudhuria",
        "days": "Siku alizohudhuria",
        "hours": "Saa za CPD",
        "total": "Jumla ya saa za CPD",
        "serial": "Namba ya cheti",
        "verify": "Hakiki cheti hiki",
    },
    "en": {
        "title": "CERTIFICATE OF ATTENDANCE",
        "certifies": "This is to certify that",
        "of": "of",
        "attended": "attended",
        "days": "Days attended",
        "hours": "CPD hours",
        "total": "Total CPD hours",
        "serial": "Certificate number",
        "verify": "Verify this certificate",
    },
}


@dataclass(frozen=True)
class CertificateTemplate:
    name: str
    folder: Path
    settings: dict[str, Any]
    background: bytes | None
    logos: tuple[bytes, ...]


class UnknownTemplate(LookupError):
    pass


@lru_cache(maxsize=16)
def load_template(name: str) -> CertificateTemplate:
    """A template folder, read once per process."""
    folder = TEMPLATES / name
    if not name or "/" in name or ".." in name or not (folder / "template.json").is_file():
        raise UnknownTemplate(name)
    settings = json.loads((folder / "template.json").read_text(encoding="utf-8"))
    background = settings.get("background")
    return CertificateTemplate(
        name=name,
        folder=folder,
        settings=settings,
        background=(folder / background).read_bytes() if background else None,
        logos=tuple((folder / logo).read_bytes() for logo in settings.get("logos", [])),
    )


def template_names() -> list[str]:
    return sorted(p.parent.name for p in TEMPLATES.glob("*/template.json"))


_NO_DECOMPOSITION = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h"})


def latin(text: str) -> str:
    """``text`` in what the core font draws (Windows-1252): a letter outside it loses
    its accent (NFKD), an unknown one becomes "?"."""
    out = []
    for ch in text.translate(_NO_DECOMPOSITION):
        try:
            ch.encode("cp1252")
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        try:
            base.encode("cp1252")
            out.append(base or "?")
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out)


def long_date(day: str, language: str) -> str:
    d = date.fromisoformat(day)
    month = _MONTHS[language][d.month - 1]
    return f"{d.day} {month} {d.year}"


def _hours(value: float) -> str:
    return f"{value:g}"


def qr_image(url: str, scale: int = 4, border: int = 4) -> Image.Image:
    """The verification URL as a QR code (level M, its 4-module quiet zone), 8-bit grey:
    a 1-bit image comes out of some PDF readers' image extraction garbled."""
    qr = segno.make_qr(url, error="m")
    size = qr.symbol_size(scale=1, border=border)[0]
    image = Image.new("L", (size, size), 255)
    pixels = image.load()
    for y, row in enumerate(qr.matrix_iter(scale=1, border=border)):
        for x, dark in enumerate(row):
            if dark:
                pixels[x, y] = 0
    return image.resize((size * scale, size * scale), Image.Resampling.NEAREST)


def render_certificate(certificate: Any, verify_url: str) -> bytes:
    """The PDF of a ``domain.Certificate`` (its fields as frozen at issue)."""
    template = load_template(certificate.template)
    conf = template.settings
    colour = tuple(conf.get("colour", (0, 82, 147)))
    first = certificate.language if certificate.language in WORDS else "sw"
    second = "en" if first == "sw" else "sw"
    event = certificate.event
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(latin(f"{WORDS[first]['title']} - {certificate.serial}"))
    pdf.set_author(latin(conf.get(f"issuer_{first}", "e-GA")))
    pdf.set_creator("Mkutano")
    # Fixed dates: the same certificate draws the same bytes.
    pdf.set_creation_date(datetime.fromisoformat(certificate.issued_at.replace("Z", "+00:00")))
    pdf.set_auto_page_break(False)
    pdf.set_margins(20, 15, 20)
    pdf.add_page()
    width = pdf.w
    if template.background:
        pdf.image(io.BytesIO(template.background), x=0, y=0, w=width, h=pdf.h)
    for i, logo in enumerate(template.logos):
        pdf.image(io.BytesIO(logo), x=width / 2 - 12 + (i - (len(template.logos) - 1) / 2) * 30,
                  y=16, w=24, h=24)  # fmt: skip
    pdf.set_text_color(*colour)
    pdf.set_font("Helvetica", "B", 11)
    pdf.set_xy(20, 42)
    pdf.cell(width - 40, 6, latin(conf.get(f"issuer_{first}", "")), align="C")
    pdf.set_xy(20, 48)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(width - 40, 5, latin(conf.get(f"issuer_{second}", "")), align="C")
    pdf.set_font("Helvetica", "B", 24)
    pdf.set_xy(20, 57)
    pdf.cell(width - 40, 11, WORDS[first]["title"], align="C")
    pdf.set_font("Helvetica", "", 12)
    pdf.set_xy(20, 68)
    pdf.cell(width - 40, 6, WORDS[second]["title"], align="C")
    pdf.set_text_color(30, 30, 30)
    pdf.set_font("Helvetica", "", 12)
    pdf.set_xy(20, 80)
    pdf.cell(
        width - 40, 6, f"{WORDS[first]['certifies']} / {WORDS[second]['certifies']}", align="C"
    )
    pdf.set_font("Helvetica", "B", 22)
    pdf.set_xy(20, 88)
    pdf.cell(width - 40, 11, latin(certificate.full_name), align="C")
    pdf.set_font("Helvetica", "", 12)
    pdf.set_xy(20, 100)
    pdf.cell(width - 40, 6, latin(f"{WORDS[first]['of']} {certificate.institution}"), align="C")
    pdf.set_xy(20, 108)
    pdf.cell(width - 40, 6, f"{WORDS[first]['attended']} / {WORDS[second]['attended']}", align="C")
    pdf.set_font("Helvetica", "B", 15)
    pdf.set_xy(30, 115)
    pdf.multi_cell(width - 60, 7, latin(event.get(f"title_{first}", "")), align="C")
    pdf.set_font("Helvetica", "I", 11)
    pdf.set_x(30)
    pdf.multi_cell(width - 60, 5.5, latin(event.get(f"title_{second}", "")), align="C")
    pdf.set_font("Helvetica", "", 11)
    pdf.set_x(30)
    pdf.cell(width - 60, 6, latin(f"{event.get('venue', '')}, {event.get('city', '')}"), align="C")
    # The days attended and their hours.
    y = pdf.get_y() + 9
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_xy(60, y)
    pdf.cell(110, 6, f"{WORDS[first]['days']} / {WORDS[second]['days']}", border="B")
    pdf.cell(60, 6, f"{WORDS[first]['hours']} / {WORDS[second]['hours']}", border="B", align="R")
    pdf.set_font("Helvetica", "", 10)
    for day in certificate.days:
        y += 6
        pdf.set_xy(60, y)
        pdf.cell(110, 6, f"{long_date(day, first)} ({day})")
        pdf.cell(60, 6, _hours(certificate.hours_by_day.get(day, 0.0)), align="R")
    y += 6
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_xy(60, y)
    pdf.cell(110, 6, f"{WORDS[first]['total']} / {WORDS[second]['total']}", border="T")
    pdf.cell(60, 6, _hours(certificate.cpd_hours), border="T", align="R")
    # Signature block (left), serial and QR code (right).
    signatory = conf.get("signatory", {})
    bottom = pdf.h - 52
    pdf.set_draw_color(*colour)
    pdf.line(30, bottom + 8, 110, bottom + 8)
    pdf.set_xy(30, bottom + 9)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(80, 5, latin(signatory.get("name", "")))
    pdf.set_xy(30, bottom + 14)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(80, 4.5, latin(signatory.get(f"title_{first}", "")))
    pdf.set_xy(30, bottom + 18.5)
    pdf.cell(80, 4.5, latin(signatory.get(f"title_{second}", "")))
    pdf.image(qr_image(verify_url), x=width - 62, y=bottom - 10, w=32, h=32)
    pdf.set_xy(width - 150, bottom + 2)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(85, 4.5, f"{WORDS[first]['serial']} / {WORDS[second]['serial']}:", align="R")
    pdf.set_xy(width - 150, bottom + 7)
    pdf.set_font("Courier", "B", 10)
    pdf.cell(85, 5, certificate.serial, align="R")
    pdf.set_xy(width - 150, bottom + 13)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(85, 4, f"{WORDS[first]['verify']}: {latin(verify_url)}", align="R")
    return bytes(pdf.output())
