"""Registration domain: events catalogue, registrations, capacity. Pure: no I/O.

``Event`` and ``Registration`` are the aggregates: their methods take the time as a
parameter, enforce the rules (raising ``DomainError``) and record the integration events
the change causes; the store saves the change and those events in one write.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import secrets
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import phonenumbers
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.aggregate import Aggregate
from shared.contracts.registration import (
    CertificateIssued,
    CertificateRevoked,
    EventCancelled,
    EventDetails,
    EventPublished,
    EventUpdated,
    ParticipantCheckedInV2,
    ParticipantContact,
    ParticipantProfile,
    ParticipantRegisteredV2,
    ParticipantWaitlistedV2,
    PersonalDataErased,
    RegistrationApprovedV2,
    RegistrationCancelledV2,
    RegistrationPaid,
    RegistrationRejectedV2,
    RegistrationUpdatedV2,
    WaitlistPromotedV2,
)
from shared.contracts.registration_notices import (
    CertificateIssuedNotice,
    ConfirmationResendRequestedNotice,
    EvaluationInvitedNotice,
    GroupBillRequested,
    InstitutionContactAddress,
    InstitutionContactErased,
    InstitutionSignInRequested,
    ParticipantCheckedInNotice,
    ParticipantRegisteredNotice,
    ParticipantWaitlistedNotice,
    RegistrationApprovedNotice,
    RegistrationCancelledNotice,
    RegistrationPaidNotice,
    RegistrationRejectedNotice,
    RegistrationUpdatedNotice,
    WaitlistPromotedNotice,
)
from shared.errors import DomainError  # the one error every service raises
from shared.patch import Patch
from shared.text import control_problem, plain_text, single_line_text, without_controls
from shared.timeutil import EAT, iso

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
# pending_payment (issue 14): a paid category's registration holding its seat until paid.
RegistrationStatus = Literal[
    "confirmed", "waitlisted", "pending_approval", "rejected", "cancelled", "pending_payment"
]

# Text fields refuse control characters (a NUL would reach the exports raw); whatever can
# reach an email header, a calendar entry or a CSV header is one line (shared.text).
Text = single_line_text(min_length=1, max_length=200)
LongText = plain_text(max_length=4000)
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


TICKET_KEY_PURPOSE = b"mkutano ticket ed25519 v1"


class TicketSigner:
    """The QR ticket: the registration id and its signature, in base32.

    New tickets are ``MK2`` + base32(16-byte UUID + 64-byte Ed25519 signature of
    ``MK2`` + the UUID): 131 characters from QR code's alphanumeric set (a version 6
    code at error level M, 41×41 modules). A registrar's phone verifies them with the
    public key alone (``public_key()``, published at ``GET /api/v1/tickets/public-key``),
    so the door keeps working when the hall's network does not. The Ed25519 key is
    derived from the ticket secret for that purpose alone.

    Tickets issued before (``MK1`` + base32(16-byte UUID + 10-byte HMAC-SHA256), 45
    characters) stay valid until their event ends: the server still verifies them with
    the secret. The event is in neither; the registration a ticket names is bound to one
    event.
    """

    PREFIX = "MK2"
    LENGTH = 131  # "MK2" + 128 base32 characters of the 80 bytes (no padding, no spare bits)
    HMAC_PREFIX = "MK1"
    HMAC_LENGTH = 45  # "MK1" + 42 base32 characters of the 26 bytes, unpadded
    _MAC_BYTES = 10
    _SIGNATURE_BYTES = 64

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._key = Ed25519PrivateKey.from_private_bytes(self.derive_key(TICKET_KEY_PURPOSE))
        self._public = self._key.public_key()

    def _mac(self, raw_id: bytes) -> bytes:
        return hmac.new(self._secret, self.HMAC_PREFIX.encode() + raw_id, hashlib.sha256).digest()[
            : self._MAC_BYTES
        ]

    @staticmethod
    def _encode(data: bytes) -> str:
        return base64.b32encode(data).decode().rstrip("=")

    def derive_key(self, purpose: bytes) -> bytes:
        """A key for another purpose, derived from the ticket secret (HMAC-SHA256)."""
        return hmac.new(self._secret, purpose, hashlib.sha256).digest()

    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key that verifies ``MK2`` tickets."""
        return self._public.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, registration_id: str) -> str:
        raw = uuid.UUID(registration_id).bytes
        signature = self._key.sign(self.PREFIX.encode() + raw)
        return self.PREFIX + self._encode(raw + signature)

    def sign_hmac(self, registration_id: str) -> str:
        """A ticket of the earlier kind (``MK1``): only for tests of its acceptance."""
        raw = uuid.UUID(registration_id).bytes
        return self.HMAC_PREFIX + self._encode(raw + self._mac(raw))

    def verify(self, token: str) -> str | None:
        """The registration id a genuine ticket names, else None.

        A ticket has exactly one valid spelling: the one ``sign`` gives (upper case, no
        padding). The decoded bytes are encoded again and must give back the very text
        presented (base32 of the 26 bytes of an ``MK1`` ticket leaves two bits of its last
        character unused); lower case (a QR code's alphanumeric mode has none) and ``=``
        padding are refused. Only the whitespace a scanner may add around it is ignored.
        """
        token = token.strip()
        if token.startswith(self.PREFIX) and len(token) == self.LENGTH:
            data = self._decode(token[len(self.PREFIX) :], 16 + self._SIGNATURE_BYTES)
            if data is None:
                return None
            raw, signature = data[:16], data[16:]
            try:
                self._public.verify(signature, self.PREFIX.encode() + raw)
            except InvalidSignature:
                return None
            return str(uuid.UUID(bytes=raw))
        if token.startswith(self.HMAC_PREFIX) and len(token) == self.HMAC_LENGTH:
            data = self._decode(token[len(self.HMAC_PREFIX) :], 16 + self._MAC_BYTES)
            if data is None:
                return None
            raw, tag = data[:16], data[16:]
            if not hmac.compare_digest(self._mac(raw), tag):
                return None
            return str(uuid.UUID(bytes=raw))
        return None

    def _decode(self, body: str, size: int) -> bytes | None:
        try:
            data = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:  # binascii.Error: not base32 (lower case included)
            return None
        if len(data) != size or self._encode(data) != body:
            return None
        return data


LINK_KEY_PURPOSE = b"mkutano self-service link v1"


class LinkSigner:
    """Self-service links: what an email carries to open one registration's page.

    ``base64url(16-byte registration id + 4-byte expiry in epoch seconds + 16-byte
    HMAC-SHA256 tag)``, 48 characters: bound to one registration and an expiry, with one
    valid spelling (the bytes are encoded again and compared, as tickets are). The key is
    derived from the ticket secret for this purpose only (see ``app.link_secret``), so a
    link is no ticket and a ticket no link. A tampered, expired or unknown link opens
    nothing, and the page cannot tell which.
    """

    _MAC_BYTES = 16
    _LENGTH = 48

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + data, hashlib.sha256).digest()

    @staticmethod
    def _encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def sign(self, registration_id: str, expires_at: datetime) -> str:
        body = uuid.UUID(registration_id).bytes + int(expires_at.timestamp()).to_bytes(4, "big")
        return self._encode(body + self._mac(b"link", body)[: self._MAC_BYTES])

    def verify(self, link: str, now: datetime) -> str | None:
        """The registration id a genuine, unexpired link names, else None."""
        if len(link) != self._LENGTH:
            return None
        try:
            data = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
        except ValueError:
            return None
        if len(data) != 36 or self._encode(data) != link:
            return None
        body, tag = data[:20], data[20:]
        if not hmac.compare_digest(self._mac(b"link", body)[: self._MAC_BYTES], tag):
            return None
        if int.from_bytes(body[16:], "big") <= now.timestamp():
            return None
        return str(uuid.UUID(bytes=body[:16]))

    def form_token(self, subject: str) -> str:
        """The token a page's forms carry (against cross-site requests), tied to
        ``subject``: the link the page was opened with."""
        return self._encode(self._mac(b"form", subject.encode())[:18])

    def form_token_matches(self, subject: str, token: str | None) -> bool:
        return hmac.compare_digest(self.form_token(subject).encode(), (token or "").encode())


# How long a self-service link opens its registration: until 30 days after the event
# ends (or after it is issued, when later): long enough to manage the registration, to
# download one's data after the event, and short of the retention erasure.
LINK_VALIDITY = timedelta(days=30)


def self_service_path(link: str) -> str:
    """The page a self-service link opens (the service's public base URL goes before)."""
    return f"/my/{link}"


def link_expiry(event_ends_at: datetime, now: datetime) -> datetime:
    """When a link issued now for an event that ends then stops opening its page."""
    return max(event_ends_at, now) + LINK_VALIDITY


def self_service_url(public_url: str, link: str) -> str:
    """The full address of a self-service page: the service's public base URL + path."""
    return public_url.rstrip("/") + self_service_path(link)


# -- participant categories and custom questions ---------------------------------------

CategoryCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
QuestionId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ChoiceCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")]
Via = Literal["self", "nomination", "walk_in", "import"]
VIAS: tuple[str, ...] = ("self", "nomination", "walk_in", "import")
QuestionType = Literal[
    "short_text", "long_text", "single_choice", "multiple_choice", "yes_no", "number", "date"
]
HelpText = plain_text(max_length=500)


class Category(BaseModel):
    """Who may come, on what terms: a participant category of one event (value object).

    ``quota`` reserves that many seats of the event's capacity for the category and caps
    it there: beyond it, its people wait for a seat of their category. ``fee_tzs`` is an
    integer amount of Tanzanian shillings (0 = free).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: CategoryCode
    name_sw: Text
    name_en: Text
    fee_tzs: int = Field(default=0, ge=0, le=100_000_000)
    quota: int | None = Field(default=None, ge=0, le=100_000)
    requires_approval: bool = False
    requires_nomination: bool = False

    def name(self, language: str) -> str:
        return self.name_sw if language == "sw" else self.name_en


# The five cadres that were hard-coded before categories were data: a new event's
# categories unless its organiser names others. Their codes are the old ``cadre`` values,
# so old clients that send ``cadre`` keep working for these events.
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(code="permanent_secretary", name_sw="Katibu Mkuu", name_en="Permanent Secretary"),
    Category(code="accounting_officer", name_sw="Afisa Masuuli", name_en="Accounting Officer"),
    Category(
        code="director_or_head_of_ict",
        name_sw="Mkurugenzi / Mkuu wa Idara au Kitengo cha TEHAMA",
        name_en="Director / Head of ICT department or unit",
    ),
    Category(code="ict_officer", name_sw="Afisa TEHAMA", name_en="ICT Officer"),
    Category(
        code="other_officer", name_sw="Afisa wa kada nyingine", name_en="Officer of another cadre"
    ),
)
CADRES: tuple[str, ...] = (
    "permanent_secretary",
    "accounting_officer",
    "director_or_head_of_ict",
    "ict_officer",
    "other_officer",
)


def legacy_cadre(category: str) -> str:
    """The old cadre a category stands for on the stream's ``cadre`` field: its own code
    when it is one of the five, else ``other_officer`` (the enumeration stays closed)."""
    return category if category in CADRES else "other_officer"


class Choice(BaseModel):
    """One option of a choice question; ``limit`` caps how many may pick it (places)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ChoiceCode
    label_sw: Text
    label_en: Text
    limit: int | None = Field(default=None, ge=0, le=100_000)

    def label(self, language: str) -> str:
        return self.label_sw if language == "sw" else self.label_en


_CHOICE_TYPES = ("single_choice", "multiple_choice")
_TEXT_LIMITS = {"short_text": 200, "long_text": 2000}
_YES = {"yes", "true", "ndiyo", "1", "on"}
_NO = {"no", "false", "hapana", "0", "off"}


class AnswerProblem(ValueError):
    """Why an answer is refused (the reason a 422 names beside ``answers.<id>``)."""


class Question(BaseModel):
    """A custom question of an event's registration form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: QuestionId
    type: QuestionType
    label_sw: Text
    label_en: Text
    help_sw: HelpText = ""
    help_en: HelpText = ""
    required: bool = False
    # Asked only of these categories (codes of the event); empty: of everyone.
    categories: list[CategoryCode] = Field(default_factory=list, max_length=50)
    choices: list[Choice] = Field(default_factory=list, max_length=50)
    max_choices: int | None = Field(default=None, ge=1, le=50)
    min_value: float | None = Field(default=None, allow_inf_nan=False, ge=-1e15, le=1e15)
    max_value: float | None = Field(default=None, allow_inf_nan=False, ge=-1e15, le=1e15)
    max_length: int | None = Field(default=None, ge=1, le=4000)

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.type in _CHOICE_TYPES:
            if not self.choices:
                raise ValueError(f"question {self.id}: a choice question needs choices")
            codes = [c.code for c in self.choices]
            if len(set(codes)) != len(codes):
                raise ValueError(f"question {self.id}: choice codes repeat")
        elif self.choices:
            raise ValueError(f"question {self.id}: only choice questions have choices")
        if self.max_choices is not None and self.type != "multiple_choice":
            raise ValueError(f"question {self.id}: max_choices is for multiple choice")
        if (self.min_value is not None or self.max_value is not None) and self.type != "number":
            raise ValueError(f"question {self.id}: min_value and max_value are for numbers")
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.max_value < self.min_value
        ):
            raise ValueError(f"question {self.id}: max_value is below min_value")
        if self.max_length is not None and self.type not in _TEXT_LIMITS:
            raise ValueError(f"question {self.id}: max_length is for text")
        return self

    def label(self, language: str) -> str:
        return self.label_sw if language == "sw" else self.label_en

    def help(self, language: str) -> str:
        return self.help_sw if language == "sw" else self.help_en

    def asks(self, category: str) -> bool:
        """Whether a participant of ``category`` sees this question."""
        return not self.categories or category in self.categories

    def choice(self, code: str) -> Choice | None:
        return next((c for c in self.choices if c.code == code), None)

    @property
    def limited_choices(self) -> dict[str, int]:
        return {c.code: c.limit for c in self.choices if c.limit is not None}

    def answer(self, value: Any) -> Any:
        """The answer as stored (None: not answered); raises ``AnswerProblem``."""
        if value is None:
            return None
        kind = self.type
        if kind in _TEXT_LIMITS:
            if not isinstance(value, str):
                raise AnswerProblem("must be text")
            text = value.strip().replace("\r\n", "\n").replace("\r", "\n")  # forms send CRLF
            reason = control_problem(text, single_line=kind == "short_text")
            if reason is not None:
                raise AnswerProblem(reason)
            limit = self.max_length or _TEXT_LIMITS[kind]
            if len(text) > limit:
                raise AnswerProblem(f"must be at most {limit} characters")
            return text or None
        if kind == "single_choice":
            if not isinstance(value, str):
                raise AnswerProblem("must be one of the choices' codes")
            if value == "":
                return None
            if self.choice(value) is None:
                raise AnswerProblem(f"{value!r} is not one of the choices")
            return value
        if kind == "multiple_choice":
            picked = [value] if isinstance(value, str) else value
            if not isinstance(picked, list) or not all(isinstance(v, str) for v in picked):
                raise AnswerProblem("must be a list of the choices' codes")
            picked = [v for v in picked if v]
            if len(set(picked)) != len(picked):
                raise AnswerProblem("a choice is picked twice")
            for code in picked:
                if self.choice(code) is None:
                    raise AnswerProblem(f"{code!r} is not one of the choices")
            if self.max_choices is not None and len(picked) > self.max_choices:
                raise AnswerProblem(f"at most {self.max_choices} choices")
            return [c.code for c in self.choices if c.code in picked] or None
        if kind == "yes_no":
            if not isinstance(value, bool):
                raise AnswerProblem("must be true or false")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AnswerProblem("must be a number")
            if isinstance(value, int) and abs(value) > 10**15:
                raise AnswerProblem("is too large")
            if value != value or value in (float("inf"), float("-inf")) or abs(value) > 1e15:
                raise AnswerProblem("must be a finite number of at most 15 digits")
            if self.min_value is not None and value < self.min_value:
                raise AnswerProblem(f"must be at least {_number(self.min_value)}")
            if self.max_value is not None and value > self.max_value:
                raise AnswerProblem(f"must be at most {_number(self.max_value)}")
            return int(value) if float(value).is_integer() and abs(value) < 2**53 else value
        # date
        if not isinstance(value, str):
            raise AnswerProblem("must be a date (YYYY-MM-DD)")
        if value == "":
            return None
        try:
            return date.fromisoformat(value).isoformat() if len(value) == 10 else _bad_date()
        except ValueError:
            raise AnswerProblem("must be a date (YYYY-MM-DD)") from None

    def answer_from_text(self, text: str | list[str]) -> Any:
        """An answer typed into a form or a CSV cell, as ``answer`` takes it."""
        if self.type == "multiple_choice":
            items = text if isinstance(text, list) else [p.strip() for p in text.split(";")]
            return self.answer([i for i in items if i])
        if isinstance(text, list):
            text = text[0] if text else ""
        raw = text.strip()
        if raw == "" and self.type != "long_text":
            return None
        if self.type == "yes_no":
            if raw.lower() in _YES:
                return True
            if raw.lower() in _NO:
                return False
            raise AnswerProblem("must be yes or no")
        if self.type == "number":
            try:
                number = float(raw.replace(",", ""))
            except ValueError:
                raise AnswerProblem("must be a number") from None
            return self.answer(number)
        return self.answer(text)


class AnswerTally:
    """Statistics of an event's answers: how many answered each question, and per
    choice (yes/no included) how many picked it; numbers' least, greatest and mean."""

    def __init__(self, questions: Sequence[Question]) -> None:
        self.questions = list(questions)
        self._answered = {q.id: 0 for q in self.questions}
        self._choices: dict[str, dict[str, int]] = {
            q.id: {c.code: 0 for c in q.choices} if q.type in _CHOICE_TYPES else {"yes": 0, "no": 0}
            for q in self.questions
            if q.type in _CHOICE_TYPES or q.type == "yes_no"
        }
        self._numbers: dict[str, list[float]] = {
            q.id: [] for q in self.questions if q.type == "number"
        }

    def add(self, answers: Mapping[str, Any]) -> None:
        for qid in self._answered:
            value = answers.get(qid)
            if value is None or value == [] or value == "":
                continue
            self._answered[qid] += 1
            if qid in self._choices:
                if isinstance(value, bool):
                    picked = ["yes" if value else "no"]
                else:
                    picked = value if isinstance(value, list) else [value]
                for code in picked:
                    if isinstance(code, str):
                        self._choices[qid][code] = self._choices[qid].get(code, 0) + 1
            if qid in self._numbers and isinstance(value, int | float):
                self._numbers[qid].append(float(value))

    def result(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for question in self.questions:
            entry: dict[str, Any] = {"type": question.type, "answered": self._answered[question.id]}
            if question.id in self._choices:
                entry["choices"] = self._choices[question.id]
            numbers = self._numbers.get(question.id)
            if numbers:
                entry.update(
                    min=min(numbers), max=max(numbers), mean=round(sum(numbers) / len(numbers), 2)
                )
            out[question.id] = entry
        return out


def _bad_date() -> str:
    raise ValueError("not a date")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_catalogue(
    categories: Sequence[Category], questions: Sequence[Question], capacity: int
) -> list[tuple[str, str]]:
    """What is wrong with an event's categories and questions: ``(field, reason)`` pairs."""
    problems: list[tuple[str, str]] = []
    codes = [c.code for c in categories]
    if not codes:
        problems.append(("categories", "an event needs at least one category"))
    if len(set(codes)) != len(codes):
        problems.append(("categories", "category codes repeat"))
    reserved = sum(c.quota or 0 for c in categories)
    if reserved > capacity:
        problems.append(
            ("categories", f"the quotas reserve {reserved} seats, above the capacity {capacity}")
        )
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        problems.append(("questions", "question ids repeat"))
    for question in questions:
        unknown = sorted(set(question.categories) - set(codes))
        if unknown:
            problems.append(
                (f"questions.{question.id}", f"asked of unknown categories: {', '.join(unknown)}")
            )
    return problems


# -- events catalogue ----------------------------------------------------------------


class EventSpec(BaseModel):
    """What an organiser sends to create an event."""

    model_config = ConfigDict(extra="forbid")

    id: Slug = Field(description="URL id chosen by the organiser, e.g. egov-2025")
    code: single_line_text(min_length=2, max_length=32)
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
    categories: list[Category] | None = Field(
        default=None,
        max_length=50,
        description="Participant categories; the five default cadres (free) when left out",
    )
    questions: list[Question] = Field(default_factory=list, max_length=50)
    # Payments (issue 14): how long the bill of a paid category runs, in days (7 when
    # left out); never past the event's start.
    payment_days: float | None = Field(default=None, gt=0, le=365)

    @field_validator("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=EAT)  # a local time at the venue
        return v

    @model_validator(mode="after")
    def _catalogue(self) -> EventSpec:
        categories = DEFAULT_CATEGORIES if self.categories is None else self.categories
        problems = check_catalogue(categories, self.questions, self.capacity)
        if problems:
            raise ValueError("; ".join(f"{name}: {reason}" for name, reason in problems))
        return self

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


def _dt(value: str | datetime) -> datetime:
    return (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(value.replace("Z", "+00:00"))
    )


# -- registering ---------------------------------------------------------------------


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: Literal[True] = Field(description="Consent to the processing of personal data")
    notice_version: Annotated[str, StringConstraints(max_length=32)] | None = None


class RegistrationRequest(BaseModel):
    """A participant's registration, as posted by a frontend."""

    model_config = ConfigDict(extra="forbid")

    full_name: single_line_text(min_length=2, max_length=120)
    email: single_line_text(max_length=254)
    phone: single_line_text(min_length=6, max_length=24)
    institution: Text
    position: Text
    category: CategoryCode = Field(
        description="A category code of the event (GET /events/{id}); old clients may send "
        "cadre instead, for the five default categories"
    )
    cadre: Cadre | None = Field(
        default=None,
        description="Deprecated: the category of the five default ones; use category",
    )
    answers: dict[QuestionId, Any] = Field(
        default_factory=dict,
        max_length=50,
        description="Answers to the event's questions, keyed by question id",
    )
    region: single_line_text(max_length=60) | None = None
    accessibility_needs: list[AccessibilityNeed] = Field(default_factory=list, max_length=4)
    accessibility_other: plain_text(max_length=200, strip=False) | None = None
    dietary_needs: plain_text(max_length=200) | None = None
    language: Language = "sw"
    consent: Consent
    # For the CPD export to a professional body (e.g. the ICT Commission), when given.
    professional_registration_number: single_line_text(max_length=64) | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        return normalise_phone(v)

    @model_validator(mode="before")
    @classmethod
    def _cadre_is_category(cls, data: Any) -> Any:
        # An old client names its cadre: that is the default category of the same code.
        if isinstance(data, dict) and data.get("category") is None and "cadre" in data:
            data = {**data, "category": data["cadre"]}
        return data

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

    code: single_line_text(min_length=2, max_length=32) | None = None
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
    # Each replaces the whole list (read the event, change the list, send it back).
    categories: list[Category] | None = Field(default=None, min_length=1, max_length=50)
    questions: list[Question] | None = Field(default=None, max_length=50)
    cancellation_reason: plain_text(max_length=500, strip=False) | None = None

    @field_validator("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=EAT)
        return v


# -- self-service --------------------------------------------------------------------

Phone = single_line_text(min_length=6, max_length=24)


class RegistrationChange(BaseModel):
    """What a participant may change on their own registration; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone | None = None
    position: Text | None = None
    accessibility_needs: list[AccessibilityNeed] | None = Field(default=None, max_length=4)
    accessibility_other: plain_text(max_length=200, strip=False) | None = None
    dietary_needs: plain_text(max_length=200) | None = None
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


def tokens_match(presented_hash: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; an unknown reference compares against a dummy hash."""
    return hmac.compare_digest(presented_hash, stored_hash or _DUMMY_HASH) and bool(stored_hash)


_DUMMY_HASH = hashlib.sha256(b"no such registration").hexdigest()


# -- check-in ------------------------------------------------------------------------


def local_day(moment: datetime) -> str:
    """The date at the venue (Africa/Dar_es_Salaam) of an instant: the check-in day."""
    return moment.astimezone(EAT).date().isoformat()


# -- approval ------------------------------------------------------------------------


class Rejection(BaseModel):
    """Why an organiser rejects a nomination; the participant is told."""

    model_config = ConfigDict(extra="forbid")

    reason: plain_text(min_length=3, max_length=500)


class Cancellation(Rejection):
    """Why an organiser cancels a registration; the participant is told."""


class CheckInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=400)]
    # An earlier day of the event (YYYY-MM-DD, venue time): attendance recorded late.
    day: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    # The event the registrar is at (the staff console sends it): a ticket of another
    # event is refused as ``wrong_event`` instead of checked in.
    event_id: str | None = Field(None, min_length=1, max_length=64)


# -- aggregates ------------------------------------------------------------------------

ACTIVE_STATUSES = ("confirmed", "waitlisted", "pending_approval", "pending_payment")
# Statuses that hold a seat (and a quota place): confirmed, and pending_payment until the
# bill is paid or expires (issue 14).
SEAT_HOLDING = ("confirmed", "pending_payment")
# How long a bill runs when the event says nothing (never past the event's start).
DEFAULT_PAYMENT_DAYS = 7


def payment_due_by(event: Event, now: datetime, days: float | None = None) -> datetime:
    """Until when a pending payment holds its seat: ``days`` (the event's
    ``payment_days``, else 7) from now, never past the event's start."""
    days = (
        days if days is not None else getattr(event, "payment_days", None) or DEFAULT_PAYMENT_DAYS
    )
    return min(now + timedelta(days=days), event.starts_at)


def seat_status(event: Event, category: str) -> str:
    """The status a registration that got a seat takes: pending_payment in a category
    with a fee (the seat is held until paid), else confirmed."""
    found = event.category(category)
    return "pending_payment" if found is not None and found.fee_tzs > 0 else "confirmed"


RESEND_INTERVAL = timedelta(minutes=10)


def _differs(old: object, new: object) -> bool:
    """A real change: a time written with another offset counts, as it did when stored."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return old != new or old.utcoffset() != new.utcoffset()
    return old != new


@dataclass(kw_only=True)
class Event(Aggregate):
    """An event of the catalogue (conference, seminar, training) and its seat counters.

    ``seats_taken`` and ``waitlist_seq`` are read here but moved only by the store's
    atomic counters (a conditional ``$inc``): they are never part of a save.
    """

    id: str
    code: str
    title_sw: str
    title_en: str
    description_sw: str = ""
    description_en: str = ""
    theme: str = ""
    venue: str
    city: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    requires_approval: bool = False
    admitted_cadres: list[str] = field(default_factory=list)
    state: str = "draft"
    categories: list[Category] = field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    # Payments (issue 14): the bill lifetime of a paid category (days; None: 7).
    payment_days: float | None = None
    questions: list[Question] = field(default_factory=list)
    seats_taken: int = 0
    waitlist_seq: int = 0
    # Counters moved only by the store's atomic updates, like seats_taken: confirmed
    # seats per category, and active registrations per limited choice (question, choice).
    category_taken: dict[str, int] = field(default_factory=dict)
    choice_taken: dict[str, dict[str, int]] = field(default_factory=dict)
    # Seats no newcomer of a category without a quota may take: those of such categories
    # taken, plus every quota whole (see ``committed_seats``). None: not counted yet.
    committed: int | None = None
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def create(cls, spec: EventSpec, now: datetime) -> Event:
        """A new event; a published one is announced on the stream."""
        stamp = iso(now)
        event = cls(
            id=spec.id,
            **spec.model_dump(exclude={"id", "categories", "questions"}),
            categories=list(DEFAULT_CATEGORIES if spec.categories is None else spec.categories),
            questions=list(spec.questions),
            created_at=stamp,
            updated_at=stamp,
        )
        if event.state == "published":
            event.record(EventPublished(**event._announcement()))
        return event

    @property
    def seats_left(self) -> int:
        return max(0, self.capacity - self.seats_taken)

    # -- categories, quotas and questions ------------------------------------------------

    def category(self, code: str) -> Category | None:
        """The event's category of this code, or None."""
        return next((c for c in self.categories if c.code == code), None)

    def require_category(self, code: str) -> Category:
        """The event's category of this code; ``unknown_category`` (422) if it has none."""
        found = self.category(code)
        if found is None:
            raise DomainError(
                "unknown_category",
                f"This event has no category {code!r}.",
                field="category",
                details={"categories": [c.code for c in self.categories]},
            )
        return found

    @property
    def quotas(self) -> dict[str, int]:
        """The categories' quotas by code (categories without one are left out)."""
        return {c.code: c.quota for c in self.categories if c.quota is not None}

    def _reserved_free(self, quotas: Mapping[str, int] | None = None) -> int:
        """Seats reserved by quotas and not yet taken by their categories."""
        quotas = self.quotas if quotas is None else quotas
        return sum(max(0, q - self.category_taken.get(c, 0)) for c, q in quotas.items())

    def category_seats_left(self, code: str) -> int:
        """Seats a new participant of this category could take now."""
        quota = self.quotas.get(code)
        if quota is not None:
            return max(0, min(quota - self.category_taken.get(code, 0), self.seats_left))
        return max(0, self.capacity - self.seats_taken - self._reserved_free())

    @property
    def choice_limits(self) -> dict[str, dict[str, int]]:
        """The limited choices' limits: question id -> choice code -> places."""
        return {q.id: q.limited_choices for q in self.questions if q.limited_choices}

    def choice_places_left(self, question_id: str, choice: str) -> int | None:
        """Places left on a limited choice (None: unlimited)."""
        limit = self.choice_limits.get(question_id, {}).get(choice)
        if limit is None:
            return None
        return max(0, limit - self.choice_taken.get(question_id, {}).get(choice, 0))

    def questions_for(self, category: str) -> list[Question]:
        """The questions a participant of this category is asked, in order."""
        return [q for q in self.questions if q.asks(category)]

    def check_answers(
        self, category: str, answers: Mapping[str, Any], *, typed: bool = False
    ) -> dict[str, Any]:
        """The answers as stored (normalised, unanswered left out), or
        ``invalid_answers`` (422) naming every ``answers.<question id>`` at fault.

        ``typed`` answers come from a form or a CSV file: text to be read as each
        question's type (yes/no, numbers, choices separated by ``;``).
        """
        questions = {q.id: q for q in self.questions}
        problems: list[dict[str, str]] = []
        stored: dict[str, Any] = {}
        for qid in answers:
            if qid not in questions:
                problems.append({"field": f"answers.{qid}", "reason": "no such question"})
        for question in self.questions:
            raw = answers.get(question.id)
            try:
                if typed and raw is not None:
                    value = question.answer_from_text(raw)
                else:
                    value = question.answer(raw)
            except AnswerProblem as exc:
                problems.append({"field": f"answers.{question.id}", "reason": str(exc)})
                continue
            if not question.asks(category):
                if value is not None:
                    problems.append(
                        {"field": f"answers.{question.id}", "reason": "not asked of this category"}
                    )
                continue
            if value is None:
                if question.required:
                    problems.append({"field": f"answers.{question.id}", "reason": "required"})
                continue
            stored[question.id] = value
        if problems:
            first = problems[0]
            raise DomainError(
                "invalid_answers",
                f"{first['field']}: {first['reason']}",
                field=first["field"],
                details={"fields": problems},
            )
        return stored

    def limited_picks(self, answers: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The (question id, choice) pairs of these answers whose choice has a limit."""
        limits = self.choice_limits
        picks: list[tuple[str, str]] = []
        for qid, value in answers.items():
            for code in value if isinstance(value, list) else [value]:
                if isinstance(code, str) and code in limits.get(qid, {}):
                    picks.append((qid, code))
        return picks

    def needs_approval(self, category: Category) -> bool:
        return self.requires_approval or category.requires_approval

    def committed_seats(self, categories: Sequence[Category] | None = None) -> int:
        """The seats taken by categories without a quota plus every quota whole: a
        category without a quota may take a seat while this is below the capacity, so
        the seats the quotas reserve stay theirs (a quota's own seats are within it)."""
        total = 0
        for category in self.categories if categories is None else categories:
            taken = self.category_taken.get(category.code, 0)
            total += taken if category.quota is None else max(category.quota, taken)
        return total

    def counters(self) -> dict[str, int]:
        """The atomic counters as read, by their dotted path in the store."""
        counts = {"seats_taken": self.seats_taken}
        if self.committed is not None:
            counts["committed"] = self.committed
        counts.update({f"category_taken.{c}": n for c, n in self.category_taken.items()})
        for qid, picks in self.choice_taken.items():
            counts.update({f"choice_taken.{qid}.{c}": n for c, n in picks.items()})
        return counts

    def details(self) -> EventDetails:
        return EventDetails(
            event_id=self.id,
            code=self.code,
            title_sw=self.title_sw,
            title_en=self.title_en,
            venue=self.venue,
            city=self.city,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
        )

    def registration_window_open(self, now: datetime) -> bool:
        if self.registration_opens_at and now < self.registration_opens_at:
            return False
        if self.registration_closes_at and now > self.registration_closes_at:
            return False
        return True

    def registration_refusal(self, now: datetime) -> DomainError | None:
        """Why this event takes no registration at ``now`` (None when it does).

        An event that has ended is never open, whatever its window says; nor is one whose
        window has closed or not opened yet, nor a draft, a closed or a cancelled one.
        """
        if self.state == "cancelled":
            return DomainError("event_cancelled", "This event has been cancelled.")
        if self.ends_at < now:
            return DomainError("event_ended", "This event has ended.")
        if self.state != "published":
            return DomainError("registration_closed", "Registration for this event is not open.")
        if self.registration_closes_at and now > self.registration_closes_at:
            return DomainError("registration_closed", "Registration for this event has closed.")
        if not self.registration_window_open(now):
            return DomainError(
                "registration_closed",
                "Registration for this event is not open yet.",
                details={"opens_at": self.registration_opens_at.isoformat()}
                if self.registration_opens_at
                else None,
            )
        return None

    def registration_open(self, now: datetime) -> bool:
        return self.registration_refusal(now) is None

    def check_can_register(self, category: str, now: datetime, *, via: str = "self") -> Category:
        """The category a registration names, or a DomainError when this event does not
        take it now: outside its window (a walk-in: outside its days), an unknown
        category, or one that needs a nomination when the person registers themselves."""
        if via == "walk_in":
            self.check_walk_in(now)
        elif via == "import":  # an organiser's import: whatever the window says
            self.check_not_cancelled()
            if self.ends_at < now:
                raise DomainError("event_ended", "This event has ended.")
        else:
            refusal = self.registration_refusal(now)
            if refusal is not None:
                raise refusal
        found = self.require_category(category)
        if self.admitted_cadres and category not in self.admitted_cadres:
            raise DomainError("cadre_not_admitted", "This event is not open to your cadre.")
        if found.requires_nomination and via == "self":
            raise DomainError(
                "nomination_required",
                "Participants of this category are nominated by their institution; "
                "ask your institution's contact person to nominate you.",
                field="category",
            )
        return found

    def check_walk_in(self, now: datetime) -> None:
        """A walk-in is taken at the door: on one of the event's days, whatever the
        registration window says, unless the event is cancelled or still a draft."""
        self.check_not_cancelled()
        if self.state == "draft":
            raise DomainError("registration_closed", "This event is not published.")
        self.check_in_day(now)

    def check_not_cancelled(self) -> None:
        if self.state == "cancelled":
            raise DomainError("event_cancelled", "This event has been cancelled.")

    def ended_before(self, moment: datetime) -> bool:
        return self.ends_at < moment

    def check_in_day(self, now: datetime, day: str | None = None) -> str:
        """Today at the venue (or an earlier ``day``), if it is one of the event's days."""
        today = local_day(now)
        if day is not None and day > today:
            raise DomainError("future_day", f"{day} has not come yet.", field="day")
        day = day or today
        first, last = local_day(self.starts_at), local_day(self.ends_at)
        if not first <= day <= last:
            raise DomainError(
                "not_an_event_day", f"Check-in is open from {first} to {last} (venue time)."
            )
        return day

    def check_event_day(self, day: str) -> str:
        """``day`` (YYYY-MM-DD) if it is one of the event's days (venue time)."""
        first, last = local_day(self.starts_at), local_day(self.ends_at)
        if not first <= day <= last:
            raise DomainError(
                "not_an_event_day",
                f"The event's days are {first} to {last} (venue time).",
                field="day",
            )
        return day

    def change(
        self, change: EventChange, now: datetime, *, in_use: Mapping[str, int] | None = None
    ) -> list[str]:
        """Apply an organiser's change; returns the fields that really changed (sorted).

        Raises DomainError for a forbidden state change, a capacity below the confirmed
        seats, dates out of order, or categories and questions that do not fit (see
        ``_check_catalogue_change``; ``in_use`` counts the active registrations of each
        category). Publishing, cancelling or any other change is recorded
        (``EventPublished``, ``EventCancelled``, ``EventUpdated``).
        """
        given = change.model_dump(
            exclude_unset=True, exclude={"cancellation_reason", "categories", "questions"}
        )
        for name in ("categories", "questions"):
            if name in change.model_fields_set and getattr(change, name) is not None:
                given[name] = list(getattr(change, name))
        changes = {k: v for k, v in given.items() if _differs(getattr(self, k), v)}
        new_state = changes.get("state", self.state)
        if new_state not in _EVENT_TRANSITIONS[self.state]:
            raise DomainError(
                "invalid_state_change", f"An event cannot go from {self.state} to {new_state}."
            )
        capacity = changes.get("capacity", self.capacity)
        if capacity < self.seats_taken:
            raise DomainError(
                "capacity_below_confirmed",
                f"{self.seats_taken} participants are confirmed; "
                "cancel registrations before lowering the capacity below that.",
            )
        starts = changes.get("starts_at", self.starts_at)
        ends = changes.get("ends_at", self.ends_at)
        if ends < starts:
            raise DomainError("invalid_dates", "ends_at is before starts_at.")
        opens = changes.get("registration_opens_at", self.registration_opens_at)
        closes = changes.get("registration_closes_at", self.registration_closes_at)
        if opens and closes and closes < opens:
            raise DomainError(
                "invalid_dates", "registration_closes_at is before registration_opens_at."
            )
        self._check_catalogue_change(
            changes.get("categories", self.categories),
            changes.get("questions", self.questions),
            capacity,
            in_use or {},
        )
        if not changes:
            return []
        for name, value in changes.items():
            setattr(self, name, value)
        self.updated_at = iso(now)
        common = self._announcement()
        if "state" in changes and self.state == "published":
            self.record(EventPublished(**common))
        elif "state" in changes and self.state == "cancelled":
            self.record(EventCancelled(**common, reason=change.cancellation_reason))
        else:
            self.record(EventUpdated(**common, changed_fields=sorted(changes)))
        return sorted(changes)

    def _check_catalogue_change(
        self,
        categories: list[Category],
        questions: list[Question],
        capacity: int,
        in_use: Mapping[str, int],
    ) -> None:
        """The categories and questions an event would have must fit what it holds: no
        category with active registrations removed, no quota below its confirmed seats,
        the seats taken plus those still reserved within the capacity, no choice's limit
        below the places taken."""
        problems = check_catalogue(categories, questions, capacity)
        if problems:
            name, reason = problems[0]
            raise DomainError("invalid_categories", reason, field=name)
        kept = {c.code for c in categories}
        for code, count in sorted(in_use.items()):
            if count and code not in kept:
                raise DomainError(
                    "category_in_use",
                    f"{count} active registrations are in category {code}; it cannot be removed.",
                    field="categories",
                )
        quotas = {c.code: c.quota for c in categories if c.quota is not None}
        for code, quota in quotas.items():
            taken = self.category_taken.get(code, 0)
            if quota < taken:
                raise DomainError(
                    "quota_below_confirmed",
                    f"{taken} participants of {code} are confirmed; its quota cannot be lower.",
                    field="categories",
                )
        if self.seats_taken + self._reserved_free(quotas) > capacity:
            raise DomainError(
                "capacity_below_reserved",
                "The seats taken and those the quotas still reserve exceed the capacity.",
                field="capacity",
            )
        for question in questions:
            for code, limit in question.limited_choices.items():
                taken = self.choice_taken.get(question.id, {}).get(code, 0)
                if limit < taken:
                    raise DomainError(
                        "choice_limit_below_taken",
                        f"{taken} participants chose {code}; its limit cannot be lower.",
                        field=f"questions.{question.id}",
                    )

    def _announcement(self) -> dict:
        return {
            "event_id": self.id,
            "event": self.details(),
            "capacity": self.capacity,
            "state": self.state,
        }


# -- a registration's status history (issue 15) ---------------------------------------------
# Every status change, as organisers read it: when, which step, from → to, who, why.
# ``by``: ``staff:<user>`` (a console user), ``participant``, ``institution:<code>``,
# ``system``, or the API key's id; no personal data beyond what the registration holds.

HISTORY_ACTIONS = (
    "created",
    "waitlisted",
    "promoted",
    "approved",
    "rejected",
    "cancelled",
    "withdrawn",
    "replaced",
    "paid",
    "expired_unpaid",
    "checked_in",
    "walk_in",
)


def actor_of(principal_id: str | None, fallback: str = "system") -> str:
    """Who, as the history says it: a console user's token (``jwt:staff:amina``) is
    ``staff:amina``; other callers keep their id."""
    if not principal_id:
        return fallback
    return principal_id.removeprefix("jwt:")


def _via_actor(via: str, institution_code: str | None) -> str:
    if via == "nomination" and institution_code:
        return f"institution:{institution_code}"
    return "participant" if via == "self" else "staff"


@dataclass(kw_only=True)
class Registration(Aggregate):
    """One participant's registration for one event, from registering to erasure."""

    id: str
    reference: str
    event_id: str
    status: str
    waitlist_position: int | None = None
    full_name: str
    email: str
    phone: str
    institution: str
    position: str | None = None
    cadre: str
    # The event's category code (the cadre, for registrations made before categories),
    # the answers to its questions, how the registration came (self, nomination, walk_in,
    # import) and the nominating institution's code (None when self-registered).
    category: str = ""
    answers: dict[str, Any] = field(default_factory=dict)
    via: str = "self"
    institution_code: str | None = None
    region: str | None = None
    accessibility_needs: list[str] = field(default_factory=list)
    accessibility_other: str | None = None
    dietary_needs: str | None = None
    language: str = "sw"
    consent: dict = field(default_factory=dict)
    manage_token_hash: str | None = None
    # Lets a retried request whose first attempt was cut off find what it created.
    idempotency_key: str | None = None
    checkins: dict[str, str] = field(default_factory=dict)
    created_at: str
    # Microseconds since the epoch: the sort and paging key of organisers' lists.
    created_us: int = 0
    updated_at: str
    promoted_at: str | None = None
    approved_at: str | None = None
    approved_by: str | None = None
    rejected_at: str | None = None
    rejected_by: str | None = None
    rejection_reason: str | None = None
    cancelled_at: str | None = None
    cancelled_by: str | None = None
    erased_at: str | None = None
    erasure_reason: str | None = None
    # The last confirmation resent on request: resends are spaced by RESEND_INTERVAL.
    resend_requested_at: str | None = None
    professional_registration_number: str | None = None
    # Payments (issue 14): while pending_payment, what is due and until when; the bill
    # as payments.v1 tells it (bill_id, control_number, amount_tzs, paid_total_tzs,
    # outstanding_tzs, expires_at, status).
    amount_due_tzs: int | None = None
    payment_due_by: str | None = None
    payment: dict[str, Any] = field(default_factory=dict)
    cancellation_cause: str | None = None
    # Every status change (``HISTORY_ACTIONS``), oldest first: at, action, from, to, by,
    # reason, day. Rewritten whole with the change it records (no $push).
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def register(
        cls,
        *,
        registration_id: str,
        reference: str,
        event: Event,
        request: RegistrationRequest,
        status: str,
        waitlist_position: int | None,
        manage_token_hash: str,
        notice_version: str,
        signer: TicketSigner,
        now: datetime,
        idempotency_key: str | None = None,
        answers: Mapping[str, Any] | None = None,
        via: str = "self",
        institution_code: str | None = None,
        by: str | None = None,
    ) -> Registration:
        """A new registration with ``status`` (confirmed, waitlisted, pending approval),
        as the seat counter decided; it records ``ParticipantRegistered`` (and
        ``ParticipantWaitlisted`` with the place in line), each with its notice.

        ``answers`` are the checked answers (``Event.check_answers``); ``via`` says how
        it came, ``institution_code`` who nominated the participant and ``by`` the staff
        member who registered them (a walk-in, an import)."""
        stamp = iso(now)
        category = request.category
        registration = cls(
            id=registration_id,
            reference=reference,
            event_id=event.id,
            status=status,
            waitlist_position=waitlist_position,
            full_name=request.full_name,
            email=request.email,
            phone=request.phone,
            institution=request.institution,
            position=request.position,
            cadre=legacy_cadre(category),
            category=category,
            answers=dict(answers or {}),
            via=via,
            institution_code=institution_code,
            region=request.region,
            accessibility_needs=list(request.accessibility_needs),
            accessibility_other=request.accessibility_other,
            dietary_needs=request.dietary_needs,
            language=request.language,
            consent={
                "accepted": True,
                "given_at": stamp,
                "notice_version": request.consent.notice_version or notice_version,
                "purpose": "registration and communication for this event",
            },
            manage_token_hash=manage_token_hash,
            idempotency_key=idempotency_key,
            professional_registration_number=request.professional_registration_number,
            checkins={},
            created_at=stamp,
            created_us=int(now.timestamp() * 1_000_000),
            updated_at=stamp,
        )
        creator = by if by and via in ("walk_in", "import") else _via_actor(via, institution_code)
        registration._note("created", None, status, creator, now)
        due = registration._hold_for_payment(event, status, now)
        registration.record(
            ParticipantRegisteredV2(
                **registration._public(event, status),
                registered_at=now,
                waitlist_position=waitlist_position,
            )
        )
        registration.record(
            ParticipantRegisteredNotice(
                **registration._notice(event, status, signer),
                cadre=registration.cadre,
                waitlist_position=waitlist_position,
                **due,
            )
        )
        if status == "waitlisted" and waitlist_position is not None:
            registration._record_waitlisted(event, waitlist_position, signer, now)
        return registration

    # -- the status history --------------------------------------------------------

    def _note(
        self,
        action: str,
        previous: str | None,
        status: str,
        by: str,
        now: datetime,
        *,
        reason: str | None = None,
        day: str | None = None,
    ) -> None:
        """One entry more in the history (the whole list rewritten: no $push)."""
        entry: dict[str, Any] = {
            "at": iso(now),
            "action": action,
            "from": previous,
            "to": status,
            "by": by,
        }
        if reason:
            entry["reason"] = reason
        if day:
            entry["day"] = day
        self.history = [*self.history, entry]

    def history_view(self) -> list[dict[str, Any]]:
        """The history, oldest first; for a registration made before it was kept, what
        its times tell (created, approved, rejected, promoted, cancelled, check-ins)."""
        if self.history:
            return [dict(e) for e in self.history]
        told: list[dict[str, Any]] = [
            {"at": self.created_at, "action": "created", "from": None, "to": None, "by": None}
        ]
        for at, action, status, by in (
            (self.approved_at, "approved", None, self.approved_by),
            (self.rejected_at, "rejected", "rejected", self.rejected_by),
            (self.promoted_at, "promoted", None, "system"),
            (self.cancelled_at, "cancelled", "cancelled", self.cancelled_by),
        ):
            if at:
                told.append(
                    {"at": at, "action": action, "from": None, "to": status, "by": actor_of(by)}
                )
        for day, at in self.checkins.items():
            told.append(
                {"at": at, "action": "checked_in", "from": None, "to": None, "by": None, "day": day}
            )
        return sorted(told, key=lambda e: e["at"])

    # -- reading ---------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def contact(self) -> ParticipantContact:
        """The participant's contact details as the events carry them."""
        return ParticipantContact(
            full_name=self.full_name,
            email=self.email,
            phone=self.phone,
            language=self.language,  # type: ignore[arg-type]
            institution=self.institution,
            position=self.position,
        )

    def ticket(self, signer: TicketSigner) -> str | None:
        """The QR ticket, for a confirmed registration only."""
        return signer.sign(self.id) if self.status == "confirmed" else None

    def self_service_link(
        self, links: LinkSigner, event: Event, now: datetime, valid_for: timedelta | None = None
    ) -> str:
        """A link that opens this registration's self-service page (``/my/{link}``), until
        ``LINK_VALIDITY`` after the event ends (or after now), or for ``valid_for``."""
        if valid_for is not None:
            expires = now + valid_for
        else:
            expires = link_expiry(event.ends_at, now)
        return links.sign(self.id, expires)

    def link_notices(self, links: LinkSigner, public_url: str, now: datetime) -> None:
        """Put the participant's self-service link (``public_url`` + ``/my/{link}``) in
        every notice recorded and not yet saved: each message to them carries it. The
        link expires ``LINK_VALIDITY`` after the event of the notice ends."""
        self.events = [
            e.model_copy(
                update={
                    "self_service_url": self_service_url(
                        public_url, links.sign(self.id, link_expiry(e.event.ends_at, now))
                    )
                }
            )
            if "self_service_url" in type(e).model_fields and e.self_service_url is None
            else e
            for e in self.events
        ]

    def token_matches(self, token: str) -> bool:
        return tokens_match(hash_token(token or ""), self.manage_token_hash)

    def profile(self) -> ParticipantProfile:
        """What the public stream says about the participant (no name, no contact)."""
        return ParticipantProfile(
            institution=self.institution,
            cadre=self.cadre,
            language=self.language,  # type: ignore[arg-type]
            category=self.category or self.cadre,
            institution_code=self.institution_code,
        )

    def _public(self, event: Event, status: str) -> dict:
        """The fields of a public event (registration.v1): no secret, no contact."""
        return {
            "registration_id": self.id,
            "reference": self.reference,
            "event": event.details(),
            "participant": self.profile(),
            "status": status,
        }

    def _notice(self, event: Event, status: str, signer: TicketSigner | None = None) -> dict:
        """The fields of a notice (registration.notices.v1, read by notification only):
        the contact details and, while confirmed, the ticket."""
        return {
            "registration_id": self.id,
            "reference": self.reference,
            "event": event.details(),
            "participant": self.contact(),
            "status": status,
            "ticket": self.ticket(signer) if signer is not None else None,
            "category": self.category or self.cadre,
            "institution_code": self.institution_code,
        }

    def _record_waitlisted(
        self, event: Event, position: int, signer: TicketSigner, now: datetime
    ) -> None:
        self.record(
            ParticipantWaitlistedV2(
                **self._public(event, "waitlisted"), waitlist_position=position, waitlisted_at=now
            )
        )
        self.record(
            ParticipantWaitlistedNotice(
                **self._notice(event, "waitlisted", signer), waitlist_position=position
            )
        )

    def _check_not_closed(self, verb: str = "already") -> None:
        if self.status in ("cancelled", "rejected"):
            if verb == "already":
                message = f"This registration is already {self.status}."
            else:
                message = f"This registration is {self.status} and cannot be changed."
            raise DomainError(f"registration_{self.status}", message)

    # -- deciding ----------------------------------------------------------------------

    def promote(self, event: Event, signer: TicketSigner, now: datetime) -> None:
        """A seat freed up: the waitlisted participant is confirmed (with a ticket)."""
        if self.status != "waitlisted":
            raise DomainError("not_waitlisted", f"This registration is {self.status}.")
        status = seat_status(event, self.category)
        self._note("promoted", self.status, status, "system", now)
        self.status = status
        self.waitlist_position = None
        self.promoted_at = self.updated_at = iso(now)
        due = self._hold_for_payment(event, status, now)
        self.record(WaitlistPromotedV2(**self._public(event, status), promoted_at=now))
        self.record(WaitlistPromotedNotice(**self._notice(event, status, signer), **due))

    def cancel(
        self,
        event: Event,
        *,
        by: str,
        reason: str | None,
        now: datetime,
        cause: str | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> str:
        """Cancel; returns the status it had (a confirmed or pending_payment one frees a
        seat). ``cause`` ``unpaid``: its bill expired unpaid. ``actor`` and ``action``
        are what the history says (default: ``by``, ``cancelled``)."""
        self._check_not_closed()
        previous = self.status
        if cause == "unpaid":
            action, actor = action or "expired_unpaid", actor or "system"
        self._note(action or "cancelled", previous, "cancelled", actor or by, now, reason=reason)
        self.status = "cancelled"
        self.waitlist_position = None
        self.cancelled_at = self.updated_at = iso(now)
        self.cancelled_by = by
        self.cancellation_cause = cause
        self.record(
            RegistrationCancelledV2(
                **self._public(event, "cancelled"),
                cancelled_at=now,
                cancelled_by=by,  # type: ignore[arg-type]
                cause=cause,  # type: ignore[arg-type]
            )
        )
        self.record(
            RegistrationCancelledNotice(
                **self._notice(event, "cancelled"),
                cancelled_at=now,
                cancelled_by=by,  # type: ignore[arg-type]
                reason=reason,
                cause=cause,  # type: ignore[arg-type]
            )
        )
        return previous

    # -- payments (issue 14) -----------------------------------------------------------

    def _hold_for_payment(self, event: Event, status: str, now: datetime) -> dict[str, Any]:
        """For pending_payment: the fee due and until when (the notice carries both)."""
        if status != "pending_payment":
            return {}
        category = event.category(self.category)
        due_by = payment_due_by(event, now)
        self.amount_due_tzs = category.fee_tzs if category else None
        self.payment_due_by = iso(due_by)
        return {"amount_due_tzs": self.amount_due_tzs, "payment_due_by": due_by}

    def note_bill(self, **bill: Any) -> bool:
        """What payments.v1 says of this registration's bill (for the /my page). A bill
        replaced by another (a group bill) may be told cancelled after its successor was
        noted (payments.v1 is keyed by bill, so across partitions): that is not this
        registration's bill any more, and changes nothing."""
        current = self.payment.get("bill_id")
        if (
            current
            and bill.get("bill_id") not in (None, current)
            and (bill.get("status") == "cancelled")
        ):
            return False
        merged = {**self.payment, **{k: v for k, v in bill.items() if v is not None}}
        if merged == self.payment:
            return False
        self.payment = merged
        return True

    def mark_paid(self, event: Event, signer: TicketSigner, *, bill_id: str, now: datetime) -> bool:
        """The bill was paid: pending_payment → confirmed, with the ticket. False if the
        registration is not waiting for payment (a re-delivered BillPaid)."""
        if self.status != "pending_payment":
            return False
        self._note("paid", self.status, "confirmed", "system", now)
        self.status = "confirmed"
        self.updated_at = iso(now)
        self.payment = {**self.payment, "status": "paid"}
        self.record(
            RegistrationPaid(**self._public(event, "confirmed"), bill_id=bill_id, paid_at=now)
        )
        self.record(
            RegistrationPaidNotice(**self._notice(event, "confirmed", signer), bill_id=bill_id)
        )
        return True

    def check_approvable(self, event: Event) -> None:
        if self.status != "pending_approval":
            raise DomainError(
                "not_pending_approval", f"This registration is {self.status}, not pending."
            )
        event.check_not_cancelled()

    def approve(
        self,
        event: Event,
        *,
        by: str,
        seat: bool,
        waitlist_position: int | None,
        signer: TicketSigner,
        now: datetime,
    ) -> None:
        """Approve a nomination: confirmed with the seat taken, else waitlisted in line."""
        self.check_approvable(event)
        status = seat_status(event, self.category) if seat else "waitlisted"
        position = None if seat else waitlist_position
        due = self._hold_for_payment(event, status, now)
        self._note("approved", self.status, status, actor_of(by), now)
        self.status = status
        self.waitlist_position = position
        self.approved_at = self.updated_at = iso(now)
        self.approved_by = by
        self.record(
            RegistrationApprovedV2(
                **self._public(event, status), approved_at=now, waitlist_position=position
            )
        )
        self.record(
            RegistrationApprovedNotice(
                **self._notice(event, status, signer), waitlist_position=position, **due
            )
        )
        if position is not None:
            self._record_waitlisted(event, position, signer, now)

    def reject(self, event: Event, *, by: str, reason: str, now: datetime) -> None:
        """Reject a nomination, with a reason the participant is told."""
        if self.status != "pending_approval":
            raise DomainError(
                "not_pending_approval", f"This registration is {self.status}, not pending."
            )
        self._note("rejected", self.status, "rejected", actor_of(by), now, reason=reason)
        self.status = "rejected"
        self.rejected_at = self.updated_at = iso(now)
        self.rejected_by = by
        self.rejection_reason = reason
        self.record(RegistrationRejectedV2(**self._public(event, "rejected"), rejected_at=now))
        self.record(RegistrationRejectedNotice(**self._notice(event, "rejected"), reason=reason))

    def update_details(self, event: Event, change: RegistrationChange, now: datetime) -> list[str]:
        """A participant's own change; returns what really changed (sorted), maybe nothing."""
        self._check_not_closed(verb="changed")
        given = change.model_dump(mode="json", exclude_unset=True)
        changes = {k: v for k, v in given.items() if getattr(self, k) != v}
        if not changes:
            return []
        for name, value in changes.items():
            setattr(self, name, value)
        self.updated_at = iso(now)
        self.record(
            RegistrationUpdatedV2(
                **self._public(event, self.status), changed_fields=sorted(changes), updated_at=now
            )
        )
        self.record(
            RegistrationUpdatedNotice(
                **self._notice(event, self.status), changed_fields=sorted(changes)
            )
        )
        return sorted(changes)

    def check_in(
        self, event: Event, now: datetime, day: str | None = None, *, by: str | None = None
    ) -> str:
        """Record attendance for today (venue time), or for ``day``: an earlier day of the
        event (attendance recorded late) or the day a walk-in names; returns the day.
        ``by``: who checked them in, as the history says (``staff`` when not known)."""
        event.check_not_cancelled()
        if self.status != "confirmed":
            raise DomainError(
                f"registration_{self.status}",
                f"This registration is {self.status.replace('_', ' ')}, not confirmed.",
            )
        if day is not None and day > local_day(now):
            raise DomainError("future_day", f"{day} has not come yet.", field="day")
        day = event.check_in_day(now) if day is None else event.check_event_day(day)
        previous = self.checkins.get(day)
        if previous:
            raise DomainError(
                "already_checked_in",
                f"Already checked in on {day} at {previous}.",
                details={"day": day, "checked_in_at": previous},
            )
        action = "walk_in" if self.via == "walk_in" and not self.checkins else "checked_in"
        self.checkins = {**self.checkins, day: iso(now)}
        self._note(action, self.status, self.status, by or "staff", now, day=day)
        self.updated_at = iso(now)
        self.record(
            ParticipantCheckedInV2(**self._public(event, self.status), day=day, checked_in_at=now)
        )
        self.record(
            ParticipantCheckedInNotice(
                **self._notice(event, self.status), day=day, checked_in_at=now
            )
        )
        return day

    def request_resend(self, event: Event, signer: TicketSigner, now: datetime) -> bool:
        """Someone registered again with this email: resend to the address on file.

        At most one resend per ``RESEND_INTERVAL``, whoever asks from wherever, so repeated
        attempts with someone's email cannot flood their mailbox; False when too soon.
        Only a notice: nothing changed that the public stream reports.
        """
        last = self.resend_requested_at
        if last and now - _dt(last) < RESEND_INTERVAL:
            return False
        self.resend_requested_at = self.updated_at = iso(now)
        self.record(
            ConfirmationResendRequestedNotice(
                **self._notice(event, self.status, signer), requested_at=now
            )
        )
        return True

    def erase(self, reason: Literal["participant_request", "retention"], now: datetime) -> bool:
        """Replace the personal data and record ``PersonalDataErased``; False if done before.

        What is kept has no personal data (status, cadre, check-in days, times), so
        attendance statistics stay right.
        """
        if self.erased_at:
            return False
        stamp = iso(now)
        self.full_name = "[erased]"
        # Keeps the unique (event, email) index satisfied without any real address.
        self.email = f"erased-{self.id}@invalid"
        self.phone = ""
        self.institution = "[erased]"
        self.position = "[erased]"
        self.region = None
        self.accessibility_needs = []
        self.accessibility_other = None
        self.dietary_needs = None
        self.professional_registration_number = None
        # Free-text answers may say who someone is; the nominating institution too, as
        # much as the institution's name does. The category stays, as the cadre does.
        self.answers = {}
        self.institution_code = None
        # The history keeps its steps; reasons (free text) and who nominated go.
        self.history = [
            {
                **{k: v for k, v in e.items() if k != "reason"},
                "by": "institution"
                if str(e.get("by", "")).startswith("institution:")
                else e.get("by"),
            }
            for e in self.history
        ]
        self.manage_token_hash = None
        self.consent = {**self.consent, "withdrawn_at": stamp}
        self.erased_at = self.updated_at = stamp
        self.erasure_reason = reason
        self.record(
            PersonalDataErased(
                registration_id=self.id, event_id=self.event_id, reason=reason, erased_at=now
            )
        )
        return True


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
    "category",
    "region",
    "accessibility_needs",
    "dietary_needs",
    "language",
    "waitlist_position",
    "checked_in_days",
    "created_at",
    "via",
    "institution_code",
)
ANSWER_COLUMN = "answers.{}"  # one column per question of the event, after CSV_COLUMNS


def csv_columns(questions: Sequence[Question] = ()) -> list[str]:
    """The export's header: the fixed columns, then ``answers.<id>`` per question."""
    return [*CSV_COLUMNS, *(ANSWER_COLUMN.format(q.id) for q in questions)]


def answer_cell(value: Any) -> object:
    """An answer as an export cell: yes/no for booleans, choices joined with ``;``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def csv_cell(value: object) -> str:
    """A safe CSV cell: lists joined, control characters stored before the text rules
    replaced (never a raw NUL in an export), formula-looking text neutralised (CSV
    injection)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    text = without_controls(str(value))
    is_phone = text.startswith("+") and text[1:].isdigit()  # E.164 is data, not a formula
    if text and text[0] in "=+-@\t\r" and not is_phone:
        text = "'" + text
    return text


def csv_row(registration: Registration, questions: Sequence[Question] = ()) -> list[str]:
    """One registration as an export row, in ``csv_columns(questions)`` order."""
    values = {
        **{col: getattr(registration, col, None) for col in CSV_COLUMNS},
        "checked_in_days": sorted(registration.checkins),
    }
    row = [csv_cell(values.get(col)) for col in CSV_COLUMNS]
    answers = registration.answers or {}
    return row + [csv_cell(answer_cell(answers.get(q.id))) for q in questions]


# == certificates of attendance, CPD hours, evaluation (issue 16) =====================
#
# A ``Certificate`` is its own aggregate (one document, its events in its own outbox): a
# participant who checked in at least once gets one when the event ends, or when an
# organiser asks. The PDF is drawn from the certificate's fields on each download
# (``certificate_pdf``), so the document holds no file; what it shows is frozen in it at
# issue (name, institution, days, hours). A reissue supersedes it with a new serial and
# the old one answers "revoked" (reason ``reissued``); an erasure revokes it and blanks
# the name. ``CertificateSettings`` and ``EvaluationForm`` are per-event settings kept
# beside the event (not on it), so the event's own document is untouched.

CertificateStatus = Literal["valid", "revoked"]
RevocationReason = Literal["revoked", "reissued", "erased"]
Day = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
ERASED = "[erased]"


def new_certificate_serial() -> str:
    """An unguessable serial: 20 symbols of a 30-letter alphabet (~98 bits) in groups,
    without look-alike letters (no 0/O, 1/I/L, U), e.g. ``MKC-7Q2RX-…``."""
    body = "".join(secrets.choice(_REF_ALPHABET) for _ in range(20))
    return "MKC-" + "-".join(body[i : i + 5] for i in range(0, 20, 5))


def normalise_serial(raw: str) -> str:
    return raw.strip().upper()[:40]


def verify_path(serial: str) -> str:
    return f"/verify/{serial}"


class CertificateSettingsChange(BaseModel):
    """An organiser's certificate settings for an event: the CPD hours of each event day
    (a day without hours counts 0) and the template folder
    (``templates/certificates/<template>/``)."""

    model_config = ConfigDict(extra="forbid")

    cpd_hours: dict[Day, float] = Field(default_factory=dict, max_length=60)
    template: TemplateName = "default"

    @field_validator("cpd_hours")
    @classmethod
    def _hours(cls, v: dict[str, float]) -> dict[str, float]:
        for day, hours in v.items():
            if not 0 <= hours <= 24:
                raise ValueError(f"hours of {day} must be between 0 and 24")
        return {day: round(float(hours), 2) for day, hours in sorted(v.items())}


@dataclass(kw_only=True)
class CertificateSettings(Aggregate):
    """Per event: CPD hours per day, the template, and when the automatic issue ran."""

    event_id: str
    cpd_hours: dict[str, float] = field(default_factory=dict)
    template: str = "default"
    issued_at: str | None = None
    updated_at: str = ""

    @classmethod
    def default(cls, event_id: str) -> CertificateSettings:
        return cls(event_id=event_id)

    def change(self, event: Event, change: CertificateSettingsChange, now: datetime) -> None:
        first, last = local_day(event.starts_at), local_day(event.ends_at)
        outside = sorted(d for d in change.cpd_hours if not first <= d <= last)
        if outside:
            raise DomainError(
                "not_an_event_day",
                f"{', '.join(outside)}: not a day of this event ({first} to {last}).",
                field="cpd_hours",
            )
        self.cpd_hours = dict(change.cpd_hours)
        self.template = change.template
        self.updated_at = iso(now)

    def hours_for(self, days: list[str]) -> dict[str, float]:
        return {day: float(self.cpd_hours.get(day, 0.0)) for day in sorted(days)}


@dataclass(kw_only=True)
class Certificate(Aggregate):
    """One certificate of attendance of one registration (``generation`` 1, 2 after a
    reissue…), frozen at issue; valid until revoked."""

    id: str
    serial: str
    registration_id: str
    event_id: str
    generation: int = 1
    full_name: str
    institution: str
    language: str = "sw"
    professional_registration_number: str | None = None
    event: dict = field(default_factory=dict)  # EventDetails as JSON, frozen at issue
    days: list[str] = field(default_factory=list)
    hours_by_day: dict[str, float] = field(default_factory=dict)
    cpd_hours: float = 0.0
    template: str = "default"
    status: str = "valid"
    issued_at: str
    issued_by: str = "system"
    replaces: str | None = None
    revoked_at: str | None = None
    revocation_reason: str | None = None
    replaced_by: str | None = None
    erased_at: str | None = None

    @property
    def issue_key(self) -> str:
        """Unique per registration and generation: a second issue of the same one fails."""
        return f"{self.registration_id}#{self.generation}"

    @classmethod
    def issue(
        cls,
        *,
        registration: Registration,
        event: Event,
        settings: CertificateSettings,
        self_service_url: str,
        public_url: str,
        now: datetime,
        generation: int = 1,
        replaces: Certificate | None = None,
        full_name: str | None = None,
        institution: str | None = None,
        by: str = "system",
    ) -> Certificate:
        """A certificate for the days the participant checked in; refused for one who never
        did (``not_attended``) or whose data was erased. Records ``CertificateIssued``
        (public) and its notice (the email with the download link)."""
        if registration.erased_at:
            raise DomainError("registration_not_found", "No such registration.")
        if not registration.checkins:
            raise DomainError("not_attended", "This participant never checked in: no certificate.")
        days = sorted(registration.checkins)
        hours = settings.hours_for(days)
        cert = cls(
            id=str(uuid.uuid4()),
            serial=new_certificate_serial(),
            registration_id=registration.id,
            event_id=event.id,
            generation=generation,
            full_name=full_name or registration.full_name,
            institution=institution or registration.institution,
            language=registration.language,
            professional_registration_number=getattr(
                registration, "professional_registration_number", None
            ),
            event=event.details().model_dump(mode="json"),
            days=days,
            hours_by_day=hours,
            cpd_hours=round(sum(hours.values()), 2),
            template=settings.template,
            issued_at=iso(now),
            issued_by=by,
            replaces=replaces.id if replaces else None,
        )
        cert.record(
            CertificateIssued(
                certificate_id=cert.id,
                registration_id=registration.id,
                event_id=event.id,
                days=days,
                cpd_hours=cert.cpd_hours,
                issued_at=now,
                replaces=cert.replaces,
            )
        )
        notice = registration._notice(event, registration.status)
        contact = notice["participant"].model_copy(
            update={"full_name": cert.full_name, "institution": cert.institution}
        )
        cert.record(
            CertificateIssuedNotice(
                **{**notice, "participant": contact},
                self_service_url=self_service_url,
                certificate_id=cert.id,
                days=days,
                cpd_hours=cert.cpd_hours,
                certificate_url=f"{self_service_url}/certificate.pdf",
                verify_url=f"{public_url}{verify_path(cert.serial)}",
                issued_at=now,
            )
        )
        return cert

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def revoke(
        self, reason: RevocationReason, now: datetime, *, replaced_by: str | None = None
    ) -> None:
        """No longer valid; the verification answer says revoked from now on."""
        if not self.valid:
            raise DomainError("certificate_revoked", "This certificate is already revoked.")
        self.status = "revoked"
        self.revoked_at = iso(now)
        self.revocation_reason = reason
        self.replaced_by = replaced_by
        self.record(
            CertificateRevoked(
                certificate_id=self.id,
                registration_id=self.registration_id,
                event_id=self.event_id,
                reason=reason,
                revoked_at=now,
                replaced_by=replaced_by,
            )
        )

    def erase(self, now: datetime) -> bool:
        """The holder's data was erased: revoke, and the name leaves the verification
        answer (and the PDF); False when done before."""
        if self.erased_at:
            return False
        if self.valid:
            self.revoke("erased", now)
        self.full_name = ERASED
        self.institution = ERASED
        self.professional_registration_number = None
        self.erased_at = iso(now)
        return True

    def verification(self) -> dict:
        """What anyone holding the serial may learn: valid or revoked, name, event, days
        — nothing more (the name is None once erased)."""
        return {
            "serial": self.serial,
            "status": self.status,
            "full_name": None if self.erased_at else self.full_name,
            "event": {
                "title_sw": self.event.get("title_sw"),
                "title_en": self.event.get("title_en"),
            },
            "days": list(self.days),
        }


CPD_CSV_COLUMNS = ("full_name", "professional_registration_number", "cpd_hours")


def cpd_row(certificate: Certificate) -> list[str]:
    """One valid certificate as a row of the CPD export (``CPD_CSV_COLUMNS``)."""
    return [
        csv_cell(certificate.full_name),
        csv_cell(certificate.professional_registration_number),
        csv_cell(f"{certificate.cpd_hours:g}"),
    ]


# -- evaluation ------------------------------------------------------------------------
# The questions are issue 13's (``Question`` above: the registration form's model, with
# its types short/long text, single/multiple choice, yes/no, number, date, and its one
# ``answer`` rule per type); an evaluation asks every attendee, so its questions name no
# categories.

CHOICE_TYPES = ("single_choice", "multiple_choice")
TEXT_TYPES = ("short_text", "long_text")


class EvaluationFormSpec(BaseModel):
    """What an organiser attaches to an event: the questions, and whether certificates
    wait for the answer."""

    model_config = ConfigDict(extra="forbid")

    questions: list[Question] = Field(min_length=1, max_length=40)
    required_for_certificate: bool = False

    @model_validator(mode="after")
    def _unique(self) -> EvaluationFormSpec:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids repeat")
        if any(q.categories for q in self.questions):
            raise ValueError("an evaluation asks every attendee: its questions name no categories")
        return self


@dataclass(kw_only=True)
class EvaluationForm(Aggregate):
    """An event's evaluation form (one per event)."""

    event_id: str
    questions: list[dict] = field(default_factory=list)
    required_for_certificate: bool = False
    invitations_sent_at: str | None = None
    answers_count: int = 0
    created_at: str = ""
    updated_at: str = ""

    def parsed(self) -> list[Question]:
        return [Question.model_validate(q) for q in self.questions]

    def replace(self, spec: EvaluationFormSpec, now: datetime) -> None:
        """New questions; refused once anyone answered (their answers would not fit)."""
        if self.answers_count:
            raise DomainError(
                "evaluation_answered",
                "Participants have answered this form: its questions cannot change now.",
            )
        self.questions = [q.model_dump(mode="json") for q in spec.questions]
        self.required_for_certificate = spec.required_for_certificate
        self.created_at = self.created_at or iso(now)
        self.updated_at = iso(now)

    def check_answers(self, raw: dict[str, object]) -> dict[str, object]:
        """The answers as stored; ``invalid_answers`` naming each field at fault."""
        answers: dict[str, object] = {}
        problems: dict[str, str] = {}
        for question in self.parsed():
            given = raw.get(question.id)
            try:
                if isinstance(given, str | list):  # typed into the form
                    value = question.answer_from_text(given)
                else:
                    value = question.answer(given)
            except AnswerProblem as problem:
                problems[question.id] = str(problem)
                continue
            if value is None or value == "":
                if question.required:
                    problems[question.id] = "required"
                continue
            answers[question.id] = value
        if problems:
            first = next(iter(problems))
            raise DomainError(
                "invalid_answers",
                "Some answers are missing or not valid.",
                field=first,
                details={"problems": problems},
            )
        return answers


@dataclass(kw_only=True)
class EvaluationResponse(Aggregate):
    """One attendee's evaluation: invited, then answered once (``id``:
    ``<event_id>:<registration_id>``, so a second answer cannot exist)."""

    id: str
    event_id: str
    registration_id: str
    status: str = "invited"  # invited | answered
    invited_at: str | None = None
    answered_at: str | None = None
    answers: dict = field(default_factory=dict)
    erased_at: str | None = None

    @staticmethod
    def key(event_id: str, registration_id: str) -> str:
        return f"{event_id}:{registration_id}"

    @classmethod
    def invite(
        cls,
        *,
        registration: Registration,
        event: Event,
        form: EvaluationForm,
        self_service_url: str,
        now: datetime,
    ) -> EvaluationResponse:
        """Ask an attendee (by email and SMS) to answer; refused for one who never came."""
        if not registration.checkins or registration.erased_at:
            raise DomainError("not_attended", "Only participants who attended are asked.")
        response = cls(
            id=cls.key(event.id, registration.id),
            event_id=event.id,
            registration_id=registration.id,
            invited_at=iso(now),
        )
        response.record(
            EvaluationInvitedNotice(
                **registration._notice(event, registration.status),
                self_service_url=self_service_url,
                evaluation_url=f"{self_service_url}/evaluation",
                certificate_waits=form.required_for_certificate,
                invited_at=now,
            )
        )
        return response

    @classmethod
    def uninvited(cls, registration: Registration, event: Event) -> EvaluationResponse:
        """An attendee answering before (or without) the invitation."""
        return cls(
            id=cls.key(event.id, registration.id),
            event_id=event.id,
            registration_id=registration.id,
        )

    @property
    def answered(self) -> bool:
        return self.status == "answered"

    def answer(self, form: EvaluationForm, raw: dict[str, object], now: datetime) -> None:
        if self.answered:
            raise DomainError(
                "evaluation_already_answered", "This evaluation has been answered already."
            )
        self.answers = form.check_answers(raw)
        self.status = "answered"
        self.answered_at = iso(now)

    def erase(self, form: EvaluationForm | None, now: datetime) -> bool:
        """Free-text answers may name someone: they go; choices and numbers stay (the
        statistics stay right, and nothing left points at a person)."""
        if self.erased_at:
            return False
        free = {q.id for q in form.parsed() if q.type in TEXT_TYPES} if form else set()
        self.answers = {k: v for k, v in self.answers.items() if k not in free}
        self.erased_at = iso(now)
        return True


def yes_no_text(value: object) -> str:
    """A yes/no answer as the results and the export show it (stored as a boolean)."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def evaluation_results(
    form: EvaluationForm, responses: list[EvaluationResponse], invited: int
) -> dict:
    """Response rate, each question's distribution, the free-text answers."""
    answered = [r for r in responses if r.answered]
    questions = []
    for q in form.parsed():
        given = [r.answers[q.id] for r in answered if q.id in r.answers]
        entry: dict = {
            "id": q.id,
            "type": q.type,
            "label_sw": q.label_sw,
            "label_en": q.label_en,
            "answers": len(given),
        }
        if q.type in TEXT_TYPES:
            entry["texts"] = sorted(str(v) for v in given)
        elif q.type in CHOICE_TYPES or q.type == "yes_no":
            options = (
                [(c.code, c.label_en) for c in q.choices]
                if q.type in CHOICE_TYPES
                else [("yes", "Yes"), ("no", "No")]
            )
            counts = {value: 0 for value, _ in options}
            for v in given:
                for chosen in v if isinstance(v, list) else [v]:
                    key = yes_no_text(chosen) if q.type == "yes_no" else str(chosen)
                    counts[key] = counts.get(key, 0) + 1
            entry["distribution"] = [
                {"value": value, "label": label, "count": counts[value]} for value, label in options
            ]
        else:  # number, date: each distinct value and its count
            counts: dict[str, int] = {}
            for v in given:
                counts[str(v)] = counts.get(str(v), 0) + 1
            entry["distribution"] = [
                {"value": k, "label": k, "count": counts[k]} for k in sorted(counts)
            ]
        questions.append(entry)
    total = len(answered)
    return {
        "invited": invited,
        "answered": total,
        "response_rate": round(total / invited, 4) if invited else 0.0,
        "questions": questions,
    }


# -- institutions (issue 13 B) ---------------------------------------------------------
# The registry of the public institutions that nominate their officers, their contact
# persons (personal data: PDPA), and the contact persons' emailed, single-use sign-in.

InstitutionKind = Literal[
    "ministry",
    "independent_department",
    "agency",
    "regional_secretariat",
    "local_government_authority",
    "public_corporation",
    "other",
]
INSTITUTION_KINDS: tuple[str, ...] = (
    "ministry",
    "independent_department",
    "agency",
    "regional_secretariat",
    "local_government_authority",
    "public_corporation",
    "other",
)
# An institution's code: upper case letters, digits and dashes (e.g. EGA, MOF, PO-RALG).
InstitutionCode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$"),
]
MAX_CONTACTS = 10


class ContactPersonSpec(BaseModel):
    """One contact person of an institution (for example its HR or ICT head)."""

    model_config = ConfigDict(extra="forbid")

    full_name: single_line_text(min_length=2, max_length=120)
    email: single_line_text(max_length=254)
    phone: single_line_text(min_length=6, max_length=24) | None = None
    language: Language = "sw"

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v) if v else None


def _unique_contacts(contacts: list[ContactPersonSpec]) -> list[ContactPersonSpec]:
    emails = [c.email for c in contacts]
    if len(set(emails)) != len(emails):
        raise ValueError("two contact persons have the same email")
    return contacts


class InstitutionSpec(BaseModel):
    """What an organiser sends to add an institution to the registry."""

    model_config = ConfigDict(extra="forbid")

    code: InstitutionCode = Field(description="Short code, e.g. EGA, MOF, PO-RALG")
    name_sw: Text
    name_en: Text
    kind: InstitutionKind
    region: single_line_text(max_length=60) | None = None
    contacts: list[ContactPersonSpec] = Field(default_factory=list, max_length=MAX_CONTACTS)

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, v: list[ContactPersonSpec]) -> list[ContactPersonSpec]:
        return _unique_contacts(v)


class InstitutionChange(Patch):
    """What an organiser may change on an institution (``code`` is fixed). ``contacts``
    replaces the list: a contact person kept (same email) keeps their id."""

    nullable = frozenset({"region"})

    name_sw: Text | None = None
    name_en: Text | None = None
    kind: InstitutionKind | None = None
    region: single_line_text(max_length=60) | None = None
    contacts: list[ContactPersonSpec] | None = Field(default=None, max_length=MAX_CONTACTS)

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, v: list[ContactPersonSpec] | None) -> list[ContactPersonSpec] | None:
        return _unique_contacts(v) if v is not None else None


def new_contact_id() -> str:
    return str(uuid.uuid4())


@dataclass(kw_only=True)
class Institution(Aggregate):
    """An institution of the registry and its contact persons.

    ``contacts`` are dicts (``id``, ``full_name``, ``email``, ``phone``, ``language``):
    personal data, shown only to organisers and never logged. Nothing here is published
    on the public stream; a sign-in link goes out as a private notice
    (``InstitutionSignInRequested``) from the sign-in record, not from this aggregate.
    """

    code: str
    name_sw: str
    name_en: str
    kind: str
    region: str | None = None
    contacts: list[dict] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""

    @property
    def id(self) -> str:
        return self.code

    @classmethod
    def create(cls, spec: InstitutionSpec, now: datetime) -> Institution:
        stamp = iso(now)
        institution = cls(
            code=spec.code,
            name_sw=spec.name_sw,
            name_en=spec.name_en,
            kind=spec.kind,
            region=spec.region,
            created_at=stamp,
            updated_at=stamp,
        )
        institution.contacts = institution._merged_contacts(spec.contacts)
        return institution

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_sw

    def _merged_contacts(self, contacts: list[ContactPersonSpec]) -> list[dict]:
        """The new list; a person already there (same email) keeps their id."""
        ids = {c["email"]: c["id"] for c in self.contacts}
        return [
            {"id": ids.get(c.email) or new_contact_id(), **c.model_dump(mode="json")}
            for c in contacts
        ]

    def change(self, change: InstitutionChange, now: datetime) -> list[str]:
        """Apply an organiser's change; the names of the fields that really changed."""
        changed: list[str] = []
        for name in change.model_fields_set:
            if name == "contacts":
                assert change.contacts is not None
                new = self._merged_contacts(change.contacts)
                if new != self.contacts:
                    self.contacts = new
                    changed.append(name)
                continue
            value = getattr(change, name)
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed.append(name)
        if changed:
            self.updated_at = iso(now)
        return sorted(changed)

    def upsert_contact(self, contact: ContactPersonSpec, now: datetime) -> bool:
        """Add a contact person, or update the one with that email; True if it changed."""
        others = [c for c in self.contacts if c["email"] != contact.email]
        existing = next((c for c in self.contacts if c["email"] == contact.email), None)
        if existing is None and len(self.contacts) >= MAX_CONTACTS:
            raise DomainError(
                "too_many_contacts",
                f"An institution has at most {MAX_CONTACTS} contact persons.",
                field="contacts",
            )
        new = {
            "id": existing["id"] if existing else new_contact_id(),
            **contact.model_dump(mode="json"),
        }
        if existing == new:
            return False
        self.contacts = (
            [*others, new]
            if existing is None
            else [new if c["email"] == contact.email else c for c in self.contacts]
        )
        self.updated_at = iso(now)
        return True

    def contact(self, contact_id: str) -> dict | None:
        return next((c for c in self.contacts if c["id"] == contact_id), None)

    def contact_by_email(self, email: str) -> dict | None:
        return next((c for c in self.contacts if c["email"] == email), None)

    def request_group_bill(
        self, *, event_id: str, registration_ids: list[str], contact: dict, now: datetime
    ) -> None:
        """One bill for these nominees (pending payment) of an event, paid by ``contact``:
        payments opens it on the ``GroupBillRequested`` notice (issue 14)."""
        if not registration_ids:
            raise DomainError(
                "nothing_to_bill",
                "None of this institution's nominees for this event awaits payment",
                field="event",
            )
        self.record(
            GroupBillRequested(
                institution_code=self.code,
                event_id=event_id,
                registration_ids=sorted(registration_ids),
                payer=ParticipantContact(
                    full_name=contact["full_name"],
                    email=contact["email"],
                    phone=contact.get("phone") or "",
                    language=contact.get("language") or "sw",
                    institution=self.name(contact.get("language") or "sw"),
                ),
                requested_at=now,
            )
        )

    def erase_contact(self, contact_id: str, now: datetime) -> bool:
        """Remove a contact person's data (PDPA erasure) and tell notification to drop
        its copies; False if there was none."""
        gone = self.contact(contact_id)
        if gone is None:
            return False
        self.contacts = [c for c in self.contacts if c["id"] != contact_id]
        self.updated_at = iso(now)
        self.record(
            InstitutionContactErased(
                institution_code=self.code,
                contact_id=contact_id,
                email=gone["email"],
                erased_at=now,
            )
        )
        return True


# -- the contact persons' sign-in: an emailed link, single use, minutes long ------------

INSTITUTION_LINK_PURPOSE = b"mkutano institution sign-in v1"
SIGN_IN_VALIDITY = timedelta(minutes=15)
SESSION_VALIDITY = timedelta(hours=1)


class InstitutionLinkSigner:
    """Sign-in links and session cookies of institutions' contact persons.

    A link is ``base64url(16-byte nonce + 4-byte expiry + 16-byte HMAC tag)`` (48
    characters, one valid spelling). The signature and expiry are checked first; the
    nonce is then consumed in the store with one conditional write, so a link opens one
    session once. A session is ``base64url(contact id + institution code + expiry +
    tag)``: signed, short-lived, checked against the registry on each request (an
    erased contact person's session stops at once). The key is derived for this purpose
    only: a link is no ticket, no self-service link and no session.
    """

    _MAC = 16
    _LINK_LENGTH = 48

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + data, hashlib.sha256).digest()[: self._MAC]

    @staticmethod
    def _encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    @staticmethod
    def _decode(text: str) -> bytes | None:
        try:
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            return None
        return data

    def new_link(self, expires_at: datetime) -> tuple[str, str]:
        """A fresh link and the hash of its nonce (what the store keeps)."""
        nonce = secrets.token_bytes(16)
        body = nonce + int(expires_at.timestamp()).to_bytes(4, "big")
        return self._encode(body + self._tag(b"link", body)), nonce_hash(nonce)

    def link_nonce(self, link: str, now: datetime) -> str | None:
        """The nonce hash of a genuine, unexpired link, else None."""
        if len(link) != self._LINK_LENGTH:
            return None
        data = self._decode(link)
        if data is None or len(data) != 36 or self._encode(data) != link:
            return None
        body, tag = data[:20], data[20:]
        if not hmac.compare_digest(self._tag(b"link", body), tag):
            return None
        if int.from_bytes(body[16:], "big") <= now.timestamp():
            return None
        return nonce_hash(body[:16])

    def session(self, institution_code: str, contact_id: str, expires_at: datetime) -> str:
        body = (
            uuid.UUID(contact_id).bytes
            + int(expires_at.timestamp()).to_bytes(4, "big")
            + institution_code.encode()
        )
        return self._encode(body + self._tag(b"session", body))

    def open_session(self, value: str, now: datetime) -> tuple[str, str] | None:
        """``(institution code, contact id)`` of a genuine, unexpired session, else None."""
        if not value or len(value) > 120:
            return None
        data = self._decode(value)
        if data is None or len(data) < 20 + 2 + self._MAC or self._encode(data) != value:
            return None
        body, tag = data[: -self._MAC], data[-self._MAC :]
        if not hmac.compare_digest(self._tag(b"session", body), tag):
            return None
        if int.from_bytes(body[16:20], "big") <= now.timestamp():
            return None
        try:
            code = body[20:].decode()
        except UnicodeDecodeError:
            return None
        return code, str(uuid.UUID(bytes=body[:16]))

    def form_token(self, subject: str) -> str:
        """The token an institution page's forms carry (CSRF), tied to the session (or
        the sign-in link) the page was opened with."""
        return self._encode(
            hmac.new(self._secret, b"form\0" + subject.encode(), hashlib.sha256).digest()[:18]
        )

    def form_token_matches(self, subject: str, token: str | None) -> bool:
        return hmac.compare_digest(self.form_token(subject).encode(), (token or "").encode())


def nonce_hash(nonce: bytes) -> str:
    return hashlib.sha256(b"institution sign-in\0" + nonce).hexdigest()


def institution_sign_in_path(link: str) -> str:
    """The page an emailed sign-in link opens (the public base URL goes before)."""
    return f"/institution/sign-in/{link}"


@dataclass(kw_only=True)
class InstitutionSignIn(Aggregate):
    """One emailed sign-in link: its nonce (hashed), whom it is for, until when, and
    whether it was used. Its creation records the private notice that emails the link."""

    nonce_hash: str
    institution_code: str
    contact_id: str
    expires_at: str
    created_at: str
    state: Literal["issued", "used"] = "issued"

    @property
    def id(self) -> str:
        return self.nonce_hash

    @classmethod
    def issue(
        cls,
        *,
        institution: Institution,
        contact: dict,
        link: str,
        nonce_hash_: str,
        public_url: str,
        expires_at: datetime,
        now: datetime,
    ) -> InstitutionSignIn:
        sign_in = cls(
            nonce_hash=nonce_hash_,
            institution_code=institution.code,
            contact_id=contact["id"],
            expires_at=iso(expires_at),
            created_at=iso(now),
        )
        language = contact.get("language") or "sw"
        sign_in.record(
            InstitutionSignInRequested(
                institution_code=institution.code,
                institution_name_sw=institution.name_sw,
                institution_name_en=institution.name_en,
                contact=InstitutionContactAddress(
                    contact_id=contact["id"],
                    full_name=contact["full_name"],
                    email=contact["email"],
                    language=language,
                ),
                sign_in_url=public_url.rstrip("/")
                + institution_sign_in_path(link)
                + f"?lang={language}",
                expires_at=expires_at,
                requested_at=now,
            )
        )
        return sign_in


# -- CSV files with a dry run: a report per row and field -------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One problem of an uploaded CSV file: its line (the header is line 1), its field."""

    row: int
    field: str
    reason: str


def csv_problems(exc: ValidationError, row: int, columns: dict[str, str]) -> list[RowProblem]:
    """A model's validation errors as row problems; ``columns`` maps a model field to the
    CSV column it came from (for example ``contacts`` → ``contact_email``)."""
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        name = loc[0] if loc else "row"
        if name == "contacts" and len(loc) >= 3:
            name = f"contact_{loc[2]}"
        problems.append(RowProblem(row, columns.get(name, name), error["msg"]))
    return problems


INSTITUTION_CSV_REQUIRED = ("code", "name_sw", "name_en", "kind")
INSTITUTION_CSV_COLUMNS = (
    *INSTITUTION_CSV_REQUIRED,
    "region",
    "contact_name",
    "contact_email",
    "contact_phone",
    "contact_language",
)
MAX_CSV_ROWS = 5000


def read_csv(
    text: str, required: tuple[str, ...], allowed: tuple[str, ...]
) -> tuple[list[tuple[int, dict[str, str]]], list[RowProblem]]:
    """The rows of a CSV file as ``(line, {column: cell})`` (the header is line 1), or
    the header's problems: a missing required column, an unknown or repeated one."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return [], [RowProblem(1, "header", "the file is empty")]
    except csv.Error as exc:
        return [], [RowProblem(1, "header", f"not a CSV file: {exc}")]
    problems = [RowProblem(1, c, "required column missing") for c in required if c not in header]
    problems += [RowProblem(1, c, "unknown column") for c in header if c not in allowed]
    problems += [
        RowProblem(1, c, "column repeated")
        for c in sorted({c for c in header if header.count(c) > 1})
    ]
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    RowProblem(line, "row", f"{len(cells)} cells, the header has {len(header)}")
                )
                continue
            rows.append((line, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
            if len(rows) > MAX_CSV_ROWS:
                return [], [RowProblem(line, "row", f"at most {MAX_CSV_ROWS} rows per file")]
    except csv.Error as exc:
        problems.append(RowProblem(reader.line_num, "row", f"not valid CSV: {exc}"))
    if not rows and not problems:
        problems.append(RowProblem(1, "file", "no rows after the header"))
    return rows, problems


def parse_institutions_csv(
    text: str,
) -> tuple[list[tuple[int, InstitutionSpec]], list[RowProblem]]:
    """A registry CSV file as institution specs, or every problem found, by line and
    column (``INSTITUTION_CSV_COLUMNS``; a row's contact person is optional)."""
    rows, problems = read_csv(text, INSTITUTION_CSV_REQUIRED, INSTITUTION_CSV_COLUMNS)
    specs: list[tuple[int, InstitutionSpec]] = []
    seen: dict[str, int] = {}
    columns = {
        "full_name": "contact_name",
        "email": "contact_email",
        "phone": "contact_phone",
        "language": "contact_language",
    }
    for line, cells in rows:
        body: dict[str, object] = {
            "code": cells["code"],
            "name_sw": cells["name_sw"],
            "name_en": cells["name_en"],
            "kind": cells["kind"].strip().lower().replace(" ", "_"),
        }
        if cells.get("region"):
            body["region"] = cells["region"]
        contact = {
            "full_name": cells.get("contact_name", ""),
            "email": cells.get("contact_email", ""),
            "phone": cells.get("contact_phone") or None,
            "language": (cells.get("contact_language") or "sw").lower(),
        }
        if any(contact[k] for k in ("full_name", "email", "phone")):
            body["contacts"] = [contact]
        try:
            spec = InstitutionSpec.model_validate(body)
        except ValidationError as exc:
            for problem in csv_problems(exc, line, {}):
                name = problem.field
                if name.startswith("contact_"):
                    name = columns.get(name.removeprefix("contact_"), name)
                problems.append(RowProblem(line, name, problem.reason))
            continue
        if spec.code in seen:
            problems.append(RowProblem(line, "code", f"the same code as line {seen[spec.code]}"))
            continue
        seen[spec.code] = line
        specs.append((line, spec))
    return specs, problems


# -- nominations: an institution's contact person puts its officers forward -------------

NOMINATION_CSV_REQUIRED = ("full_name", "email", "phone", "position", "category")
NOMINATION_CSV_COLUMNS = (*NOMINATION_CSV_REQUIRED, "language", "region")
# The fields of a nomination form and file, as RegistrationRequest names them.
NOMINATION_FIELDS = ("full_name", "email", "phone", "position", "category", "language", "region")


def nomination_payload(cells: dict[str, str], institution: Institution) -> dict[str, object]:
    """A nomination (a form's or a CSV row's cells) as a registration body: the
    institution is the nominating one; consent is declared by its contact person (the
    page asks them to confirm the officers were told and agreed)."""
    language = (cells.get("language") or "sw").strip().lower()
    payload: dict[str, object] = {
        "full_name": cells.get("full_name", ""),
        "email": cells.get("email", ""),
        "phone": cells.get("phone", ""),
        "position": cells.get("position", ""),
        "institution": institution.name_sw if language == "sw" else institution.name_en,
        "language": language,
        "consent": {"accepted": True},
    }
    payload["category"] = (cells.get("category") or "").strip()
    region = (cells.get("region") or "").strip() or institution.region
    if region:
        payload["region"] = region
    return payload


def nomination_category(request: RegistrationRequest) -> str:
    return request.category


def nominable_categories(event: Event) -> list[tuple[str, str, str]]:
    """``(code, name_sw, name_en)`` of the categories an institution nominates for: those
    that need a nomination, or every category of an event that has none such."""
    categories = list(event.categories)
    if not categories:
        return []
    needing = [c for c in categories if c.requires_nomination]
    return [(c.code, c.name_sw, c.name_en) for c in (needing or categories)]


def check_nominable(event: Event, category: str, now: datetime) -> None:
    """An institution nominates for one of ``nominable_categories`` and only before the
    event starts."""
    if event.starts_at <= now:
        raise DomainError(
            "event_started", "The event has started: nominations are closed.", field="event"
        )
    allowed = nominable_categories(event)
    if allowed and category not in {code for code, _, _ in allowed}:
        raise DomainError(
            "category_not_nominable",
            "Institutions do not nominate for this category.",
            field="category",
        )


# -- organisers' list order ------------------------------------------------------------
# Each sort of the organisers' list is a keyset: the fields it orders by, all ascending
# or all descending, ending in the unique id, so that a page can start strictly after the
# last item of the one before. ``created`` (oldest first) is the default and the order of
# the CSV export.
RegistrationSort = Literal["created", "-created", "name", "status"]
REGISTRATION_SORTS: tuple[RegistrationSort, ...] = ("created", "-created", "name", "status")


def name_sort_key(full_name: str) -> str:
    """The key the name sort orders by: the name without case and without accents
    (``"Émile"``, ``"emile"`` and ``"EMILE"`` sort together), compared code point by
    code point. Stored beside the name because the embedded MongoDB stand-in has no
    collation; always derived from ``full_name`` when a registration is written, so an
    erasure (which blanks the name) blanks the key too."""
    decomposed = unicodedata.normalize("NFKD", full_name.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def sort_key(registration: Registration, sort: RegistrationSort) -> tuple[Any, ...]:
    """The values of a registration's keyset under a sort (what its cursor carries)."""
    if sort in ("created", "-created"):
        return (registration.created_us, registration.id)
    if sort == "name":
        return (name_sort_key(registration.full_name), registration.created_us, registration.id)
    return (registration.status, registration.created_us, registration.id)
