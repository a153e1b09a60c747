"""An in-memory ``RegistrationStore`` (services/registration/ports.py) for unit tests.

It keeps what the MongoDB store guarantees, so the use cases' rules can be tested
without a server: revision-checked saves, the unique (event, email), reference and
event-code constraints, the conditional seat counter with the categories' quotas (each
quota caps its category and reserves its free seats from the others), the limited
choices' counters, and each save's events appended
to ``outbox`` in the same step (reported to ``signal`` as the real store does).
``before_save`` lets a test act as a concurrent writer just before a save.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import fields
from typing import Any

from services.registration.domain import (
    ACTIVE_STATUSES,
    Certificate,
    CertificateSettings,
    EvaluationForm,
    EvaluationResponse,
    Event,
    Institution,
    InstitutionSignIn,
    Registration,
    RegistrationSort,
    sort_key,
)
from services.registration.ports import AddOutcome, IdempotencyRecord
from shared.envelope import OutboxMessage, wrap
from shared.errors import DomainError
from shared.outbox import WriteSignal
from shared.topics import REGISTRATION, REGISTRATION_NOTICES

SERVICE = "registration"
_LATER = {
    "resend_requested_at",
    "promoted_at",
    "approved_at",
    "approved_by",
    "rejected_at",
    "rejected_by",
    "rejection_reason",
    "cancelled_at",
    "cancelled_by",
    "erased_at",
    "erasure_reason",
}
_INTERNAL = {"manage_token_hash", "idempotency_key", "rev", "events", "id"}


class FakeRegistrationStore:
    def __init__(self, *, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.events: dict[str, Event] = {}
        self.registrations: dict[str, Registration] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.outbox: list[OutboxMessage] = []
        self.written: list[tuple[str, str]] = []
        self.signal.listen(lambda collection, doc_id: self.written.append((collection, doc_id)))
        self.before_save: Callable[[str], None] | None = None
        # Certificates and evaluation (issue 16).
        self.certificates: dict[str, Certificate] = {}
        self.certificate_settings: dict[str, CertificateSettings] = {}
        self.evaluation_forms: dict[str, EvaluationForm] = {}
        self.evaluation_responses: dict[str, EvaluationResponse] = {}
        self.lease_s = 10.0

    # -- helpers for tests ---------------------------------------------------------

    def types(self, aggregate_id: str | None = None, *, topic: str = REGISTRATION) -> list[str]:
        """Short type names (no version) of the saved events (of one aggregate) on one
        stream, in order: the public one unless told."""
        return [
            m.type.removeprefix("tz.go.ega.registration.").rsplit(".v", 1)[0]
            for m in self.outbox
            if m.topic == topic and (aggregate_id is None or m.key == aggregate_id)
        ]

    def notices(self, aggregate_id: str | None = None) -> list[str]:
        """Short type names of the saved notices (registration.notices.v1), in order."""
        return self.types(aggregate_id, topic=REGISTRATION_NOTICES)

    def last(self, type_name: str) -> dict[str, Any]:
        """The payload of the last saved event of this type (any version; a notice by
        its name, e.g. ``ParticipantRegisteredNotice``)."""
        for message in reversed(self.outbox):
            if message.type.removeprefix("tz.go.ega.registration.").rsplit(".v", 1)[0] == (
                type_name
            ):
                return message.data
        raise AssertionError(f"no {type_name} in the outbox: {self.types()}")

    def _emit(self, collection: str, aggregate: Event | Registration) -> None:
        messages = [wrap(e, SERVICE) for e in aggregate.take_events()]
        self.outbox.extend(messages)
        if messages:
            self.signal.written(collection, aggregate.id)

    # -- events --------------------------------------------------------------------

    async def get_event(self, event_id: str) -> Event | None:
        event = self.events.get(event_id)
        return copy.deepcopy(event) if event else None

    async def registering_event(self, event_id: str) -> Event | None:
        return await self.get_event(event_id)

    async def list_events(self, state: str | None = "published") -> list[Event]:
        found = [e for e in self.events.values() if state is None or e.state == state]
        return [copy.deepcopy(e) for e in sorted(found, key=lambda e: e.starts_at)]

    async def event_ids(self, states: Sequence[str]) -> list[str]:
        return [e.id for e in self.events.values() if e.state in states]

    async def add_event(self, event: Event) -> None:
        if event.id in self.events or any(e.code == event.code for e in self.events.values()):
            raise DomainError("event_exists", "An event with this id or code exists already.")
        event.rev, event.seats_taken, event.waitlist_seq = 1, 0, 0
        event.category_taken, event.choice_taken = {}, {}
        stored = copy.deepcopy(event)
        stored.events = []
        self.events[event.id] = stored
        self._emit("events", event)

    async def save_event(self, event: Event) -> bool:
        if self.before_save:
            self.before_save(event.id)
        stored = self.events.get(event.id)
        if stored is None or stored.rev != event.rev or stored.seats_taken > event.capacity:
            return False
        quotas = event.quotas
        if stored.seats_taken + stored._reserved_free(quotas) > event.capacity or any(
            stored.category_taken.get(code, 0) > quota for code, quota in quotas.items()
        ):
            return False
        for qid, limits in event.choice_limits.items():
            if any(stored.choice_taken.get(qid, {}).get(c, 0) > n for c, n in limits.items()):
                return False
        if any(e.code == event.code and e.id != event.id for e in self.events.values()):
            raise DomainError("event_code_taken", "Another event has this code.", field="code")
        counters = (
            stored.seats_taken,
            stored.waitlist_seq,
            copy.deepcopy(stored.category_taken),
            copy.deepcopy(stored.choice_taken),
        )
        event.rev += 1
        new = copy.deepcopy(event)
        new.events = []
        new.seats_taken, new.waitlist_seq, new.category_taken, new.choice_taken = counters
        self.events[event.id] = new
        self._emit("events", event)
        return True

    # -- seats -----------------------------------------------------------------------

    async def registration_seat(self, event: Event, category: str) -> bool:
        return await self.take_seat(event, category)

    async def take_seat(self, event: Event, category: str) -> bool:
        stored = self.events.get(event.id)
        if stored is None or stored.seats_taken >= stored.capacity:
            return False
        quotas = stored.quotas
        taken = stored.category_taken.get(category, 0)
        if category in quotas:
            if taken >= quotas[category]:
                return False
        elif stored.seats_taken + stored._reserved_free() >= stored.capacity:
            return False
        stored.seats_taken += 1
        stored.category_taken[category] = taken + 1
        return True

    async def release_seat(self, event: Event, category: str) -> None:
        event = self.events.get(event.id)
        if event is not None and event.seats_taken > 0:
            event.seats_taken -= 1
            event.category_taken[category] = event.category_taken.get(category, 0) - 1

    async def take_choice(self, event_id: str, question_id: str, choice: str) -> bool:
        event = self.events.get(event_id)
        if event is None:
            return False
        limit = event.choice_limits.get(question_id, {}).get(choice)
        picks = event.choice_taken.setdefault(question_id, {})
        if limit is not None and picks.get(choice, 0) >= limit:
            return False
        picks[choice] = picks.get(choice, 0) + 1
        return True

    async def release_choice(self, event_id: str, question_id: str, choice: str) -> None:
        event = self.events.get(event_id)
        picks = event.choice_taken.get(question_id, {}) if event else {}
        if picks.get(choice, 0) > 0:
            picks[choice] -= 1

    async def set_counters(
        self, event_id: str, expected: dict[str, int | None], actual: dict[str, int]
    ) -> bool:
        event = self.events.get(event_id)
        if event is None:
            return False
        now = event.counters()
        if any(now.get(path) != value for path, value in expected.items()):
            return False
        for path, value in actual.items():
            kind, _, rest = path.partition(".")
            if kind == "seats_taken":
                event.seats_taken = value
            elif kind == "committed":
                event.committed = value
            elif kind == "category_taken":
                event.category_taken[rest] = value
            else:
                qid, _, code = rest.partition(".")
                event.choice_taken.setdefault(qid, {})[code] = value
        return True

    async def next_waitlist_position(self, event_id: str) -> int:
        event = self.events.get(event_id)
        if event is None:
            return 0
        event.waitlist_seq += 1
        return event.waitlist_seq

    async def count_confirmed(self, event_id: str) -> int:
        return sum(
            1
            for r in self.registrations.values()
            # pending_payment holds its seat too (issue 14)
            if r.event_id == event_id and r.status in ("confirmed", "pending_payment")
        )

    async def count_by_category(self, event_id: str, statuses: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.registrations.values():
            if r.event_id == event_id and r.status in statuses:
                counts[r.category] = counts.get(r.category, 0) + 1
        return counts

    async def active_answers(self, event_id: str) -> AsyncIterator[dict[str, Any]]:
        for r in list(self.registrations.values()):
            if r.event_id == event_id and r.is_active:
                yield copy.deepcopy(r.answers)

    # -- registrations -------------------------------------------------------------

    async def add_registration(self, registration: Registration) -> AddOutcome:
        for other in self.registrations.values():
            if other.reference == registration.reference:
                return "reference_taken"
            if other.event_id == registration.event_id and other.email == registration.email:
                return "email_taken"
        registration.rev = 1
        stored = copy.deepcopy(registration)
        stored.events = []
        self.registrations[registration.id] = stored
        self._emit("registrations", registration)
        return "added"

    async def save_registration(self, registration: Registration) -> bool:
        if self.before_save:
            self.before_save(registration.id)
        stored = self.registrations.get(registration.id)
        if stored is None or stored.rev != registration.rev:
            return False
        for other in self.registrations.values():
            if (
                other.id != registration.id
                and other.event_id == registration.event_id
                and other.email == registration.email
            ):
                raise AssertionError("the unique (event, email) index would refuse this save")
        registration.rev += 1
        new = copy.deepcopy(registration)
        new.events = []
        self.registrations[registration.id] = new
        self._emit("registrations", registration)
        return True

    def _find(self, match: Callable[[Registration], bool]) -> Registration | None:
        for registration in self.registrations.values():
            if match(registration):
                return copy.deepcopy(registration)
        return None

    async def get_registration(self, registration_id: str) -> Registration | None:
        return self._find(lambda r: r.id == registration_id)

    async def find_by_reference(self, reference: str) -> Registration | None:
        return self._find(lambda r: r.reference == reference)

    async def find_by_email(self, event_id: str, email: str) -> Registration | None:
        return self._find(lambda r: r.event_id == event_id and r.email == email)

    async def find_by_idempotency_key(self, key: str) -> Registration | None:
        return self._find(lambda r: r.idempotency_key == key)

    async def waitlisted(self, event_id: str, limit: int = 500) -> list[Registration]:
        waiting = [
            r
            for r in self.registrations.values()
            if r.event_id == event_id and r.status == "waitlisted"
        ]
        waiting.sort(key=lambda r: r.waitlist_position or 0)
        return [copy.deepcopy(r) for r in waiting[:limit]]

    async def first_waitlisted(self, event_id: str) -> Registration | None:
        waiting = [
            r
            for r in self.registrations.values()
            if r.event_id == event_id and r.status == "waitlisted"
        ]
        waiting.sort(key=lambda r: r.waitlist_position or 0)
        return copy.deepcopy(waiting[0]) if waiting else None

    async def active_registration_ids(self, event_id: str) -> list[str]:
        return [
            r.id
            for r in self.registrations.values()
            if r.event_id == event_id and r.status in ACTIVE_STATUSES
        ]

    async def unerased_registration_ids(self, event_id: str) -> list[str]:
        return [
            r.id for r in self.registrations.values() if r.event_id == event_id and not r.erased_at
        ]

    async def rotate_manage_token(self, registration_id: str, token_hash: str) -> None:
        stored = self.registrations.get(registration_id)
        if stored is not None:
            stored.manage_token_hash = token_hash
            stored.rev += 1

    # -- organisers' views ---------------------------------------------------------

    def _matching(self, event_id: str, filters: dict[str, Any]) -> list[Registration]:
        found = []
        for r in self.registrations.values():
            if r.event_id != event_id:
                continue
            if any(
                filters.get(name) and getattr(r, name) != filters[name]
                for name in (
                    "status",
                    "cadre",
                    "category",
                    "via",
                    "institution_code",
                    "institution",
                    "region",
                )
            ):
                continue
            text = (filters.get("q") or "").lower()
            haystack = (r.full_name, r.email, r.institution, r.reference, r.position or "")
            if text and not any(text in value.lower() for value in haystack):
                continue
            found.append(r)
        found.sort(key=lambda r: (r.created_us, r.id))
        return [_listed(r) for r in found]

    async def page_registrations(
        self,
        event_id: str,
        filters: dict[str, Any],
        after: tuple[Any, ...] | None,
        limit: int,
        sort: RegistrationSort = "created",
    ) -> list[Registration]:
        descending = sort == "-created"
        rows = sorted(
            self._matching(event_id, filters),
            key=lambda r: sort_key(r, sort),
            reverse=descending,
        )
        if after is not None:
            key = tuple(after)
            rows = [
                r
                for r in rows
                if (sort_key(r, sort) < key if descending else sort_key(r, sort) > key)
            ]
        return rows[:limit]

    async def stream_registrations(
        self, event_id: str, filters: dict[str, Any]
    ) -> AsyncIterator[Registration]:
        for registration in self._matching(event_id, filters):
            yield registration

    async def statistics(self, event_id: str) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for name in ("status", "cadre", "category", "via", "institution", "region"):
            counts: dict[str, int] = {}
            for r in self.registrations.values():
                if r.event_id != event_id or (name != "status" and not r.is_active):
                    continue
                value = getattr(r, name)
                key = str(value) if value is not None else "unspecified"
                counts[key] = counts.get(key, 0) + 1
            result[name] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        return result

    async def personal_data(self, registration_id: str) -> dict[str, Any] | None:
        stored = self.registrations.get(registration_id)
        if stored is None:
            return None
        data = {
            f.name: copy.deepcopy(getattr(stored, f.name))
            for f in fields(Registration)
            if f.name not in _INTERNAL
            and not (f.name in _LATER and getattr(stored, f.name) is None)
        }
        data["id"] = stored.id
        return data

    # -- idempotency keys ----------------------------------------------------------

    async def claim_idempotency_key(
        self, key: str, request_hash: str, now: str
    ) -> tuple[IdempotencyRecord | None, bool]:
        claimed_at = time.time()
        record = self.idempotency.get(key)
        if record is None:
            self.idempotency[key] = {
                "request_hash": request_hash,
                "state": "pending",
                "created_at": now,
                "claimed_at": claimed_at,
            }
            return None, False
        seen = _record(record)
        if (
            record["state"] == "pending"
            and record["request_hash"] == request_hash
            and record["claimed_at"] < claimed_at - self.lease_s
        ):
            record["claimed_at"] = claimed_at
            return seen, True
        return seen, False

    async def complete_idempotency_key(self, key: str, outcome: dict[str, Any]) -> None:
        self.idempotency[key].update(state="done", outcome=copy.deepcopy(outcome))

    async def release_idempotency_key(self, key: str) -> None:
        if self.idempotency.get(key, {}).get("state") == "pending":
            del self.idempotency[key]

    # -- certificates and evaluation (issue 16) ----------------------------------------

    def _stored(self, aggregate: Any) -> Any:
        stored = copy.deepcopy(aggregate)
        stored.events = []
        return stored

    async def add_certificate(self, certificate: Certificate) -> bool:
        for other in self.certificates.values():
            if other.issue_key == certificate.issue_key or other.serial == certificate.serial:
                return False
        certificate.rev = 1
        self.certificates[certificate.id] = self._stored(certificate)
        self._emit("certificates", certificate)
        return True

    async def save_certificate(self, certificate: Certificate) -> bool:
        stored = self.certificates.get(certificate.id)
        if stored is None or stored.rev != certificate.rev:
            return False
        certificate.rev += 1
        self.certificates[certificate.id] = self._stored(certificate)
        self._emit("certificates", certificate)
        return True

    async def find_certificate(self, serial: str) -> Certificate | None:
        for certificate in self.certificates.values():
            if certificate.serial == serial:
                return copy.deepcopy(certificate)
        return None

    async def event_certificates(self, event_id: str) -> list[Certificate]:
        found = [copy.deepcopy(c) for c in self.certificates.values() if c.event_id == event_id]
        return sorted(found, key=lambda c: (c.registration_id, c.generation))

    async def registration_certificates(self, registration_id: str) -> list[Certificate]:
        found = [
            copy.deepcopy(c)
            for c in self.certificates.values()
            if c.registration_id == registration_id
        ]
        return sorted(found, key=lambda c: c.generation)

    def _upsert(self, table: dict[str, Any], key: str, aggregate: Any) -> bool:
        stored = table.get(key)
        if (stored.rev if stored else 0) != aggregate.rev:
            return False
        aggregate.rev += 1
        table[key] = self._stored(aggregate)
        return True

    async def get_certificate_settings(self, event_id: str) -> CertificateSettings | None:
        found = self.certificate_settings.get(event_id)
        return copy.deepcopy(found) if found else None

    async def save_certificate_settings(self, settings: CertificateSettings) -> bool:
        return self._upsert(self.certificate_settings, settings.event_id, settings)

    async def get_evaluation_form(self, event_id: str) -> EvaluationForm | None:
        found = self.evaluation_forms.get(event_id)
        return copy.deepcopy(found) if found else None

    async def save_evaluation_form(self, form: EvaluationForm) -> bool:
        return self._upsert(self.evaluation_forms, form.event_id, form)

    async def count_evaluation_answer(self, event_id: str) -> None:
        form = self.evaluation_forms.get(event_id)
        if form is not None:
            form.answers_count += 1
            form.rev += 1

    async def get_evaluation_response(self, response_id: str) -> EvaluationResponse | None:
        found = self.evaluation_responses.get(response_id)
        return copy.deepcopy(found) if found else None

    async def add_evaluation_response(self, response: EvaluationResponse) -> bool:
        if response.id in self.evaluation_responses:
            return False
        response.rev = 1
        self.evaluation_responses[response.id] = self._stored(response)
        self._emit("evaluation_responses", response)
        return True

    async def save_evaluation_response(self, response: EvaluationResponse) -> bool:
        stored = self.evaluation_responses.get(response.id)
        if stored is None or stored.rev != response.rev:
            return False
        response.rev += 1
        self.evaluation_responses[response.id] = self._stored(response)
        self._emit("evaluation_responses", response)
        return True

    async def event_evaluation_responses(self, event_id: str) -> list[EvaluationResponse]:
        return [
            copy.deepcopy(r) for r in self.evaluation_responses.values() if r.event_id == event_id
        ]


def _record(record: dict[str, Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        request_hash=record["request_hash"],
        done=record["state"] == "done",
        outcome=copy.deepcopy(record.get("outcome")),
    )


def _listed(registration: Registration) -> Registration:
    """As a list shows it: without the token hash (the real store projects it away)."""
    shown = copy.deepcopy(registration)
    shown.manage_token_hash = None
    return shown


# -- institutions (issue 13 B) -----------------------------------------------------------


class FakeInstitutionStore:
    """An in-memory ``InstitutionStore``: revision-checked saves, the unique code, and a
    sign-in's notice saved with its nonce in one step; ``consume_sign_in`` is the one
    conditional write (issued → used). Nominations are read from ``registrations`` (the
    fake registration store's, when given)."""

    def __init__(self, registrations: FakeRegistrationStore | None = None) -> None:
        self.registration_store = registrations or FakeRegistrationStore()
        self.signal = self.registration_store.signal
        self.outbox = self.registration_store.outbox
        self.institutions: dict[str, Institution] = {}
        self.sign_ins: dict[str, InstitutionSignIn] = {}

    def _emit(self, collection: str, aggregate: Institution | InstitutionSignIn) -> None:
        messages = [wrap(e, SERVICE) for e in aggregate.take_events()]
        if messages:
            self.outbox.extend(messages)
            self.signal.written(collection, aggregate.id)

    async def get_institution(self, code: str) -> Institution | None:
        found = self.institutions.get(code)
        return copy.deepcopy(found) if found else None

    async def list_institutions(
        self, *, kind: str | None = None, region: str | None = None
    ) -> list[Institution]:
        return [
            copy.deepcopy(i)
            for code, i in sorted(self.institutions.items())
            if (kind is None or i.kind == kind) and (region is None or i.region == region)
        ]

    async def institutions_of_contact(self, email: str) -> list[Institution]:
        return [
            copy.deepcopy(i)
            for i in self.institutions.values()
            if any(c["email"] == email for c in i.contacts)
        ]

    async def add_institution(self, institution: Institution) -> None:
        if institution.code in self.institutions:
            raise DomainError(
                "institution_exists", "An institution with this code exists already.", field="code"
            )
        self._emit("institutions", institution)
        institution.rev = 1
        self.institutions[institution.code] = copy.deepcopy(institution)

    async def save_institution(self, institution: Institution) -> bool:
        stored = self.institutions.get(institution.code)
        if stored is None or stored.rev != institution.rev:
            return False
        self._emit("institutions", institution)
        institution.rev += 1
        self.institutions[institution.code] = copy.deepcopy(institution)
        return True

    async def add_sign_in(self, sign_in: InstitutionSignIn) -> None:
        self._emit("institution_sign_ins", sign_in)
        sign_in.rev = 1
        self.sign_ins[sign_in.nonce_hash] = copy.deepcopy(sign_in)

    async def find_sign_in(self, nonce_hash: str) -> InstitutionSignIn | None:
        found = self.sign_ins.get(nonce_hash)
        return copy.deepcopy(found) if found else None

    async def consume_sign_in(self, nonce_hash: str, now: str) -> InstitutionSignIn | None:
        found = self.sign_ins.get(nonce_hash)
        if found is None or found.state != "issued":
            return None
        found.state = "used"
        found.rev += 1
        return copy.deepcopy(found)

    async def forget_sign_ins(self, contact_id: str) -> int:
        gone = [h for h, s in self.sign_ins.items() if s.contact_id == contact_id]
        for h in gone:
            del self.sign_ins[h]
        return len(gone)

    async def nominations(self, event_id: str, institution_code: str) -> list[Registration]:
        found = [
            r
            for r in self.registration_store.registrations.values()
            if r.event_id == event_id and getattr(r, "institution_code", None) == institution_code
        ]
        return [copy.deepcopy(r) for r in sorted(found, key=lambda r: (r.created_at, r.id))]
