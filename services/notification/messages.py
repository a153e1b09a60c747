"""Rendering messages from the Jinja2 templates in ``templates/`` (Swahili and English)."""

from __future__ import annotations

import io
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import segno
from icalendar import Calendar
from icalendar import Event as CalEvent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.timeutil import EAT

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("sw", "en")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€")

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


def render_email(template: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of an email."""
    lang = language if language in LANGUAGES else "sw"
    base = f"email/{lang}/{template}"
    subject = _env.get_template(f"{base}.subject.j2").render(**context).strip()
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


def qr_png(ticket: str) -> bytes:
    buf = io.BytesIO()
    segno.make(ticket, error="m").save(buf, kind="png", scale=6, border=2)
    return buf.getvalue()


def calendar_invite(context: dict[str, Any], uid: str) -> bytes:
    event = context["event"]
    cal = Calendar()
    cal.add("prodid", "-//e-GA//Mkutano//SW")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    item = CalEvent()
    item.add("uid", f"{uid}@mkutano.ega.go.tz")
    item.add("summary", event["title_sw"] if context.get("language") == "sw" else event["title_en"])
    item.add("dtstart", datetime.fromisoformat(event["starts_at"].replace("Z", "+00:00")))
    item.add("dtend", datetime.fromisoformat(event["ends_at"].replace("Z", "+00:00")))
    item.add("location", f"{event['venue']}, {event['city']}")
    item.add("description", f"Reference / Namba ya usajili: {context['reference']}")
    item.add("dtstamp", datetime.now(EAT))
    if context.get("ics_sequence") is not None:  # an update of the same entry (RFC 5545)
        item.add("sequence", int(context["ics_sequence"]))
    cal.add_component(item)
    return cal.to_ical()


def build_email(
    *,
    notification_id: str,
    sender: str,
    recipient: str,
    template: str,
    language: str,
    context: dict[str, Any],
    attachments: list[str],
) -> EmailMessage:
    """A multipart email: plain text + HTML, with the QR ticket and .ics when asked."""
    subject, text, html = render_email(template, language, {**context, "language": language})
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    # A stable Message-ID per notification lets receivers recognise a re-sent copy.
    msg["Message-ID"] = f"<{notification_id}@mkutano.ega.go.tz>"
    msg["X-Mkutano-Notification"] = notification_id
    msg["X-Mkutano-Template"] = template
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if "qr" in attachments and context.get("ticket"):
        msg.add_attachment(
            qr_png(context["ticket"]), maintype="image", subtype="png", filename="tiketi-ticket.png"
        )
    if "ics" in attachments:
        msg.add_attachment(
            calendar_invite(
                {**context, "language": language}, context.get("registration_id") or notification_id
            ),
            maintype="text",
            subtype="calendar",
            filename="mkutano.ics",
        )
    # Last: set_content()/add_attachment() move or drop Content-* headers set before them.
    msg["Content-Language"] = language
    return msg


__all__ = [
    "build_email",
    "make_msgid",
    "render_email",
    "render_sms",
    "sms_segments",
    "template_names",
]
