"""Rendering messages from the Jinja2 templates in ``templates/`` (Swahili and English)."""

from __future__ import annotations

import functools
import io
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from icalendar import Calendar, Timezone, vCalAddress
from icalendar import Event as CalEvent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from PIL import Image, ImageOps

from shared.text import without_controls
from shared.timeutil import EAT

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("sw", "en")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€")
DOMAIN = "mkutano.ega.go.tz"
# Written by a person (an organiser), so not marked Auto-Submitted (RFC 3834 §5).
WRITTEN_BY_A_PERSON = {"announcement"}
# The QR ticket: pixels per module, and the quiet zone ISO/IEC 18004 asks for (4 modules).
QR_SCALE = 6
QR_BORDER = 4
# The QR mask pattern, fixed: segno's choice evaluates all eight (10 of a ticket's 17 ms
# to render, profiled in a surge), and a ticket is high-entropy data (base32 of an id and
# a signature), for which the choice hardly changes the symbol; every mask is standard,
# and the tests decode the PNGs with zbar. Pillow writes the PNG (segno's writer is pure
# Python): 17 → 5 ms per ticket.
QR_MASK = 0
# Rendered QR tickets kept (about 1 KB each).
QR_CACHE = 4096
# The venue's zone when an event names none (or one this machine does not know).
CALENDAR_ZONE = "Africa/Dar_es_Salaam"
# The message that takes a participant's entry out of their calendar (iTIP CANCEL).
CANCELS_THE_ENTRY = {"cancelled"}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _local(value: str | datetime, fmt: str = "%d/%m/%Y %H:%M") -> str:
    dt = (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    return dt.astimezone(EAT).strftime(fmt)


_env.filters["local"] = _local


def template_names(channel: str) -> list[str]:
    """The message templates of a channel (the same set in every language)."""
    folder = TEMPLATES / channel / "sw"
    suffix = ".subject.j2" if channel == "email" else ".txt.j2"
    return sorted(p.name.removesuffix(suffix) for p in folder.glob(f"*{suffix}"))


def one_line(value: str) -> str:
    """``value`` as one line for a header or a calendar property: line breaks (CR, LF,
    U+2028, U+2029…) and tabs become spaces, other control characters U+FFFD, runs of
    white space one space. Titles stored before the API refused line breaks still make
    a valid Subject this way."""
    return without_controls(" ".join(value.split()), keep_line_breaks=False)


def render_email(template: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject (one line), plain text and HTML of an email."""
    lang = language if language in LANGUAGES else "sw"
    base = f"email/{lang}/{template}"
    subject = one_line(_env.get_template(f"{base}.subject.j2").render(**context))
    text = _env.get_template(f"{base}.txt.j2").render(**context)
    html = _env.get_template(f"{base}.html.j2").render(**context)
    return subject, text, html


def render_sms(template: str, language: str, context: dict[str, Any]) -> str:
    """One SMS text, whitespace collapsed to single spaces."""
    lang = language if language in LANGUAGES else "sw"
    return " ".join(_env.get_template(f"sms/{lang}/{template}.txt.j2").render(**context).split())


def sms_segments(text: str) -> int:
    """GSM-7 segments (160, or 153 when concatenated); UCS-2 (70/67) if any other character."""
    if all(ch in GSM7 or ch in GSM7_EXT for ch in text):
        units = sum(2 if ch in GSM7_EXT else 1 for ch in text)
        return 1 if units <= 160 else -(-units // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


@functools.lru_cache(maxsize=QR_CACHE)
def qr_png(ticket: str) -> bytes:
    """The ticket as a QR code (level M at least) with its 4-module quiet zone; never a
    Micro QR code (``segno.make`` picks one for short data), which scanners do not read.

    Rendered once per ticket (per process): the confirmation, a resend, a payment's
    confirmation and every later message carrying the ticket reuse the PNG."""
    qr = segno.make_qr(ticket, error="m", mask=QR_MASK)
    n = len(qr.matrix)  # modules per side; each module 1 (dark) or 0
    dark_black = bytes([255, 0]) + bytes(254)
    pixels = b"".join(bytes(row) for row in qr.matrix).translate(dark_black)
    image = ImageOps.expand(Image.frombytes("L", (n, n), pixels), border=QR_BORDER, fill=255)
    side = (n + 2 * QR_BORDER) * QR_SCALE
    image = image.resize((side, side), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.convert("1").save(buf, format="PNG")
    return buf.getvalue()


def warm_up() -> None:
    """Load the templates and the QR and calendar code (a render process at its start)."""
    for template in template_names("email"):
        for lang in LANGUAGES:
            _env.get_template(f"email/{lang}/{template}.html.j2")
    qr_png("MK2WARMUP")
    Calendar().to_ical()


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or CALENDAR_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(CALENDAR_ZONE)


def calendar_method(template: str) -> str:
    """REQUEST (the entry, new or updated) or CANCEL (the entry leaves the calendar)."""
    return "CANCEL" if template in CANCELS_THE_ENTRY else "REQUEST"


def calendar_invite(
    context: dict[str, Any],
    uid: str,
    *,
    method: str = "REQUEST",
    organizer: str = f"no-reply@{DOMAIN}",
    attendee: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """An iTIP (RFC 5546) REQUEST or CANCEL of the participant's calendar entry.

    One UID per registration; SEQUENCE 0 when the confirmation creates the entry, and
    the time of each later revision (``ics_sequence``: an event change, a resend, the
    cancellation), so the newest always wins. Times are the venue's local time with its
    VTIMEZONE; DTSTAMP is UTC.
    """
    event = context["event"]
    zone = _zone(event.get("timezone"))
    participant = context.get("participant") or {}
    title = event["title_sw"] if context.get("language") == "sw" else event["title_en"]
    cal = Calendar()
    cal.add("prodid", "-//e-GA//Mkutano//SW")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    item = CalEvent()
    item.add("uid", f"{uid}@{DOMAIN}")
    item.add("dtstamp", (now or datetime.now(UTC)).astimezone(UTC))
    item.add("sequence", int(context.get("ics_sequence") or 0))
    item.add("summary", one_line(title))
    item.add("dtstart", _parse(event["starts_at"]).astimezone(zone))
    item.add("dtend", _parse(event["ends_at"]).astimezone(zone))
    item.add("location", one_line(f"{event['venue']}, {event['city']}"))
    item.add("description", f"Reference / Namba ya usajili: {one_line(context['reference'])}")
    item.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    item.add("organizer", vCalAddress(f"mailto:{organizer}"), parameters={"CN": "e-GA Mkutano"})
    if attendee:
        params = {"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE"}
        if participant.get("full_name"):
            params["CN"] = one_line(participant["full_name"])
        item.add("attendee", vCalAddress(f"mailto:{attendee}"), parameters=params)
    cal.add_component(item)
    add_timezones(cal)  # the VTIMEZONE of every TZID used
    return cal.to_ical()


def add_timezones(cal: Calendar) -> None:
    """``Calendar.add_missing_timezones``, with each zone's VTIMEZONE built once: icalendar
    builds it by asking the zone for its offset hour by hour from 1970 to 2038, which
    was more than half of the CPU of rendering a confirmation."""
    at = len(cal.timezones)
    for tzid in sorted(cal.get_missing_tzids()):
        timezone = _vtimezone(tzid)
        if timezone is not None:
            cal.subcomponents.insert(at, timezone)
            at += 1


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> Timezone | None:
    """One zone's VTIMEZONE (shared by the calendars: never changed once built)."""
    try:
        return Timezone.from_tzid(tzid)
    except ValueError:
        return None


def _parse(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def build_email(
    *,
    notification_id: str,
    sender: str,
    recipient: str,
    template: str,
    language: str,
    context: dict[str, Any],
    attachments: list[str],
    date: datetime | None = None,
) -> EmailMessage:
    """A multipart email: plain text + HTML, with the QR ticket and .ics when asked.

    ``date`` (default: now) is its Date header. Every message but one written by a
    person says ``Auto-Submitted: auto-generated``, so that vacation responders and
    other automatic replies stay silent (RFC 3834)."""
    date = date or datetime.now(UTC)
    subject, text, html = render_email(template, language, {**context, "language": language})
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(EAT))
    # A stable Message-ID per notification lets receivers recognise a re-sent copy.
    msg["Message-ID"] = f"<{notification_id}@{DOMAIN}>"
    if template not in WRITTEN_BY_A_PERSON:
        msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mkutano-Notification"] = notification_id
    msg["X-Mkutano-Template"] = template
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if "qr" in attachments and context.get("ticket"):
        msg.add_attachment(
            qr_png(context["ticket"]), maintype="image", subtype="png", filename="tiketi-ticket.png"
        )
    if "ics" in attachments:
        method = calendar_method(template)
        invite = calendar_invite(
            {**context, "language": language},
            context.get("registration_id") or notification_id,
            method=method,
            organizer=parseaddr(sender)[1] or f"no-reply@{DOMAIN}",
            attendee=recipient,
            now=date,
        )
        # iMIP (RFC 6047): the part's method parameter is the calendar's METHOD.
        msg.add_attachment(
            invite,
            maintype="text",
            subtype="calendar",
            filename="mkutano.ics",
            params={"method": method, "charset": "utf-8"},
        )
    # Last: set_content()/add_attachment() move or drop Content-* headers set before them.
    msg["Content-Language"] = language
    return msg


__all__ = [
    "EmailMessage",
    "build_email",
    "make_msgid",
    "one_line",
    "render_email",
    "render_sms",
    "sms_segments",
    "template_names",
]
