"""Registration domain: events catalogue, registrations, capacity. Pure: no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Annotated, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.contracts.registration import EventDetails, ParticipantContact
from shared.errors import DomainError  # the one error every service raises
from shared.patch import Patch
from shared.timeutil import EAT, utcnow

Cadre = Literal[
    "permanent_secretary",
    "accounting_officer",
    "director_or_head_of_ict",
    "ict_officer",
    "other_officer",
]
AccessibilityNeed = Literal["sign_language_interpreter", "braille", "wheelchair_access", "other"]
EventState = Literal["draft", "published", "closed", "cancelled"]
Language = Literal["sw", "en"]
RegistrationStatus = Literal["confirmed", "waitlisted", "pending_approval", "rejected", "cancelled"]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]

# Reference alphabet: no 0/O, 1/I/L, U (Crockford-like), easy to read aloud and type.
_REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def normalise_phone(raw: str) -> str:
    """E.164; Tanzanian numbers may be written 07…, 2557…, +255 7…"""
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and digits.startswith("255"):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, "TZ")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return info.normalized.lower()


def new_reference() -> str:
    """Short, readable, unguessable: ``MK-XXXXX-XXXXX`` (~49 bits)."""
    chars = "".join(secrets.choice(_REF_ALPHABET) for _ in range(10))
    return f"MK-{chars[:5]}-{chars[5:]}"


def new_manage_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TicketSigner:
    """The QR ticket: the registration id and a truncated HMAC of it, in base32.

    ``MK1`` + base32(16-byte UUID + 10-byte HMAC-SHA256) is 45 characters from QR
    code's alphanumeric set, so the code is version 3 (29×29 modules) at error level
    M: quick to scan from a phone screen at the door and cheap to render. The event
    is not in the ticket; the registration it names is bound to one event. An 80-bit
    tag is plenty for an online check that is rate limited per scanner.
    """

    PREFIX = "MK1"
    _MAC_BYTES = 10

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, raw_id: bytes) -> bytes:
        return hmac.new(self._secret, self.PREFIX.encode() + raw_id, hashlib.sha256).digest()[
            : self._MAC_BYTES
        ]

    def sign(self, registration_id: str) -> str:
        raw = uuid.UUID(registration_id).bytes
        return self.PREFIX + base64.b32encode(raw + self._mac(raw)).decode().rstrip("=")

    def verify(self, token: str) -> str | None:
        """The registration id a genuine ticket names, else None."""
        token = token.strip().upper()
        if not token.startswith(self.PREFIX):
            return None
        body = token[len(self.PREFIX) :]
        try:
            data = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:  # binascii.Error: not base32
            return None
        if len(data) != 16 + self._MAC_BYTES:
            return None
        raw, tag = data[:16], data[16:]
        if not hmac.compare_digest(self._mac(raw), tag):
            return None
        return str(uuid.UUID(bytes=raw))


# -- events catalogue ----------------------------------------------------------------


class EventSpec(BaseModel):
    """What an organiser sends to create an event."""

    model_config = ConfigDict(extra="forbid")

    id: Slug = Field(description="URL id chosen by the organiser, e.g. egov-2025")
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=32)]
    title_sw: Text
    title_en: Text
    description_sw: LongText = ""
    description_en: LongText = ""
    theme: LongText = ""
    venue: Text
    city: Text
    starts_at: datetime
    ends_at: datetime
    capacity: int = Field(ge=1, le=100_000)
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    requires_approval: bool = False
    admitted_cadres: list[Cadre] = Field(default_factory=list, max_length=5)
    state: EventState = "draft"

    @field_validator("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=EAT)  # a local time at the venue
        return v

    @model_validator(mode="after")
    def _order(self) -> EventSpec:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        if (
            self.registration_opens_at
            and self.registration_closes_at
            and self.registration_closes_at < self.registration_opens_at
        ):
            raise ValueError("registration_closes_at is before registration_opens_at")
        return self


def registration_window_open(event: dict, now: datetime) -> bool:
    opens, closes = event.get("registration_opens_at"), event.get("registration_closes_at")
    if opens and now < _dt(opens):
        return False
    if closes and now > _dt(closes):
        return False
    return True


def _dt(value: str | datetime) -> datetime:
    return (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(value.replace("Z", "+00:00"))
    )


def event_details(event: dict) -> EventDetails:
    return EventDetails(
        event_id=event["_id"],
        code=event["code"],
        title_sw=event["title_sw"],
        title_en=event["title_en"],
        venue=event["venue"],
        city=event["city"],
        starts_at=_dt(event["starts_at"]),
        ends_at=_dt(event["ends_at"]),
    )


def check_can_register(event: dict, cadre: str, now: datetime) -> None:
    """Raise a DomainError when this event does not take this registration now."""
    if event["state"] == "cancelled":
        raise DomainError("event_cancelled", "This event has been cancelled.")
    if event["state"] != "published":
        raise DomainError("registration_closed", "Registration for this event is not open.")
    if not registration_window_open(event, now):
        raise DomainError("registration_closed", "Registration for this event is not open now.")
    admitted = event.get("admitted_cadres") or []
    if admitted and cadre not in admitted:
        raise DomainError("cadre_not_admitted", "This event is not open to your cadre.")


# -- registering ---------------------------------------------------------------------


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: Literal[True] = Field(description="Consent to the processing of personal data")
    notice_version: Annotated[str, StringConstraints(max_length=32)] | None = None


class RegistrationRequest(BaseModel):
    """A participant's registration, as posted by a frontend."""

    model_config = ConfigDict(extra="forbid")

    full_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)
    ]
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)]
    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=24)]
    institution: Text
    position: Text
    cadre: Cadre
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)] | None = None
    accessibility_needs: list[AccessibilityNeed] = Field(default_factory=list, max_length=4)
    accessibility_other: Annotated[str, StringConstraints(max_length=200)] | None = None
    dietary_needs: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    ) = None
    language: Language = "sw"
    consent: Consent

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        return normalise_phone(v)

    def contact(self) -> ParticipantContact:
        return ParticipantContact(
            full_name=self.full_name,
            email=self.email,
            phone=self.phone,
            language=self.language,
            institution=self.institution,
            position=self.position,
        )


def new_registration_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return utcnow()


# -- organisers change events ----------------------------------------------------------

# Allowed state changes; a cancelled event stays cancelled (registrations were told).
_EVENT_TRANSITIONS: dict[str, set[str]] = {
    "draft": {"draft", "published", "cancelled"},
    "published": {"published", "closed", "cancelled"},
    "closed": {"closed", "published", "cancelled"},
    "cancelled": {"cancelled"},
}


class EventChange(Patch):
    """What an organiser may change on an event (every field optional; ``id`` is fixed)."""

    nullable = frozenset({"registration_opens_at", "registration_closes_at", "cancellation_reason"})

    code: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=32)] | None
    ) = None
    title_sw: Text | None = None
    title_en: Text | None = None
    description_sw: LongText | None = None
    description_en: LongText | None = None
    theme: LongText | None = None
    venue: Text | None = None
    city: Text | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    requires_approval: bool | None = None
    admitted_cadres: list[Cadre] | None = Field(default=None, max_length=5)
    state: EventState | None = None
    cancellation_reason: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=EAT)
        return v


def apply_event_change(event: dict, change: EventChange) -> dict:
    """The ``$set`` an event change makes, after checking it against the event as stored.

    Raises DomainError for a forbidden state change, a capacity below the confirmed
    seats, or dates out of order. Returns only the fields that really change.
    """
    given = change.model_dump(mode="json", exclude_unset=True, exclude={"cancellation_reason"})
    changes = {k: v for k, v in given.items() if event.get(k) != v}
    new_state = changes.get("state", event["state"])
    if new_state not in _EVENT_TRANSITIONS[event["state"]]:
        raise DomainError(
            "invalid_state_change", f"An event cannot go from {event['state']} to {new_state}."
        )
    capacity = changes.get("capacity", event["capacity"])
    if capacity < event.get("seats_taken", 0):
        raise DomainError(
            "capacity_below_confirmed",
            f"{event.get('seats_taken', 0)} participants are confirmed; "
            "cancel registrations before lowering the capacity below that.",
        )
    merged = {**event, **changes}
    if _dt(merged["ends_at"]) < _dt(merged["starts_at"]):
        raise DomainError("invalid_dates", "ends_at is before starts_at.")
    opens, closes = merged.get("registration_opens_at"), merged.get("registration_closes_at")
    if opens and closes and _dt(closes) < _dt(opens):
        raise DomainError(
            "invalid_dates", "registration_closes_at is before registration_opens_at."
        )
    return changes


# -- self-service --------------------------------------------------------------------

Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=24)]


class RegistrationChange(BaseModel):
    """What a participant may change on their own registration; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone | None = None
    position: Text | None = None
    accessibility_needs: list[AccessibilityNeed] | None = Field(default=None, max_length=4)
    accessibility_other: Annotated[str, StringConstraints(max_length=200)] | None = None
    dietary_needs: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    ) = None
    language: Language | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v) if v is not None else None

    @model_validator(mode="after")
    def _not_empty(self) -> RegistrationChange:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        for name in ("phone", "position", "language"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be removed")
        return self


# Fields of a registration that exist but a participant may not change themselves.
FIXED_FIELDS = frozenset(
    {"full_name", "email", "institution", "cadre", "region", "consent", "status", "reference"}
)


def changed_fields(registration: dict, change: RegistrationChange) -> dict:
    """The ``$set`` of a participant's change: only what really differs."""
    given = change.model_dump(mode="json", exclude_unset=True)
    return {k: v for k, v in given.items() if registration.get(k) != v}


def tokens_match(presented_hash: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; an unknown reference compares against a dummy hash."""
    return hmac.compare_digest(presented_hash, stored_hash or _DUMMY_HASH) and bool(stored_hash)


_DUMMY_HASH = hashlib.sha256(b"no such registration").hexdigest()


# -- check-in ------------------------------------------------------------------------


def local_day(moment: datetime) -> str:
    """The date at the venue (Africa/Dar_es_Salaam) of an instant: the check-in day."""
    return moment.astimezone(EAT).date().isoformat()


def check_can_check_in(registration: dict, event: dict, moment: datetime) -> str:
    """The day to record attendance for, or a DomainError saying why not."""
    if event["state"] == "cancelled":
        raise DomainError("event_cancelled", "This event has been cancelled.")
    if registration["status"] != "confirmed":
        raise DomainError(
            f"registration_{registration['status']}",
            f"This registration is {registration['status'].replace('_', ' ')}, not confirmed.",
        )
    day = local_day(moment)
    first, last = local_day(_dt(event["starts_at"])), local_day(_dt(event["ends_at"]))
    if not first <= day <= last:
        raise DomainError(
            "not_an_event_day", f"Check-in is open from {first} to {last} (venue time)."
        )
    previous = (registration.get("checkins") or {}).get(day)
    if previous:
        raise DomainError(
            "already_checked_in",
            f"Already checked in on {day} at {previous}.",
            details={"day": day, "checked_in_at": previous},
        )
    return day


# -- approval ------------------------------------------------------------------------


class Rejection(BaseModel):
    """Why an organiser rejects a nomination; the participant is told."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class Cancellation(Rejection):
    """Why an organiser cancels a registration; the participant is told."""


class CheckInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=400)]


# -- exports -------------------------------------------------------------------------

CSV_COLUMNS = (
    "reference",
    "status",
    "full_name",
    "email",
    "phone",
    "institution",
    "position",
    "cadre",
    "region",
    "accessibility_needs",
    "dietary_needs",
    "language",
    "waitlist_position",
    "checked_in_days",
    "created_at",
)


def csv_cell(value: object) -> str:
    """A safe CSV cell: lists joined, and formula-looking text neutralised (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    text = str(value)
    is_phone = text.startswith("+") and text[1:].isdigit()  # E.164 is data, not a formula
    if text and text[0] in "=+-@\t\r" and not is_phone:
        text = "'" + text
    return text


def csv_row(doc: dict) -> list[str]:
    """One registration as an export row, in ``CSV_COLUMNS`` order."""
    values = {**doc, "checked_in_days": sorted((doc.get("checkins") or {}).keys())}
    return [csv_cell(values.get(col)) for col in CSV_COLUMNS]
