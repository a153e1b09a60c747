"""What notification sends, checked by each standard's own reading, for unit and e2e tests.

- RFC 5322 / MIME: the message parsed by Python's ``email`` package with policy
  ``default`` (no defect on the message or on any header), Date, From, Message-ID, the
  one-line Subject, ``Auto-Submitted``, and the MIME structure (plain text and HTML
  alternatives, attachments).
- RFC 5545 (and iTIP, RFC 5546, for the methods): every ``text/calendar`` part parsed
  with ``icalendar`` with no error on any component, CRLF lines of at most 75 octets,
  VERSION/PRODID/METHOD, one VEVENT with UID, DTSTAMP in UTC, SEQUENCE, ORGANIZER,
  ATTENDEE; each TZID defined by a VTIMEZONE; the part's ``method`` parameter equal to
  METHOD.
- QR tickets: ``zbarimg`` (Debian's zbar-tools, ``make deps-zbar``) decodes the PNG.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from icalendar import Calendar

MSG_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
# RFC 5546 §3.2: what each method's VEVENT must carry besides UID and DTSTAMP.
ITIP_REQUIRED = {
    "REQUEST": ("DTSTART", "SUMMARY", "ORGANIZER", "ATTENDEE"),
    "CANCEL": ("ORGANIZER", "ATTENDEE", "SEQUENCE"),
}


def parse(message: EmailMessage | bytes) -> EmailMessage:
    """The message as a receiver reads it: its bytes parsed with policy ``default``."""
    data = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
    parser = email.parser.BytesParser(policy=email.policy.default)
    return cast(EmailMessage, parser.parsebytes(data))


def check_email(message: EmailMessage | bytes, *, automatic: bool = True) -> EmailMessage:
    """Assert RFC 5322 and MIME rules on one message; returns it parsed."""
    raw = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
    for line in raw.split(b"\r\n" if b"\r\n" in raw else b"\n"):
        assert len(line) <= 998, f"a line of {len(line)} octets (RFC 5322 §2.1.1)"
    parsed = parse(raw)
    assert not parsed.defects, parsed.defects
    for name, value in parsed.items():
        assert not getattr(value, "defects", ()), (name, value, value.defects)
    for name in ("Date", "From", "Message-ID", "Subject", "MIME-Version"):
        assert len(parsed.get_all(name) or []) == 1, f"{name} must appear once"
    date = parsed["Date"].datetime
    assert date is not None and date.tzinfo is not None, parsed["Date"]
    assert MSG_ID.match(str(parsed["Message-ID"])), parsed["Message-ID"]
    assert str(parsed["MIME-Version"]) == "1.0"
    subject = str(parsed["Subject"])
    assert subject.strip() and not re.search("[\r\n\u2028\u2029]", subject), repr(subject)
    if automatic:
        assert str(parsed["Auto-Submitted"]) == "auto-generated"  # RFC 3834
    else:
        assert parsed["Auto-Submitted"] is None
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None, "plain text and HTML alternatives"
    assert plain.get_content().strip() and html.get_content().lstrip().startswith("<!doctype")
    attachments = list(parsed.iter_attachments())
    expected_top = "multipart/mixed" if attachments else "multipart/alternative"
    assert parsed.get_content_type() == expected_top
    for part in attachments:
        assert part.get_filename(), part.get_content_type()
    for part in calendar_parts(parsed):
        check_calendar(part.get_content().encode(), method=part.get_param("method"))
    return parsed


def calendar_parts(message: EmailMessage) -> list[EmailMessage]:
    return [p for p in message.walk() if p.get_content_type() == "text/calendar"]


@dataclass(frozen=True)
class Entry:
    """One calendar entry as its ``.ics`` says it."""

    method: str
    uid: str
    sequence: int
    start: datetime
    calendar: Calendar


def check_calendar(data: bytes, *, method: str | None = None) -> Entry:
    """Assert RFC 5545 (and iTIP's method rules) on one ``.ics``; returns its entry."""
    assert data.endswith(b"\r\n"), "content lines end with CRLF (RFC 5545 §3.1)"
    for line in data.split(b"\r\n")[:-1]:
        assert len(line) <= 75, f"a line of {len(line)} octets: {line[:40]!r}…"
    calendar = Calendar.from_ical(data)
    for component in calendar.walk():
        assert not component.errors, (component.name, component.errors)
    assert calendar.name == "VCALENDAR"
    assert str(calendar["VERSION"]) == "2.0" and str(calendar.get("PRODID", ""))
    found = str(calendar.get("METHOD", ""))
    assert found in ITIP_REQUIRED, f"METHOD {found!r}"
    if method is not None:
        assert method.upper() == found, f"Content-Type method={method}, METHOD:{found}"
    (event,) = calendar.walk("VEVENT")
    for name in ("UID", "DTSTAMP", *ITIP_REQUIRED[found]):
        assert name in event, f"VEVENT without {name}"
    stamp = event.decoded("DTSTAMP")
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert re.search(rb"\r\nDTSTAMP:\d{8}T\d{6}Z\r\n", data), "DTSTAMP in UTC (RFC 5545 §3.8.7.2)"
    sequence = int(event.get("SEQUENCE", 0))
    assert 0 <= sequence < 2**31, sequence  # an INTEGER (RFC 5545 §3.3.8)
    zones = {str(tz["TZID"]): tz for tz in calendar.walk("VTIMEZONE")}
    for tz in zones.values():
        assert tz.walk("STANDARD") or tz.walk("DAYLIGHT"), tz["TZID"]
    for name in ("DTSTART", "DTEND"):
        if name in event:
            tzid = event[name].params.get("TZID")
            assert tzid is not None, f"{name} in floating time"  # a venue's local time
            assert tzid in zones, f"{name};TZID={tzid} without its VTIMEZONE"
    if "DTEND" in event:
        assert event.decoded("DTEND") >= event.decoded("DTSTART")
    if found == "CANCEL":
        assert str(event.get("STATUS", "")) == "CANCELLED"
    return Entry(found, str(event["UID"]), sequence, event.decoded("DTSTART"), calendar)


def entry_of(message: EmailMessage) -> Entry:
    """The calendar entry attached to ``message`` (there must be exactly one)."""
    (part,) = calendar_parts(message)
    return check_calendar(part.get_content().encode(), method=part.get_param("method"))


def decode_qr(png: bytes) -> str:
    """What a real scanner reads in a QR code image: zbarimg's raw output."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg is missing: run `make deps-zbar` (Debian's zbar-tools)"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticket.png"
        path.write_bytes(png)
        done = subprocess.run(
            [zbarimg, "--nodbus", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, f"zbarimg read no QR code ({done.returncode}): {done.stderr!r}"
    return done.stdout.decode().rstrip("\n")


def assert_ticket_scans(message: EmailMessage, ticket: str) -> None:
    """The PNG attached to ``message`` is a QR code that zbarimg reads as ``ticket``."""
    (png,) = [p for p in message.iter_attachments() if p.get_content_type() == "image/png"]
    assert decode_qr(png.get_content()) == ticket
