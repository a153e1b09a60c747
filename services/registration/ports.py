"""What the registration use cases need from storage: the ``RegistrationStore`` port.

``store.RegistrationMongoStore`` implements it on MongoDB (the only module that touches
MongoDB); ``tests/unit/fakes/registration.py`` implements it in memory. Saving an
aggregate writes its change and the events it recorded in one atomic write, checked
against the revision it was read at, and reports the write to the service's signal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from services.registration.domain import (
    Certificate,
    CertificateSettings,
    EvaluationForm,
    EvaluationResponse,
    Event,
    Institution,
    InstitutionSignIn,
    Registration,
    RegistrationSort,
)

AddOutcome = Literal["added", "email_taken", "reference_taken"]


class EventChanged(Exception):
    """``take_seat`` was given an event that is no longer the stored one (edited,
    cancelled, closed since it was read): nothing was taken; read it again and decide
    again."""


@dataclass(frozen=True)
class IdempotencyRecord:
    """A claimed Idempotency-Key: the request it was first used with and, once done, the
    outcome (``{"registration": {...}}`` or ``{"error": {...}}``)."""

    request_hash: str
    done: bool
    outcome: dict[str, Any] | None = None


class RegistrationStore(Protocol):
    # -- events ---------------------------------------------------------------------

    async def get_event(self, event_id: str) -> Event | None: ...

    async def list_events(self, state: str | None = "published") -> list[Event]:
        """Events in ``state`` (every event with None), soonest first."""
        ...

    async def event_ids(self, states: Sequence[str]) -> list[str]: ...

    async def add_event(self, event: Event) -> None:
        """Insert a new event with its events; ``event_exists`` if the id or code is taken."""
        ...

    async def save_event(self, event: Event) -> bool:
        """Write a changed event and its events, if its revision is still the one read and
        the seats taken meanwhile still fit its capacity; False otherwise (read again).
        ``event_code_taken`` if another event has its code."""
        ...

    # -- seats (atomic counters on the event) ------------------------------------------

    async def registering_event(self, event_id: str) -> Event | None:
        """The event as a registration decides on it: possibly the one this process read
        last (no round trip). Only ``registration_seat`` may rely on it, because its write checks
        that the event is still that one (``EventChanged`` otherwise)."""
        ...

    async def take_seat(self, event: Event, category: str) -> bool:
        """Take one seat for a participant of ``category`` if one is left (a conditional
        atomic increment): within the capacity, within the category's quota if it has one,
        else outside the seats other categories' quotas still reserve."""
        ...

    async def registration_seat(self, event: Event, category: str) -> bool:
        """``take_seat`` for a new registration, whose one write also checks that the
        event is still the one read (its revision and state): if not, nothing is taken
        and ``EventChanged`` is raised."""
        ...

    async def release_seat(self, event: Event, category: str) -> None: ...

    async def take_choice(self, event_id: str, question_id: str, choice: str) -> bool:
        """Take one place on a limited choice if one is left (a conditional increment)."""
        ...

    async def release_choice(self, event_id: str, question_id: str, choice: str) -> None: ...

    async def set_counters(
        self, event_id: str, expected: dict[str, int | None], actual: dict[str, int]
    ) -> bool:
        """Repair counters (``seats_taken``, ``committed``, ``category_taken.<code>``,
        ``choice_taken.<question>.<choice>``) only if nobody moved them since read (None:
        not written yet)."""
        ...

    async def next_waitlist_position(self, event_id: str) -> int: ...

    async def count_confirmed(self, event_id: str) -> int: ...

    async def count_by_category(self, event_id: str, statuses: Sequence[str]) -> dict[str, int]:
        """Registrations in these statuses, per category."""
        ...

    def active_answers(self, event_id: str) -> AsyncIterator[dict[str, Any]]:
        """The answers of the event's active registrations, one dict each."""
        ...

    # -- registrations -------------------------------------------------------------

    async def add_registration(self, registration: Registration) -> AddOutcome:
        """Insert a new registration with its events, unless its email (per event) or its
        reference is taken."""
        ...

    async def save_registration(self, registration: Registration) -> bool:
        """Write a changed registration and its events; False if it changed meanwhile."""
        ...

    async def get_registration(self, registration_id: str) -> Registration | None: ...

    async def find_by_reference(self, reference: str) -> Registration | None: ...

    async def find_by_email(self, event_id: str, email: str) -> Registration | None: ...

    async def find_by_idempotency_key(self, key: str) -> Registration | None: ...

    async def waitlisted(self, event_id: str, limit: int = 500) -> list[Registration]:
        """The waiting list, lowest positions first, up to ``limit``."""
        ...

    async def first_waitlisted(self, event_id: str) -> Registration | None:
        """The waitlisted registration with the lowest position."""
        ...

    async def active_registration_ids(self, event_id: str) -> list[str]:
        """Registrations confirmed, waitlisted or pending approval."""
        ...

    async def unerased_registration_ids(self, event_id: str) -> list[str]: ...

    async def rotate_manage_token(self, registration_id: str, token_hash: str) -> None:
        """Replace the manage token's hash (a replayed answer carries a fresh token)."""
        ...

    # -- organisers' views and exports ------------------------------------------------

    async def page_registrations(
        self,
        event_id: str,
        filters: dict[str, Any],
        after: tuple[Any, ...] | None,
        limit: int,
        sort: RegistrationSort = "created",
    ) -> list[Registration]:
        """One page in a sort's order (``created``: oldest first), strictly after the
        keyset ``after`` (``domain.sort_key`` of the last item of the page before)."""
        ...

    def stream_registrations(
        self, event_id: str, filters: dict[str, Any]
    ) -> AsyncIterator[Registration]:
        """Every matching registration, oldest first, never all in memory."""
        ...

    async def statistics(self, event_id: str) -> dict[str, dict[str, int]]:
        """Counts by status, and of active registrations by cadre, category, via,
        institution, region."""
        ...

    async def personal_data(self, registration_id: str) -> dict[str, Any] | None:
        """Everything held about one registration, without internal bookkeeping."""
        ...

    # -- idempotency keys ----------------------------------------------------------

    async def claim_idempotency_key(
        self, key: str, request_hash: str, now: str
    ) -> tuple[IdempotencyRecord | None, bool]:
        """``(None, False)`` when new, ``(record, False)`` when used before, and
        ``(record, True)`` when an abandoned claim (its lease over) was taken over."""
        ...

    async def complete_idempotency_key(self, key: str, outcome: dict[str, Any]) -> None: ...

    async def release_idempotency_key(self, key: str) -> None: ...

    # -- certificates and evaluation (issue 16) ----------------------------------------

    async def add_certificate(self, certificate: Certificate) -> bool:
        """Insert a new certificate with its events; False if this registration already
        has its certificate of this generation (an issue run twice issues once)."""
        ...

    async def save_certificate(self, certificate: Certificate) -> bool:
        """Write a changed certificate and its events; False if it changed meanwhile."""
        ...

    async def find_certificate(self, serial: str) -> Certificate | None: ...

    async def event_certificates(self, event_id: str) -> list[Certificate]: ...

    async def registration_certificates(self, registration_id: str) -> list[Certificate]:
        """Every certificate of one registration, oldest generation first."""
        ...

    async def get_certificate_settings(self, event_id: str) -> CertificateSettings | None: ...

    async def save_certificate_settings(self, settings: CertificateSettings) -> bool:
        """Insert (rev 0) or write (revision-checked); False if it changed meanwhile."""
        ...

    async def get_evaluation_form(self, event_id: str) -> EvaluationForm | None: ...

    async def save_evaluation_form(self, form: EvaluationForm) -> bool:
        """Insert (rev 0) or write (revision-checked, and only while nobody answered)."""
        ...

    async def count_evaluation_answer(self, event_id: str) -> None:
        """One more answer to the event's form (moves its revision: a replace read before
        it must read again, and then sees the answer)."""
        ...

    async def get_evaluation_response(self, response_id: str) -> EvaluationResponse | None: ...

    async def add_evaluation_response(self, response: EvaluationResponse) -> bool:
        """Insert with its events; False if this attendee has one already."""
        ...

    async def save_evaluation_response(self, response: EvaluationResponse) -> bool: ...

    async def event_evaluation_responses(self, event_id: str) -> list[EvaluationResponse]: ...


# -- institutions (issue 13 B) ---------------------------------------------------------


class InstitutionStore(Protocol):
    """The registry of institutions and the contact persons' sign-in records."""

    async def get_institution(self, code: str) -> Institution | None: ...

    async def list_institutions(
        self, *, kind: str | None = None, region: str | None = None
    ) -> list[Institution]:
        """Every institution (of a kind, in a region), by code."""
        ...

    async def institutions_of_contact(self, email: str) -> list[Institution]:
        """The institutions that have a contact person with this (normalised) email."""
        ...

    async def add_institution(self, institution: Institution) -> None:
        """Insert a new institution; ``institution_exists`` if its code is taken."""
        ...

    async def save_institution(self, institution: Institution) -> bool:
        """Write a changed institution if its revision is still the one read."""
        ...

    async def add_sign_in(self, sign_in: InstitutionSignIn) -> None:
        """Store a sign-in link's nonce with its notice (the email), in one insert."""
        ...

    async def find_sign_in(self, nonce_hash: str) -> InstitutionSignIn | None: ...

    async def consume_sign_in(self, nonce_hash: str, now: str) -> InstitutionSignIn | None:
        """Mark an issued sign-in used, with one conditional write; None if it was used
        before (or never issued): a link opens a session once."""
        ...

    async def forget_sign_ins(self, contact_id: str) -> int:
        """Delete a contact person's sign-in records (erasure)."""
        ...

    async def nominations(self, event_id: str, institution_code: str) -> list[Registration]:
        """The registrations an institution nominated for an event, oldest first."""
        ...
