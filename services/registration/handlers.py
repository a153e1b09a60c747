"""Registration use cases: load the aggregates, let them decide, save them.

Each use case is a plain ``async`` function over a ``Context``: the store port, the
clock, the ticket signer. The aggregates (``domain.Event``, ``domain.Registration``)
enforce the rules and record the integration events; the store writes a change and its
events in one atomic write and tells the relay. Seats are taken and given back through
the store's atomic counter, never by counting.

Personal data (Tanzania's Personal Data Protection Act, 2022) is handled here too: a
participant downloads what is held about them (``export_own_data``) or has it erased
(``erase_registration``: an active registration is cancelled first, its seat goes to
the waiting list, then the data is replaced and ``PersonalDataErased`` tells every
service to remove its copy); the retention rule anonymises the registrations of events
that ended more than ``retention_days`` ago (``apply_retention``, run by
``workers.run_retention`` and by ops on demand).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from services.registration.domain import (
    ACTIVE_STATUSES,
    INSTITUTION_LINK_PURPOSE,
    LINK_KEY_PURPOSE,
    NOMINATION_CSV_COLUMNS,
    NOMINATION_CSV_REQUIRED,
    SEAT_HOLDING,
    SESSION_VALIDITY,
    SIGN_IN_VALIDITY,
    VIAS,
    AnswerTally,
    Certificate,
    CertificateSettings,
    CertificateSettingsChange,
    ContactPersonSpec,
    DomainError,
    EvaluationForm,
    EvaluationFormSpec,
    EvaluationResponse,
    Event,
    EventChange,
    EventSpec,
    Institution,
    InstitutionChange,
    InstitutionLinkSigner,
    InstitutionSignIn,
    InstitutionSpec,
    LinkSigner,
    Registration,
    RegistrationChange,
    RegistrationRequest,
    RegistrationSort,
    RowProblem,
    TicketSigner,
    Via,
    check_nominable,
    csv_problems,
    evaluation_results,
    hash_token,
    local_day,
    new_manage_token,
    new_reference,
    new_registration_id,
    nomination_category,
    nomination_payload,
    normalise_email,
    normalise_serial,
    parse_institutions_csv,
    read_csv,
    seat_status,
    self_service_url,
    tokens_match,
)
from services.registration.ports import EventChanged, InstitutionStore, RegistrationStore
from services.registration.registrants_csv import read_registrants
from shared.logging import get_logger
from shared.timeutil import iso, utcnow

SERVICE = "registration"
log = get_logger("privacy")
T = TypeVar("T")
_ATTEMPTS = 20
# Called once the event is known to take this registration now, before a seat is taken;
# it may raise to refuse the attempt (the HTTP layer's per-email rate limit does).
Admission = Callable[[], Awaitable[None]]


@dataclass
class Context:
    """What the use cases need: the store port, the ticket and link signers, the clock."""

    store: RegistrationStore
    signer: TicketSigner
    notice_version: str
    clock: Callable[[], datetime] = field(default=utcnow)
    # Self-service links; by default keyed from the ticket secret (as app.link_secret is).
    links: LinkSigner = None  # type: ignore[assignment]
    # The public base URL of this service's pages: every notice's self_service_url starts
    # with it (settings.public_url; app.public_url decides the default).
    public_url: str = "http://127.0.0.1:8001"
    # Institutions (issue 13 B): the registry's store, the contact persons' sign-in
    # links and sessions (keyed from the ticket secret for that purpose by default).
    institutions: InstitutionStore = None  # type: ignore[assignment]
    institution_links: InstitutionLinkSigner = None  # type: ignore[assignment]
    sign_in_validity: timedelta = SIGN_IN_VALIDITY
    session_validity: timedelta = SESSION_VALIDITY

    def __post_init__(self) -> None:
        if self.links is None:
            self.links = LinkSigner(self.signer.derive_key(LINK_KEY_PURPOSE))
        if self.institution_links is None:
            self.institution_links = InstitutionLinkSigner(
                self.signer.derive_key(INSTITUTION_LINK_PURPOSE)
            )


@dataclass(frozen=True)
class Registered:
    id: str
    reference: str
    status: str
    manage_token: str
    waitlist_position: int | None


@dataclass(frozen=True)
class RegistrationOutcome:
    """What a registration request gets: the registration, or the rule that refused it.

    ``replayed`` is set when the answer is the first one given to an earlier request
    with the same Idempotency-Key (a replayed registration carries a fresh manage token).
    """

    registered: Registered | None = None
    error: DomainError | None = None
    replayed: bool = False


@dataclass(frozen=True)
class CheckedIn:
    registration: Registration
    day: str
    checked_in_at: str


# -- loading ---------------------------------------------------------------------------------


async def _event(ctx: Context, event_id: str) -> Event:
    event = await ctx.store.get_event(event_id)
    if event is None:
        raise DomainError("event_not_found", "No such event.")
    return event


async def _registration(ctx: Context, registration_id: str) -> Registration:
    registration = await ctx.store.get_registration(registration_id)
    if registration is None:
        raise DomainError("registration_not_found", "No such registration.")
    return registration


async def _save(ctx: Context, registration: Registration) -> bool:
    """Save a changed registration; each notice to the participant carries their link."""
    registration.link_notices(ctx.links, ctx.public_url, ctx.clock())
    return await ctx.store.save_registration(registration)


async def _change_registration(
    ctx: Context, registration_id: str, decide: Callable[[Registration], T]
) -> tuple[Registration, T]:
    """Read, decide, write with a revision check; on a concurrent change, again.

    ``decide`` calls the aggregate (raising DomainError to refuse); nothing is written
    when it recorded no event (nothing changed).
    """
    for _ in range(_ATTEMPTS):
        registration = await _registration(ctx, registration_id)
        result = decide(registration)
        if not registration.events:
            return registration, result
        if await _save(ctx, registration):
            return registration, result
        await asyncio.sleep(random.uniform(0, 0.01))
    raise DomainError("concurrent_update", "The registration is changing; try again.")


# -- events catalogue ------------------------------------------------------------------------


async def create_event(ctx: Context, spec: EventSpec) -> Event:
    """An organiser creates an event; a published one is announced on the stream."""
    event = Event.create(spec, ctx.clock())
    await ctx.store.add_event(event)
    return event


async def list_events(ctx: Context, state: str | None = "published") -> list[Event]:
    """Events in ``state`` (None: every state), soonest first. The public sees the
    published ones; staff may ask for the others (the API checks who asks)."""
    return await ctx.store.list_events(state)


async def get_public_event(ctx: Context, event_id: str) -> Event:
    """An event the public may see (not a draft), else ``event_not_found``."""
    event = await ctx.store.get_event(event_id)
    if event is None or event.state == "draft":
        raise DomainError("event_not_found", "No such event.")
    return event


async def get_event(ctx: Context, event_id: str) -> Event:
    """Any event, drafts included (staff), else ``event_not_found``."""
    return await _event(ctx, event_id)


async def update_event(ctx: Context, event_id: str, change: EventChange) -> Event:
    """An organiser changes an event; publishing, cancelling or editing is announced.

    A raised capacity promotes waitlisted participants into the new seats. Cancelling an
    event cancels its active registrations, each with its own ``RegistrationCancelled``.
    """
    catalogue = change.categories is not None or change.questions is not None
    for _ in range(_ATTEMPTS):
        event = await _event(ctx, event_id)
        capacity_before, quotas_before = event.capacity, event.quotas
        in_use = (
            await ctx.store.count_by_category(event_id, ACTIVE_STATUSES)
            if change.categories is not None
            else {}
        )
        changed = event.change(change, ctx.clock(), in_use=in_use)
        if not changed:
            return event
        if await ctx.store.save_event(event):
            break
    else:
        raise DomainError("concurrent_update", "The event is changing; try again.")
    if "state" in changed and event.state == "cancelled":
        await _cancel_all(ctx, event_id, change.cancellation_reason)
        return await _event(ctx, event_id)
    if "questions" in changed:
        # A limit given to a choice counts the places its earlier answers hold.
        await reconcile_seats(ctx, event_id)
    if event.capacity > capacity_before or (catalogue and event.quotas != quotas_before):
        await promote_waitlisted(ctx, event_id, max(1, event.capacity - event.seats_taken))
    return await _event(ctx, event_id)


async def _cancel_all(ctx: Context, event_id: str, reason: str | None) -> None:
    for registration_id in await ctx.store.active_registration_ids(event_id):
        try:
            await cancel_registration(
                ctx, registration_id, by="organiser", reason=reason or "event cancelled"
            )
        except DomainError:
            continue  # cancelled meanwhile by the participant


# -- registering -----------------------------------------------------------------------------


async def register_participant(
    ctx: Context,
    event_id: str,
    request: RegistrationRequest,
    *,
    idempotency_key: str | None = None,
    admit: Admission | None = None,
    via: Via = "self",
    institution_code: str | None = None,
    day: str | None = None,
    by: str | None = None,
) -> Registered:
    """Register one participant: confirmed while seats last, then waitlisted in order.

    The request names a category of the event (``Event.check_can_register``: a category
    that needs a nomination refuses ``via="self"``) and answers its questions
    (``Event.check_answers``). A place on a limited choice, then the seat (within the
    category's quota), are taken with the store's conditional atomic increments; the
    registration and its ``ParticipantRegistered`` event are one insert. The unique
    (event, email) index — not a prior lookup — guarantees one registration per email
    per event. ``admit`` is awaited only for an attempt that can succeed (the event
    exists and takes this registration now), so a refused attempt never counts against
    the person.

    ``via`` says how the registration comes: ``self``, ``nomination`` (by an institution,
    ``institution_code``), ``import`` (an organiser's file) or ``walk_in`` (at the door:
    confirmed with a seat or refused with ``event_full``, and checked in at once for
    ``day``, today by default). Approval, where the event or category needs it, applies
    to self-registrations and nominations; an organiser's import or a registrar's walk-in
    is itself the decision. ``by`` is the staff member who registered them (their history
    names them; without it, ``staff``).
    """
    if via not in VIAS:
        raise ValueError(f"unknown via {via!r}")
    # The event as this process last read it: the seat's one conditional write checks it
    # is still the stored one (EventChanged: read it, decide again). A path without that
    # write (approval) decides on the event as stored.
    event = await ctx.store.registering_event(event_id)
    fresh = False
    for _ in range(_ATTEMPTS):
        if event is None:
            raise DomainError("event_not_found", "No such event.")
        moment = ctx.clock()
        try:
            category = event.check_can_register(request.category, moment, via=via)
            answers = event.check_answers(category.code, request.answers)
            if via == "walk_in" and day is not None:
                event.check_event_day(day)
        except DomainError:
            if fresh:
                raise
            # Refused by this process's copy: the stored event decides (reopened?).
            event, fresh = await _event(ctx, event_id), True
            continue
        approval = via in ("self", "nomination") and event.needs_approval(category)
        if approval and not fresh:
            event, fresh = await _event(ctx, event_id), True
            continue
        if admit is not None:
            await admit()
            admit = None  # awaited once, however often the event changed meanwhile
        try:
            status, seat_taken, position, picks = await _take_place(
                ctx, event, category.code, answers, approval=approval, via=via
            )
        except EventChanged:
            event, fresh = await _event(ctx, event_id), True
            continue
        break
    else:
        raise DomainError("concurrent_update", "The event is changing; try again.")

    registration_id = new_registration_id()
    token = new_manage_token()
    for _ in range(5):  # a reference collision is astronomically rare; retry anyway
        registration = Registration.register(
            registration_id=registration_id,
            reference=new_reference(),
            event=event,
            request=request,
            status=status,
            waitlist_position=position,
            manage_token_hash=hash_token(token),
            notice_version=ctx.notice_version,
            signer=ctx.signer,
            now=moment,
            idempotency_key=idempotency_key,
            answers=answers,
            via=via,
            institution_code=institution_code,
            by=by,
        )
        if via == "walk_in":
            registration.check_in(event, moment, day, by=by)
        registration.link_notices(ctx.links, ctx.public_url, moment)
        added = await ctx.store.add_registration(registration)
        if added == "added":
            break
        if added == "email_taken":
            await _release_choices(ctx, event_id, picks)
            if seat_taken:
                # The seat goes back; someone waitlisted meanwhile gets it.
                await ctx.store.release_seat(event, category.code)
                await promote_waitlisted(ctx, event_id, 1)
            await request_resend(ctx, event_id, request.email)
            raise _already_registered()
    else:  # pragma: no cover
        raise RuntimeError("could not allocate a unique reference")
    return Registered(registration.id, registration.reference, status, token, position)


async def _take_place(
    ctx: Context,
    event: Event,
    category: str,
    answers: dict[str, Any],
    *,
    approval: bool,
    via: Via,
) -> tuple[str, bool, int | None, list[tuple[str, str]]]:
    """The places a new registration takes: its limited choices, then a seat (or none
    while it awaits approval, or a place on the waiting list). Returns the status, whether
    a seat was taken, the waiting-list position and the choices taken; on any failure
    (``EventChanged`` included) what was taken is given back."""
    picks = await _take_choices(ctx, event, answers)
    try:
        if approval:
            return "pending_approval", False, None, picks
        if await ctx.store.registration_seat(event, category):
            # A category with a fee holds the seat until its bill is paid (issue 14).
            return seat_status(event, category), True, None, picks
        if via == "walk_in":
            raise DomainError(
                "event_full",
                "No seat is left for this category; a walk-in cannot be taken.",
                field="category",
            )
        return "waitlisted", False, await ctx.store.next_waitlist_position(event.id), picks
    except BaseException:
        await _release_choices(ctx, event.id, picks)
        raise


async def _take_choices(
    ctx: Context, event: Event, answers: dict[str, Any]
) -> list[tuple[str, str]]:
    """Take a place on each limited choice of the answers, or none (``choice_full``)."""
    taken: list[tuple[str, str]] = []
    for question_id, choice in event.limited_picks(answers):
        if not await ctx.store.take_choice(event.id, question_id, choice):
            await _release_choices(ctx, event.id, taken)
            raise DomainError(
                "choice_full",
                f"No places are left on {choice!r}.",
                field=f"answers.{question_id}",
                details={"question": question_id, "choice": choice},
            )
        taken.append((question_id, choice))
    return taken


async def _release_choices(ctx: Context, event_id: str, picks: list[tuple[str, str]]) -> None:
    for question_id, choice in picks:
        await ctx.store.release_choice(event_id, question_id, choice)


def _already_registered() -> DomainError:
    return DomainError(
        "already_registered",
        "This email is already registered for this event. "
        "We have sent the confirmation again to the address on file.",
    )


async def request_resend(ctx: Context, event_id: str, email: str) -> None:
    """Ask notification to resend the confirmation to the registration on file."""
    existing = await ctx.store.find_by_email(event_id, email)
    if existing is None:
        return
    event = await ctx.store.get_event(event_id)
    if event is None:
        return
    try:
        await _change_registration(
            ctx, existing.id, lambda r: r.request_resend(event, ctx.signer, ctx.clock())
        )
    except DomainError as exc:  # erased meanwhile: nothing to resend
        if exc.code != "registration_not_found":
            raise


def request_fingerprint(event_id: str, body: dict[str, Any]) -> str:
    """Hash of a request, to tell a retry from a different request under the same key."""
    canonical = json.dumps({"event_id": event_id, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def register_idempotently(
    ctx: Context,
    event_id: str,
    request: RegistrationRequest,
    idempotency_key: str | None = None,
    *,
    admit: Admission | None = None,
) -> RegistrationOutcome:
    """Register, answering a retry with the first answer (the Idempotency-Key protocol).

    Without a key it is the plain registration. With one (scoped to the event), the first
    request claims the key, registers and stores its outcome — a registration or the
    rule that refused it — and a retry with the same body gets that outcome again
    (``replayed``); the same key with another body is refused
    (``idempotency_key_reused``), and a retry while the first is still running gets
    ``request_in_progress``. A claim abandoned midway (its process or MongoDB went
    away) is taken over after a lease: the retry answers with what the first attempt
    stored, or registers now.
    """
    if idempotency_key is None:
        return await _register_outcome(ctx, event_id, request, admit=admit)

    key = f"{event_id}:{idempotency_key}"
    fingerprint = request_fingerprint(event_id, request.model_dump(mode="json"))
    previous, taken_over = await ctx.store.claim_idempotency_key(key, fingerprint, iso(ctx.clock()))
    if taken_over:
        done = await ctx.store.find_by_idempotency_key(key)
        if done is not None:
            outcome = {"registration": _stored_answer(done)}
            await ctx.store.complete_idempotency_key(key, outcome)
            return await _replay(ctx, outcome)
        previous = None
    if previous is not None:
        if previous.request_hash != fingerprint:
            raise DomainError(
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request.",
                field="Idempotency-Key",
            )
        if not previous.done:
            raise DomainError(
                "request_in_progress",
                "The first request with this key is still being processed.",
            )
        return await _replay(ctx, previous.outcome or {})
    try:
        result = await _register_outcome(ctx, event_id, request, idempotency_key=key, admit=admit)
    except Exception:
        await ctx.store.release_idempotency_key(key)
        raise
    await ctx.store.complete_idempotency_key(key, _stored_outcome(result))
    return result


async def _register_outcome(
    ctx: Context,
    event_id: str,
    request: RegistrationRequest,
    *,
    idempotency_key: str | None = None,
    admit: Admission | None = None,
) -> RegistrationOutcome:
    try:
        registered = await register_participant(
            ctx, event_id, request, idempotency_key=idempotency_key, admit=admit
        )
    except DomainError as exc:
        return RegistrationOutcome(error=exc)
    return RegistrationOutcome(registered=registered)


def _stored_answer(registration: Registration | Registered) -> dict[str, Any]:
    """A registration as an idempotency record keeps it: without its manage token."""
    return {
        "id": registration.id,
        "reference": registration.reference,
        "status": registration.status,
        "waitlist_position": registration.waitlist_position,
    }


def _stored_outcome(result: RegistrationOutcome) -> dict[str, Any]:
    if result.registered is not None:
        return {"registration": _stored_answer(result.registered)}
    assert result.error is not None
    error = result.error
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "field": error.field,
            "details": error.details,
        }
    }


async def _replay(ctx: Context, outcome: dict[str, Any]) -> RegistrationOutcome:
    """The first answer again. The manage token is stored only as a hash, so a replayed
    registration carries a fresh token (the registration's token is rotated to it)."""
    if "registration" in outcome:
        answer = outcome["registration"]
        token = new_manage_token()
        await ctx.store.rotate_manage_token(answer["id"], hash_token(token))
        registered = Registered(
            id=answer["id"],
            reference=answer["reference"],
            status=answer["status"],
            manage_token=token,
            waitlist_position=answer.get("waitlist_position"),
        )
        return RegistrationOutcome(registered=registered, replayed=True)
    error = outcome.get("error") or {}
    refused = DomainError(
        error.get("code", "error"),
        error.get("message", ""),
        field=error.get("field"),
        details=error.get("details"),
    )
    return RegistrationOutcome(error=refused, replayed=True)


# -- walk-ins and imports --------------------------------------------------------------------


@dataclass(frozen=True)
class WalkedIn:
    registered: Registered
    registration: Registration
    day: str


async def register_walk_in(
    ctx: Context,
    event_id: str,
    request: RegistrationRequest,
    *,
    day: str | None = None,
    by: str | None = None,
) -> WalkedIn:
    """A registrar or organiser (``by``) registers someone at the door: confirmed with a
    seat of their category (``event_full`` when none is left) and checked in at once for
    ``day`` (today at the venue unless given)."""
    registered = await register_participant(ctx, event_id, request, via="walk_in", day=day, by=by)
    registration = await _registration(ctx, registered.id)
    return WalkedIn(registered, registration, next(iter(registration.checkins)))


async def event_for_organisers(ctx: Context, event_id: str) -> Event:
    """An event in any state (organisers see drafts too)."""
    return await _event(ctx, event_id)


async def import_registrants(
    ctx: Context, event_id: str, body: bytes, *, dry_run: bool, by: str | None = None
) -> dict[str, Any]:
    """An organiser's CSV file of registrants: a report, or all of them registered.

    Every row is checked before anything is written (fields, category, answers, emails
    unique within the file and not yet registered, places left on limited choices). A
    dry run answers the report; an import of a file with any problem is refused
    (``import_invalid``, each row's problems) and writes nothing; a clean file registers
    every row as an organiser's import (``via="import"``): confirmed while seats last,
    else waitlisted, each person told as if they had registered (their own
    ``ParticipantRegistered`` notice, so their own email).
    """
    event = await _event(ctx, event_id)
    found = read_registrants(body, event, ctx.clock())
    for row, request in found.rows:
        if await ctx.store.find_by_email(event_id, request.email) is not None:
            found.problem(row, "email", "already registered for this event")
    wanted: dict[tuple[str, str], int] = {}
    for row, request in found.rows:
        for question_id, choice in event.limited_picks(request.answers):
            wanted[(question_id, choice)] = wanted.get((question_id, choice), 0) + 1
            left = event.choice_places_left(question_id, choice) or 0
            if wanted[(question_id, choice)] > left:
                found.problem(row, f"answers.{question_id}", f"no places left on {choice!r}")
    found.problems.sort(key=lambda p: p["row"])
    report: dict[str, Any] = {"dry_run": dry_run, **found.report()}
    if found.problems:
        if dry_run:
            return {**report, "valid": False}
        raise DomainError(
            "import_invalid",
            f"The file has {len(found.problems)} problems; nothing was imported.",
            details={"problems": report["problems"], "more_problems": report["more_problems"]},
        )
    if dry_run:
        return {**report, "valid": True}
    statuses: dict[str, int] = {}
    references: list[str] = []
    failed: list[dict[str, Any]] = []
    for row, request in found.rows:
        try:
            registered = await register_participant(ctx, event_id, request, via="import", by=by)
        except DomainError as exc:  # only a race with another writer gets here
            failed.append({"row": row, "field": exc.field or "row", "reason": exc.message})
            continue
        statuses[registered.status] = statuses.get(registered.status, 0) + 1
        references.append(registered.reference)
    return {
        **report,
        "valid": True,
        "imported": len(references),
        "by_status": statuses,
        "references": references,
        "failed": failed,
    }


# -- waiting list and seats ------------------------------------------------------------------


async def promote_waitlisted(ctx: Context, event_id: str, seats: int = 1) -> list[str]:
    """Confirm up to ``seats`` waitlisted participants, first in line first, each as a
    seat of their category allows (a category at its quota is passed over).

    Each promotion first takes a seat for the candidate's category with the conditional
    ``$inc`` and then moves that registration from waitlisted to confirmed with a
    revision-checked write; a loser of a race gives the seat back and reads the line
    again. So two concurrent cancellations promote exactly two and neither the capacity
    nor a quota is ever exceeded.
    """
    event = await ctx.store.get_event(event_id)
    if event is None or event.state == "cancelled":
        return []
    promoted: list[str] = []
    for _ in range(50 + 2 * seats):
        if len(promoted) >= seats:
            break
        candidate = await _promote_next(ctx, event)
        if candidate is None:
            break
        if candidate:
            promoted.append(candidate)
    return promoted


async def _promote_next(ctx: Context, event: Event) -> str | None:
    """Promote the first waitlisted whose category has a seat: its id, "" when a race
    was lost (look again), None when nobody can be promoted."""
    full: set[str] = set()
    for candidate in await ctx.store.waitlisted(event.id):
        if candidate.category in full:
            continue
        if not await ctx.store.take_seat(event, candidate.category):
            full.add(candidate.category)
            continue
        candidate.promote(event, ctx.signer, ctx.clock())
        if await _save(ctx, candidate):
            return candidate.id
        # promoted or cancelled meanwhile: the seat goes back, look at the line again
        await ctx.store.release_seat(event, candidate.category)
        return ""
    return None


async def _recount(ctx: Context, event: Event) -> dict[str, int]:
    """The counters as the registrations say they should be."""
    counts = {"seats_taken": await ctx.store.count_confirmed(event.id)}
    confirmed = await ctx.store.count_by_category(event.id, SEAT_HOLDING)
    categories = {c.code for c in event.categories}
    for category in {*event.category_taken, *confirmed, *categories}:
        counts[f"category_taken.{category}"] = confirmed.get(category, 0)
    counts["committed"] = replace(event, category_taken=confirmed).committed_seats()
    limited = event.choice_limits
    if limited or event.choice_taken:
        tally = AnswerTally([q for q in event.questions if q.id in limited])
        async for answers in ctx.store.active_answers(event.id):
            tally.add(answers)
        picks = tally.result()
        for qid in {*limited, *event.choice_taken}:
            chosen = picks.get(qid, {}).get("choices", {})
            for code in {*limited.get(qid, {}), *event.choice_taken.get(qid, {})}:
                counts[f"choice_taken.{qid}.{code}"] = chosen.get(code, 0)
    return counts


async def reconcile_seats(ctx: Context, event_id: str, settle_s: float = 0.2) -> dict[str, int]:
    """Recount the confirmed registrations (per category) and the places taken on limited
    choices, and repair the event's counters.

    A crash between taking a seat and writing the registration (or between cancelling
    and releasing) leaves a counter wrong. The recount is compared twice, ``settle_s``
    apart, so that a registration in flight is not mistaken for a leak, and the counters
    are set with a compare-and-set. Freed seats then go to the waiting list.
    """
    for _ in range(10):
        event = await _event(ctx, event_id)
        before = event.seats_taken
        read = event.counters()
        actual = await _recount(ctx, event)
        expected: dict[str, int | None] = {path: read.get(path) for path in actual}
        confirmed = actual["seats_taken"]
        if all(expected[path] == value for path, value in actual.items()):
            break
        if settle_s:
            await asyncio.sleep(settle_s)
            again = await ctx.store.get_event(event_id)
            if again is None or again.counters() != event.counters():
                continue
            if await _recount(ctx, event) != actual:
                continue
        if await ctx.store.set_counters(event_id, expected, actual):
            break
    else:
        raise DomainError("concurrent_update", "Seats keep changing; try again.")
    promoted = await promote_waitlisted(ctx, event_id, max(0, event.capacity - confirmed))
    return {
        "seats_taken_before": before,
        "recounted": confirmed,
        "seats_taken": confirmed + len(promoted),
        "promoted": len(promoted),
    }


async def reconcile_all(ctx: Context) -> int:
    """Reconcile every event that still takes or holds registrations (run at startup)."""
    repaired = 0
    for event_id in await ctx.store.event_ids(("published", "closed")):
        result = await reconcile_seats(ctx, event_id, settle_s=0)
        repaired += int(result["seats_taken_before"] != result["recounted"])
    return repaired


# -- cancelling ------------------------------------------------------------------------------


async def cancel_registration(
    ctx: Context,
    registration_id: str,
    *,
    by: str,
    reason: str | None = None,
    event_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> Registration:
    """Cancel a registration; a released seat goes to the first waitlisted participant.

    ``event_id``, when given (organisers name the event), must be the registration's.
    ``actor`` and ``action``: what the status history says (default ``by``, cancelled).
    """
    registration = await _registration(ctx, registration_id)
    if event_id is not None and registration.event_id != event_id:
        raise DomainError("registration_not_found", "No such registration.")
    event = await _event(ctx, registration.event_id)
    written, previous = await _change_registration(
        ctx,
        registration_id,
        lambda r: r.cancel(
            event, by=by, reason=reason, now=ctx.clock(), actor=actor, action=action
        ),
    )
    await _release_choices(ctx, event.id, event.limited_picks(written.answers))
    if previous in SEAT_HOLDING:
        # A crash right here leaves the counter one too high: reconcile_seats repairs it.
        await ctx.store.release_seat(event, written.category)
        await promote_waitlisted(ctx, event.id, 1)
    return written


# -- approval --------------------------------------------------------------------------------


async def approve_registration(ctx: Context, registration_id: str, by: str) -> Registration:
    """Approve a nomination: confirmed while seats last, else waitlisted in order."""
    for _ in range(_ATTEMPTS):
        registration = await _registration(ctx, registration_id)
        event = await _event(ctx, registration.event_id)
        registration.check_approvable(event)
        seat = await ctx.store.take_seat(event, registration.category)
        position = None if seat else await ctx.store.next_waitlist_position(event.id)
        registration.approve(
            event,
            by=by,
            seat=seat,
            waitlist_position=position,
            signer=ctx.signer,
            now=ctx.clock(),
        )
        if await _save(ctx, registration):
            return registration
        if seat:
            await ctx.store.release_seat(event, registration.category)
    raise DomainError("concurrent_update", "The registration is changing; try again.")


async def reject_registration(
    ctx: Context, registration_id: str, by: str, reason: str
) -> Registration:
    """Reject a nomination, with a reason the participant is told."""
    registration = await _registration(ctx, registration_id)
    event = await _event(ctx, registration.event_id)
    written, _ = await _change_registration(
        ctx, registration_id, lambda r: r.reject(event, by=by, reason=reason, now=ctx.clock())
    )
    await _release_choices(ctx, event.id, event.limited_picks(written.answers))
    return written


# -- organisers' views -----------------------------------------------------------------------


async def registration_history(ctx: Context, registration_id: str) -> Registration:
    """A registration with its status history (``Registration.history_view``)."""
    return await _registration(ctx, registration_id)


async def registrations_page(
    ctx: Context,
    event_id: str,
    filters: dict[str, Any],
    after: tuple[Any, ...] | None,
    limit: int,
    sort: RegistrationSort = "created",
) -> list[Registration]:
    """One page of an event's registrations in a sort's order (``created``: oldest
    first), after a keyset cursor of that sort."""
    await _event(ctx, event_id)
    return await ctx.store.page_registrations(event_id, filters, after, limit, sort)


async def export_registrations(
    ctx: Context, event_id: str, filters: dict[str, Any]
) -> AsyncIterator[Registration]:
    """Every matching registration of an existing event, streamed (for the CSV export)."""
    await _event(ctx, event_id)
    return ctx.store.stream_registrations(event_id, filters)


async def event_statistics(ctx: Context, event_id: str) -> dict[str, Any]:
    """Capacity, seats taken, and counts by status, cadre, category, how registered,
    institution and region; per category its seats; per question of the event, how
    many active registrations answered and, for choices, how many picked each."""
    event = await _event(ctx, event_id)
    stats = await ctx.store.statistics(event_id)
    tally = AnswerTally(event.questions)
    if event.questions:
        async for answers in ctx.store.active_answers(event_id):
            tally.add(answers)
    answers = tally.result()
    for question in event.questions:
        for choice in question.choices:
            left = event.choice_places_left(question.id, choice.code)
            if left is not None:
                answers[question.id].setdefault("places_left", {})[choice.code] = left
    return {
        "event_id": event_id,
        "capacity": event.capacity,
        "seats_taken": event.seats_taken,
        "by_status": stats["status"],
        "by_cadre": stats["cadre"],
        "by_category": stats["category"],
        "by_via": stats["via"],
        "by_institution": stats["institution"],
        "by_region": stats["region"],
        "categories": {
            c.code: {
                "confirmed": event.category_taken.get(c.code, 0),
                "quota": c.quota,
                "seats_left": event.category_seats_left(c.code),
            }
            for c in event.categories
        },
        "answers": answers,
    }


# -- self-service ----------------------------------------------------------------------------


async def find_own_registration(ctx: Context, reference: str, token: str) -> Registration:
    """The registration for a reference and its manage token, or the one same 404.

    The same work is done whatever fails (a lookup, a hash, a constant-time compare
    against a dummy hash when the reference is unknown), so answers cannot be told apart.
    """
    registration = await ctx.store.find_by_reference(reference.strip().upper()[:32])
    presented = hash_token(token or "")
    stored = registration.manage_token_hash if registration else None
    if not tokens_match(presented, stored):
        raise DomainError(
            "registration_not_found",
            "No registration matches this reference and token.",
        )
    assert registration is not None
    return registration


async def issue_self_service_link(
    ctx: Context, registration_id: str, *, valid_for: timedelta | None = None
) -> str:
    """A link to the registration's self-service page (``domain.self_service_path``).

    Emails carry one: valid until ``LINK_VALIDITY`` after the event ends. The page's own
    sign-in (reference and manage token typed in) issues a short one (``valid_for``).
    """
    registration = await _registration(ctx, registration_id)
    if registration.erased_at:
        raise DomainError("registration_not_found", "No such registration.")
    event = await _event(ctx, registration.event_id)
    return registration.self_service_link(ctx.links, event, ctx.clock(), valid_for)


async def sign_in_self_service(
    ctx: Context, reference: str, token: str, *, valid_for: timedelta
) -> str:
    """A short-lived self-service link for a reference and its manage token (the same
    ``registration_not_found`` as ``find_own_registration`` when they do not match)."""
    registration = await find_own_registration(ctx, reference, token)
    return await issue_self_service_link(ctx, registration.id, valid_for=valid_for)


@dataclass(frozen=True)
class OwnRegistration:
    """What a self-service page shows: the registration and its event."""

    registration: Registration
    event: Event


async def open_self_service_link(ctx: Context, link: str) -> OwnRegistration:
    """The registration a self-service link opens; a tampered, expired or unknown link,
    or one of an erased registration, all get the same ``registration_not_found``."""
    registration_id = ctx.links.verify(link, ctx.clock())
    registration = await ctx.store.get_registration(registration_id) if registration_id else None
    if registration is None or registration.erased_at:
        raise DomainError("registration_not_found", "This link opens no registration.")
    return OwnRegistration(registration, await _event(ctx, registration.event_id))


async def update_own_registration(
    ctx: Context, registration_id: str, change: RegistrationChange
) -> Registration:
    """A participant changes their phone, position, needs or language."""
    registration = await _registration(ctx, registration_id)
    event = await _event(ctx, registration.event_id)
    written, _ = await _change_registration(
        ctx, registration_id, lambda r: r.update_details(event, change, ctx.clock())
    )
    return written


# -- check-in --------------------------------------------------------------------------------


async def check_in(
    ctx: Context,
    ticket: str,
    day: str | None = None,
    *,
    event_id: str | None = None,
    by: str | None = None,
) -> CheckedIn:
    """Record attendance for today (venue time) from a scanned ticket, or for an
    earlier ``day`` of the event (a registrar recording a day late); with ``event_id``
    (the event at this door), a ticket of another event is refused."""
    registration_id = ctx.signer.verify(ticket)
    if registration_id is None:
        raise DomainError("invalid_ticket", "This ticket is not one of ours.")
    registration = await _registration(ctx, registration_id)
    if event_id is not None and registration.event_id != event_id:
        raise DomainError(
            "wrong_event",
            "This ticket is for another event.",
            field="ticket",
            details={"event_id": registration.event_id},
        )
    event = await _event(ctx, registration.event_id)
    written, day = await _change_registration(
        ctx, registration_id, lambda r: r.check_in(event, ctx.clock(), day, by=by)
    )
    return CheckedIn(registration=written, day=day, checked_in_at=written.checkins[day])


# -- personal data ---------------------------------------------------------------------------


async def export_own_data(ctx: Context, registration_id: str) -> dict[str, Any]:
    """Everything held about one participant, without internal bookkeeping."""
    data = await ctx.store.personal_data(registration_id)
    if data is None:
        raise DomainError("registration_not_found", "No such registration.")
    # Issue 16: their certificates and evaluation answers are data about them too.
    data["certificates"] = [
        {
            "serial": c.serial,
            "status": c.status,
            "full_name": c.full_name,
            "institution": c.institution,
            "days": c.days,
            "cpd_hours": c.cpd_hours,
            "issued_at": c.issued_at,
            "revoked_at": c.revoked_at,
        }
        for c in await ctx.store.registration_certificates(registration_id)
    ]
    response = await ctx.store.get_evaluation_response(
        EvaluationResponse.key(str(data.get("event_id")), registration_id)
    )
    data["evaluation_answers"] = dict(response.answers) if response else None
    data["held_by"] = "e-Government Authority (e-GA), Mkutano registration service"
    data["purpose"] = (data.get("consent") or {}).get("purpose")
    return data


async def erase_registration(
    ctx: Context,
    registration_id: str,
    *,
    reason: Literal["participant_request", "retention"],
) -> Registration:
    """Cancel if active, then anonymise and publish ``PersonalDataErased`` (idempotent)."""
    registration = await _registration(ctx, registration_id)
    if registration.erased_at:
        await erase_certificates_and_answers(ctx, registration)
        return registration
    if registration.is_active:
        try:
            await cancel_registration(
                ctx,
                registration_id,
                by="participant" if reason == "participant_request" else "organiser",
                reason="personal data erased",
            )
        except DomainError as exc:  # cancelled meanwhile: go on erasing
            if not exc.code.startswith("registration_"):
                raise
    written, erased = await _change_registration(
        ctx, registration_id, lambda r: r.erase(reason, ctx.clock())
    )
    await erase_certificates_and_answers(ctx, written)
    if erased:
        log.info("personal_data_erased", registration_id=registration_id, reason=reason)
    return written


async def apply_retention(ctx: Context, retention_days: int) -> int:
    """Anonymise the registrations of events that ended more than ``retention_days`` ago."""
    cutoff = ctx.clock() - timedelta(days=retention_days)
    erased = 0
    for event in await ctx.store.list_events(state=None):  # events are few
        if not event.ended_before(cutoff):
            continue
        for registration_id in await ctx.store.unerased_registration_ids(event.id):
            await erase_registration(ctx, registration_id, reason="retention")
            erased += 1
    return erased


# == certificates of attendance, CPD, evaluation (issue 16) =================================
#
# Certificates are issued when an event ends (``after_events``, run by
# ``workers.run_after_events``) or when an organiser asks (``issue_certificates``); each
# one is its own document (``domain.Certificate``), so an issue run that stops half way
# (or runs twice, on two instances) issues the rest on the next run and nothing twice.


@dataclass(frozen=True)
class IssueReport:
    """What an issue run did, per participant of the event."""

    issued: int = 0
    already_issued: int = 0
    awaiting_evaluation: int = 0
    not_attended: int = 0


def _participant_url(ctx: Context, registration: Registration, event: Event) -> str:
    """The participant's self-service URL (their credential): the certificate downloads
    and the evaluation opens under it."""
    link = registration.self_service_link(ctx.links, event, ctx.clock())
    return self_service_url(ctx.public_url, link)


async def certificate_settings(ctx: Context, event_id: str) -> CertificateSettings:
    await _event(ctx, event_id)
    return await ctx.store.get_certificate_settings(event_id) or CertificateSettings.default(
        event_id
    )


async def change_certificate_settings(
    ctx: Context, event_id: str, change: CertificateSettingsChange
) -> CertificateSettings:
    """An organiser sets the CPD hours per day and the template of an event."""
    event = await _event(ctx, event_id)
    for _ in range(_ATTEMPTS):
        settings = await certificate_settings(ctx, event_id)
        settings.change(event, change, ctx.clock())
        if await ctx.store.save_certificate_settings(settings):
            return settings
    raise DomainError("concurrent_update", "The settings are changing; try again.")


async def _certified(ctx: Context, event_id: str) -> set[str]:
    return {c.registration_id for c in await ctx.store.event_certificates(event_id)}


async def _answered(ctx: Context, event_id: str) -> set[str]:
    return {
        r.registration_id
        for r in await ctx.store.event_evaluation_responses(event_id)
        if r.answered
    }


async def issue_certificates(ctx: Context, event_id: str, *, by: str = "system") -> IssueReport:
    """Issue a certificate to every participant of the event who checked in at least
    once and has none yet; with the event's evaluation required, only to those who
    answered it (the others get theirs when they answer)."""
    event = await _event(ctx, event_id)
    event.check_not_cancelled()
    now = ctx.clock()
    if local_day(event.starts_at) > local_day(now):
        raise DomainError("event_not_started", "Nobody can have attended yet.")
    settings = await certificate_settings(ctx, event_id)
    form = await ctx.store.get_evaluation_form(event_id)
    waits = form is not None and form.required_for_certificate
    certified = await _certified(ctx, event_id)
    answered = await _answered(ctx, event_id) if waits else set()
    counts = {"issued": 0, "already_issued": 0, "awaiting_evaluation": 0, "not_attended": 0}
    async for registration in ctx.store.stream_registrations(event_id, {}):
        if registration.erased_at or not registration.checkins:
            counts["not_attended"] += 1
        elif registration.id in certified:
            counts["already_issued"] += 1
        elif waits and registration.id not in answered:
            counts["awaiting_evaluation"] += 1
        elif await _issue_one(ctx, registration, event, settings, by=by):
            counts["issued"] += 1
        else:
            counts["already_issued"] += 1
    log.info("certificates_issued", event_id=event_id, **counts)
    return IssueReport(**counts)


async def _issue_one(
    ctx: Context,
    registration: Registration,
    event: Event,
    settings: CertificateSettings,
    *,
    by: str,
    generation: int = 1,
    replaces: Certificate | None = None,
    full_name: str | None = None,
    institution: str | None = None,
) -> Certificate | None:
    certificate = Certificate.issue(
        registration=registration,
        event=event,
        settings=settings,
        self_service_url=_participant_url(ctx, registration, event),
        public_url=ctx.public_url,
        now=ctx.clock(),
        generation=generation,
        replaces=replaces,
        full_name=full_name,
        institution=institution,
        by=by,
    )
    return certificate if await ctx.store.add_certificate(certificate) else None


async def after_events(ctx: Context, *, window_days: int = 30) -> dict[str, int]:
    """What follows the end of each event that ended within ``window_days``: the
    evaluation invitations (when it has a form) and the automatic certificate run, each
    once per event."""
    now = ctx.clock()
    done = {"invited": 0, "issued": 0}
    for event in await ctx.store.list_events(state=None):
        if event.state not in ("published", "closed") or not event.ended_before(now):
            continue
        if event.ended_before(now - timedelta(days=window_days)):
            continue
        form = await ctx.store.get_evaluation_form(event.id)
        if form is not None and form.invitations_sent_at is None:
            done["invited"] += await invite_to_evaluation(ctx, event.id)
        settings = await certificate_settings(ctx, event.id)
        if settings.issued_at is None:
            report = await issue_certificates(ctx, event.id)
            done["issued"] += report.issued
            for _ in range(_ATTEMPTS):
                settings = await certificate_settings(ctx, event.id)
                settings.issued_at = iso(ctx.clock())
                if await ctx.store.save_certificate_settings(settings):
                    break
    return done


async def _certificate(ctx: Context, serial: str) -> Certificate:
    certificate = await ctx.store.find_certificate(normalise_serial(serial))
    if certificate is None:
        raise DomainError("certificate_not_found", "No certificate has this number.")
    return certificate


async def verify_certificate(ctx: Context, serial: str) -> Certificate:
    """The certificate a serial names (anyone may ask: the answer says little)."""
    return await _certificate(ctx, serial)


async def list_certificates(ctx: Context, event_id: str) -> list[Certificate]:
    await _event(ctx, event_id)
    return await ctx.store.event_certificates(event_id)


async def own_certificate(ctx: Context, registration_id: str) -> Certificate | None:
    """The participant's valid certificate (the newest), if any."""
    valid = [c for c in await ctx.store.registration_certificates(registration_id) if c.valid]
    return valid[-1] if valid else None


async def _save_certificate(
    ctx: Context, serial: str, decide: Callable[[Certificate], None]
) -> Certificate:
    for _ in range(_ATTEMPTS):
        certificate = await _certificate(ctx, serial)
        decide(certificate)
        if await ctx.store.save_certificate(certificate):
            return certificate
    raise DomainError("concurrent_update", "The certificate is changing; try again.")


async def revoke_certificate(ctx: Context, serial: str, *, by: str) -> Certificate:
    """An organiser revokes a certificate: its serial answers "revoked" from now on."""
    revoked = await _save_certificate(ctx, serial, lambda c: c.revoke("revoked", ctx.clock()))
    log.info("certificate_revoked", certificate_id=revoked.id, by=by)
    return revoked


async def reissue_certificate(
    ctx: Context,
    serial: str,
    *,
    by: str,
    full_name: str | None = None,
    institution: str | None = None,
) -> Certificate:
    """A new certificate (new serial) for the same registration, with a corrected name or
    institution and the days as recorded now; the old one is revoked as ``reissued``."""
    old = await _certificate(ctx, serial)
    if not old.valid:
        raise DomainError("certificate_revoked", "This certificate is revoked: nothing to reissue.")
    registration = await _registration(ctx, old.registration_id)
    event = await _event(ctx, old.event_id)
    settings = await certificate_settings(ctx, event.id)
    generations = [
        c.generation for c in await ctx.store.registration_certificates(old.registration_id)
    ]
    new = await _issue_one(
        ctx,
        registration,
        event,
        settings,
        by=by,
        generation=max(generations, default=0) + 1,
        replaces=old,
        full_name=full_name or old.full_name,
        institution=institution or old.institution,
    )
    if new is None:
        raise DomainError("concurrent_update", "The certificate is being reissued; try again.")
    await _save_certificate(
        ctx, old.serial, lambda c: c.revoke("reissued", ctx.clock(), replaced_by=new.id)
    )
    return new


async def cpd_export(ctx: Context, event_id: str) -> list[Certificate]:
    """The valid certificates of an event, by name: the CPD export's rows."""
    return sorted(
        (c for c in await list_certificates(ctx, event_id) if c.valid),
        key=lambda c: c.full_name.casefold(),
    )


async def erase_certificates_and_answers(ctx: Context, registration: Registration) -> None:
    """PDPA: an erased participant's certificates are revoked and lose the name; their
    evaluation answers lose the free text."""
    now = ctx.clock()
    for certificate in await ctx.store.registration_certificates(registration.id):
        if not certificate.erased_at:
            await _save_certificate(ctx, certificate.serial, lambda c: c.erase(now))
    key = EvaluationResponse.key(registration.event_id, registration.id)
    for _ in range(_ATTEMPTS):
        response = await ctx.store.get_evaluation_response(key)
        if response is None:
            break
        form = await ctx.store.get_evaluation_form(registration.event_id)
        if not response.erase(form, now) or await ctx.store.save_evaluation_response(response):
            break


# -- evaluation --------------------------------------------------------------------------------


async def evaluation_form(ctx: Context, event_id: str) -> EvaluationForm:
    await _event(ctx, event_id)
    form = await ctx.store.get_evaluation_form(event_id)
    if form is None:
        raise DomainError("evaluation_not_found", "This event has no evaluation form.")
    return form


async def attach_evaluation(
    ctx: Context, event_id: str, spec: EvaluationFormSpec
) -> EvaluationForm:
    """An organiser attaches (or replaces, until someone answers) the event's form."""
    await _event(ctx, event_id)
    for _ in range(_ATTEMPTS):
        form = await ctx.store.get_evaluation_form(event_id) or EvaluationForm(event_id=event_id)
        form.replace(spec, ctx.clock())
        if await ctx.store.save_evaluation_form(form):
            return form
    raise DomainError("concurrent_update", "The form is changing; try again.")


async def invite_to_evaluation(ctx: Context, event_id: str) -> int:
    """Ask every attendee (once each) to answer the event's evaluation."""
    event = await _event(ctx, event_id)
    form = await evaluation_form(ctx, event_id)
    invited = 0
    async for registration in ctx.store.stream_registrations(event_id, {}):
        if registration.erased_at or not registration.checkins:
            continue
        response = EvaluationResponse.invite(
            registration=registration,
            event=event,
            form=form,
            self_service_url=_participant_url(ctx, registration, event),
            now=ctx.clock(),
        )
        if await ctx.store.add_evaluation_response(response):
            invited += 1
    for _ in range(_ATTEMPTS):
        form = await evaluation_form(ctx, event_id)
        form.invitations_sent_at = form.invitations_sent_at or iso(ctx.clock())
        if await ctx.store.save_evaluation_form(form):
            break
    log.info("evaluation_invited", event_id=event_id, invited=invited)
    return invited


@dataclass(frozen=True)
class OwnEvaluation:
    form: EvaluationForm
    response: EvaluationResponse | None


async def own_evaluation(ctx: Context, registration: Registration) -> OwnEvaluation | None:
    """The form an attendee may answer and their response, or None (no form, or they
    never came)."""
    form = await ctx.store.get_evaluation_form(registration.event_id)
    if form is None or not registration.checkins:
        return None
    key = EvaluationResponse.key(registration.event_id, registration.id)
    return OwnEvaluation(form, await ctx.store.get_evaluation_response(key))


async def answer_evaluation(
    ctx: Context, registration_id: str, raw: dict[str, Any]
) -> EvaluationResponse:
    """An attendee answers the evaluation, once; a certificate waiting for the answer is
    issued at once (when the event has ended or its certificates were issued)."""
    registration = await _registration(ctx, registration_id)
    if registration.erased_at:
        raise DomainError("registration_not_found", "No such registration.")
    event = await _event(ctx, registration.event_id)
    form = await evaluation_form(ctx, event.id)
    if not registration.checkins:
        raise DomainError("not_attended", "Only participants who attended answer the evaluation.")
    key = EvaluationResponse.key(event.id, registration.id)
    for _ in range(_ATTEMPTS):
        response = await ctx.store.get_evaluation_response(key)
        response = response or EvaluationResponse.uninvited(registration, event)
        response.answer(form, raw, ctx.clock())
        saved = (
            await ctx.store.add_evaluation_response(response)
            if response.rev == 0
            else await ctx.store.save_evaluation_response(response)
        )
        if saved:
            break
    else:
        raise DomainError("concurrent_update", "The evaluation is changing; try again.")
    await ctx.store.count_evaluation_answer(event.id)
    if form.required_for_certificate:
        settings = await certificate_settings(ctx, event.id)
        if (settings.issued_at or event.ended_before(ctx.clock())) and not (
            await own_certificate(ctx, registration.id)
        ):
            await _issue_one(ctx, registration, event, settings, by="system")
    return response


async def evaluation_summary(ctx: Context, event_id: str) -> dict[str, Any]:
    """For organisers: response rate, each question's distribution, free-text answers."""
    form = await evaluation_form(ctx, event_id)
    responses = await ctx.store.event_evaluation_responses(event_id)
    return {"event_id": event_id, **evaluation_results(form, responses, len(responses))}


async def evaluation_answers(ctx: Context, event_id: str) -> tuple[EvaluationForm, list[dict]]:
    """Every answered response's answers, without anything that says whose (no id, no
    time), in an order that says nothing either."""
    form = await evaluation_form(ctx, event_id)
    rows = [
        dict(r.answers) for r in await ctx.store.event_evaluation_responses(event_id) if r.answered
    ]
    rows.sort(key=lambda row: json.dumps(row, sort_keys=True, default=str))
    return form, rows


# -- institutions (issue 13 B) ---------------------------------------------------------------
# The registry (organisers change it; anyone may read names, kinds and regions), its
# contact persons (personal data: organisers only, never logged), and their emailed,
# single-use sign-in that opens the institution page for a short session.

ilog = get_logger("institutions")


async def _institution(ctx: Context, code: str) -> Institution:
    institution = await ctx.institutions.get_institution(code.strip().upper()[:32])
    if institution is None:
        raise DomainError("institution_not_found", "No such institution.")
    return institution


async def create_institution(ctx: Context, spec: InstitutionSpec) -> Institution:
    """Add an institution to the registry (``institution_exists`` if its code is taken)."""
    institution = Institution.create(spec, ctx.clock())
    await ctx.institutions.add_institution(institution)
    return institution


async def list_institutions(
    ctx: Context, *, kind: str | None = None, region: str | None = None
) -> list[Institution]:
    return await ctx.institutions.list_institutions(kind=kind, region=region)


async def get_institution(ctx: Context, code: str) -> Institution:
    return await _institution(ctx, code)


async def _change_institution(
    ctx: Context, code: str, decide: Callable[[Institution], T]
) -> tuple[Institution, T]:
    for _ in range(_ATTEMPTS):
        institution = await _institution(ctx, code)
        result = decide(institution)  # what changed (falsy: nothing, nothing written)
        if not result:
            return institution, result
        if await ctx.institutions.save_institution(institution):
            return institution, result
        await asyncio.sleep(random.uniform(0, 0.02))
    raise DomainError("concurrent_update", "The institution is changing; try again.")


async def update_institution(ctx: Context, code: str, change: InstitutionChange) -> Institution:
    """Change an institution's names, kind, region or contact persons (organisers)."""
    written, _ = await _change_institution(ctx, code, lambda i: i.change(change, ctx.clock()))
    return written


@dataclass(frozen=True)
class ImportLine:
    """What a registry CSV row does: create, update (which fields) or nothing."""

    row: int
    code: str
    action: Literal["create", "update", "unchanged"]
    changed_fields: list[str]


@dataclass(frozen=True)
class ImportReport:
    dry_run: bool
    applied: bool
    lines: list[ImportLine]
    problems: list[RowProblem]


async def import_institutions(ctx: Context, text: str, *, dry_run: bool) -> ImportReport:
    """Load or update the registry from a CSV file (``domain.INSTITUTION_CSV_COLUMNS``).

    All or nothing: every row is checked first, and a file with any problem (a wrong
    header, a bad field, a code twice) writes nothing; the report names each row (the
    header is line 1) and field. A dry run reports what the file would do and writes
    nothing. A row creates the institution or updates the fields it gives; a row with a
    contact person adds them, or updates the one with that email (others are kept).
    """
    rows, problems = parse_institutions_csv(text)
    lines: list[ImportLine] = []
    plans: list[tuple[int, InstitutionSpec, Institution | None]] = []
    if not problems:
        for row, spec in rows:
            existing = await ctx.institutions.get_institution(spec.code)
            if existing is None:
                lines.append(ImportLine(row, spec.code, "create", []))
            else:
                preview = copy.deepcopy(existing)  # what the row would change, unsaved
                changed = _apply_row(preview, spec, ctx.clock())
                lines.append(
                    ImportLine(row, spec.code, "update" if changed else "unchanged", changed)
                )
            plans.append((row, spec, existing))
    if problems and not dry_run:
        raise refused_import(problems, dry_run=False)
    if problems or dry_run:
        return ImportReport(dry_run=dry_run, applied=False, lines=lines, problems=problems)
    for _row, spec, existing in plans:
        if existing is None:
            try:
                await create_institution(ctx, spec)
                continue
            except DomainError as exc:  # created meanwhile: update it instead
                if exc.code != "institution_exists":
                    raise
        await _change_institution(ctx, spec.code, lambda i, s=spec: _apply_row(i, s, ctx.clock()))
    ilog.info("institutions_imported", rows=len(plans))
    return ImportReport(dry_run=False, applied=True, lines=lines, problems=[])


def refused_import(problems: list[RowProblem], *, dry_run: bool) -> DomainError:
    """A file with problems: nothing written; each problem named by row and field."""
    return DomainError(
        "invalid_import",
        f"The file has {len(problems)} problem(s); nothing was written.",
        details={
            "dry_run": dry_run,
            "problems": [
                {"row": p.row, "field": p.field, "reason": p.reason} for p in problems[:200]
            ],
            "more_problems": max(0, len(problems) - 200),
        },
    )


def _apply_row(institution: Institution, spec: InstitutionSpec, now: datetime) -> list[str]:
    """A registry row on an existing institution: its fields, then its contact person."""
    change = InstitutionChange(
        name_sw=spec.name_sw, name_en=spec.name_en, kind=spec.kind, region=spec.region
    )
    changed = institution.change(change, now)
    for contact in spec.contacts:
        if institution.upsert_contact(contact, now):
            changed.append("contacts")
    return sorted(set(changed))


async def add_contact_person(ctx: Context, code: str, contact: ContactPersonSpec) -> Institution:
    """Add a contact person (or update the one with that email)."""
    written, _ = await _change_institution(
        ctx, code, lambda i: i.upsert_contact(contact, ctx.clock())
    )
    return written


async def erase_contact_person(ctx: Context, code: str, contact_id: str) -> Institution:
    """PDPA erasure of a contact person: their details leave the registry, their
    sign-in records are deleted, and a session of theirs stops at its next request."""
    institution = await _institution(ctx, code)
    if institution.contact(contact_id) is None:
        raise DomainError("contact_not_found", "No such contact person.", field="contact_id")
    written, _ = await _change_institution(
        ctx, code, lambda i: i.erase_contact(contact_id, ctx.clock())
    )
    await ctx.institutions.forget_sign_ins(contact_id)
    ilog.info("contact_person_erased", institution=written.code, contact_id=contact_id)
    return written


# -- the contact persons' sign-in --------------------------------------------------------------


async def request_institution_sign_in(ctx: Context, email: str) -> int:
    """Email a sign-in link to this address if it is a contact person's (one per
    institution they are a contact of). Says nothing to the caller about whether it is:
    the HTTP answer is the same; the count returned is for tests and metrics only."""
    try:
        address = normalise_email(email)
    except ValueError:
        return 0
    now = ctx.clock()
    sent = 0
    for institution in await ctx.institutions.institutions_of_contact(address):
        contact = institution.contact_by_email(address)
        if contact is None:
            continue
        expires_at = now + ctx.sign_in_validity
        link, nonce = ctx.institution_links.new_link(expires_at)
        sign_in = InstitutionSignIn.issue(
            institution=institution,
            contact=contact,
            link=link,
            nonce_hash_=nonce,
            public_url=ctx.public_url,
            expires_at=expires_at,
            now=now,
        )
        await ctx.institutions.add_sign_in(sign_in)
        sent += 1
    return sent


def _invalid_link() -> DomainError:
    return DomainError(
        "sign_in_link_invalid",
        "This sign-in link is not valid: it may have expired or been used. Ask for a new one.",
    )


async def check_sign_in_link(ctx: Context, link: str) -> Institution:
    """The institution an unused, unexpired link would open, without using it (the page
    a link opens asks for one click first, so a mail scanner's GET uses nothing). A
    tampered, unknown, expired or used link all get the one ``sign_in_link_invalid``."""
    nonce = ctx.institution_links.link_nonce(link, ctx.clock())
    sign_in = await ctx.institutions.find_sign_in(nonce) if nonce else None
    if sign_in is None or sign_in.state != "issued":
        raise _invalid_link()
    institution = await ctx.institutions.get_institution(sign_in.institution_code)
    if institution is None or institution.contact(sign_in.contact_id) is None:
        raise _invalid_link()
    return institution


@dataclass(frozen=True)
class InstitutionSession:
    """A signed-in contact person: their institution and their entry in it."""

    institution: Institution
    contact: dict
    value: str = ""


async def sign_in_with_link(ctx: Context, link: str) -> InstitutionSession:
    """Use a sign-in link (once): the session it opens, or ``sign_in_link_invalid``."""
    now = ctx.clock()
    nonce = ctx.institution_links.link_nonce(link, now)
    sign_in = await ctx.institutions.consume_sign_in(nonce, iso(now)) if nonce else None
    if sign_in is None:
        raise _invalid_link()
    institution = await ctx.institutions.get_institution(sign_in.institution_code)
    contact = institution.contact(sign_in.contact_id) if institution else None
    if institution is None or contact is None:
        raise _invalid_link()
    value = ctx.institution_links.session(
        institution.code, contact["id"], now + ctx.session_validity
    )
    ilog.info("institution_signed_in", institution=institution.code, contact_id=contact["id"])
    return InstitutionSession(institution, contact, value)


async def open_institution_session(ctx: Context, value: str) -> InstitutionSession:
    """The session a cookie names, while it lasts and its contact person is still one."""
    opened = ctx.institution_links.open_session(value, ctx.clock())
    institution = await ctx.institutions.get_institution(opened[0]) if opened else None
    contact = institution.contact(opened[1]) if institution and opened else None
    if institution is None or contact is None:
        raise DomainError("institution_session_invalid", "Sign in again.")
    return InstitutionSession(institution, contact, value)


# -- nominations -------------------------------------------------------------------------------
# A nomination is a registration: the same use case as a self-registration, with
# via="nomination" and the institution's code, so the nominee gets their own
# confirmation (or waiting-list or pending-approval message) and manage link.


async def institution_nominations(
    ctx: Context, institution_code: str, event_id: str
) -> list[Registration]:
    """The registrations an institution nominated for an event, oldest first."""
    await _event(ctx, event_id)
    return await ctx.institutions.nominations(event_id, institution_code)


async def request_group_bill(ctx: Context, session: InstitutionSession, event_id: str) -> int:
    """The contact person asks for one bill for the institution's nominees of this event
    awaiting payment (issue 14): a ``GroupBillRequested`` notice from the institution's
    outbox; payments opens the bill. Returns how many nominees it is for."""
    await _event(ctx, event_id)
    code = session.institution.code
    found = await ctx.institutions.nominations(event_id, code)
    ids = [r.id for r in found if r.status == "pending_payment"]
    for _ in range(_ATTEMPTS):
        institution = await ctx.institutions.get_institution(code)
        if institution is None:
            raise DomainError("institution_not_found", "No such institution", field="code")
        contact = institution.contact(session.contact["id"]) or session.contact
        institution.request_group_bill(
            event_id=event_id, registration_ids=ids, contact=contact, now=ctx.clock()
        )
        if await ctx.institutions.save_institution(institution):
            ilog.info("group_bill_requested", institution=code, nominees=len(ids))
            return len(ids)
    raise DomainError("concurrent_change", "The institution kept changing; try again")


async def nominate(
    ctx: Context, institution: Institution, event_id: str, request: RegistrationRequest
) -> Registered:
    """Nominate one officer (``nomination_required`` categories included)."""
    event = await _event(ctx, event_id)
    check_nominable(event, nomination_category(request), ctx.clock())
    registered = await register_participant(
        ctx, event_id, request, via="nomination", institution_code=institution.code
    )
    ilog.info("officer_nominated", institution=institution.code, registration_id=registered.id)
    return registered


@dataclass(frozen=True)
class NominationReport:
    """What a nominations file did (or, in a dry run, would do)."""

    dry_run: bool
    rows: int
    problems: list[RowProblem]
    registered: list[Registered] = field(default_factory=list)


async def nominate_from_csv(
    ctx: Context, institution: Institution, event_id: str, text: str, *, dry_run: bool
) -> NominationReport:
    """Nominate the officers of a CSV file (``NOMINATION_CSV_COLUMNS``): all or nothing.

    Every row is checked first — its fields, its category, an email twice in the file or
    already registered for the event — and a file with any problem nominates nobody;
    the report names each row (the header is line 1) and field. A dry run stops there.
    A clean file is then registered row by row through the one registration use case.
    """
    event = await _event(ctx, event_id)
    now = ctx.clock()
    rows, problems = read_csv(text, NOMINATION_CSV_REQUIRED, NOMINATION_CSV_COLUMNS)
    requests: list[tuple[int, RegistrationRequest]] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        payload = nomination_payload(cells, institution)
        try:
            request = RegistrationRequest.model_validate(payload)
        except ValidationError as exc:
            problems += [
                RowProblem(p.row, "category" if p.field == "cadre" else p.field, p.reason)
                for p in csv_problems(exc, line, {})
            ]
            continue
        try:
            check_nominable(event, nomination_category(request), now)
            if event.registration_refusal(now) is None:
                category = event.check_can_register(request.category, now, via="nomination")
                event.check_answers(category.code, request.answers)
        except DomainError as exc:
            problems.append(RowProblem(line, exc.field or "category", exc.message))
            continue
        if request.email in seen:
            problems.append(
                RowProblem(line, "email", f"the same email as line {seen[request.email]}")
            )
            continue
        seen[request.email] = line
        if await ctx.store.find_by_email(event_id, request.email) is not None:
            problems.append(RowProblem(line, "email", "already registered for this event"))
            continue
        requests.append((line, request))
    refusal = event.registration_refusal(now)
    if refusal is not None:
        problems.insert(0, RowProblem(1, "event", refusal.message))
    if problems and not dry_run:
        raise refused_import(problems, dry_run=False)
    if problems or dry_run:
        return NominationReport(dry_run=dry_run, rows=len(rows), problems=problems)
    registered = [await nominate(ctx, institution, event_id, request) for _, request in requests]
    return NominationReport(dry_run=False, rows=len(rows), problems=[], registered=registered)


async def _nomination(
    ctx: Context, institution: Institution, registration_id: str
) -> tuple[Registration, Event]:
    registration = await ctx.store.get_registration(registration_id)
    if (
        registration is None
        or getattr(registration, "institution_code", None) != institution.code
        or registration.erased_at
    ):
        raise DomainError("nomination_not_found", "No such nomination of your institution.")
    event = await _event(ctx, registration.event_id)
    if event.starts_at <= ctx.clock():
        raise DomainError("event_started", "The event has started: nominations are closed.")
    return registration, event


def _withdrawn_reason(institution: Institution, language: str) -> str:
    if language == "en":
        return f"withdrawn by your institution, {institution.name_en}"
    return f"imeondolewa na taasisi yako, {institution.name_sw}"


async def withdraw_nomination(
    ctx: Context, institution: Institution, registration_id: str
) -> Registration:
    """Withdraw a nominee before the event (their seat goes to the waiting list)."""
    registration, event = await _nomination(ctx, institution, registration_id)
    written = await cancel_registration(
        ctx,
        registration.id,
        by="organiser",
        reason=_withdrawn_reason(institution, registration.language),
        event_id=event.id,
        actor=f"institution:{institution.code}",
        action="withdrawn",
    )
    ilog.info("nomination_withdrawn", institution=institution.code, registration_id=registration.id)
    return written


async def replace_nomination(
    ctx: Context,
    institution: Institution,
    registration_id: str,
    request: RegistrationRequest,
) -> Registered:
    """Replace a nominee by another officer before the event, keeping the seat.

    The old registration is cancelled (its nominee is told) and the new officer is
    registered as a nomination of their own (their own reference, link and ticket:
    nothing of the old person's carries over). A confirmed nominee's seat is not
    offered to the waiting list: it is released and taken by the replacement at once.
    """
    registration, event = await _nomination(ctx, institution, registration_id)
    check_nominable(event, nomination_category(request), ctx.clock())
    if request.email != registration.email and await ctx.store.find_by_email(
        event.id, request.email
    ):
        raise _already_registered()
    written, previous = await _change_registration(
        ctx,
        registration.id,
        lambda r: r.cancel(
            event,
            by="organiser",
            reason=_withdrawn_reason(institution, r.language),
            now=ctx.clock(),
            actor=f"institution:{institution.code}",
            action="replaced",
        ),
    )
    if previous == "confirmed":
        # For the replacement, not the waiting list.
        await ctx.store.release_seat(event, written.category)
    registered = await register_participant(
        ctx, event.id, request, via="nomination", institution_code=institution.code
    )
    ilog.info(
        "nomination_replaced",
        institution=institution.code,
        registration_id=written.id,
        replacement_id=registered.id,
    )
    return registered


# -- payments (issue 14) ---------------------------------------------------------------------
# payments.v1 tells what became of a pending_payment registration's bill: its control
# number and payments are noted (the /my page shows them); paid → confirmed with the
# ticket; expired → cancelled (cause unpaid), the seat released, the first waiting
# promoted. Each is idempotent: a re-delivered event finds the change made.


async def note_bill(ctx: Context, registration_ids: list[str], **bill: Any) -> int:
    """Keep what payments.v1 says of the bill (no event: nothing to tell anyone)."""
    noted = 0
    for registration_id in registration_ids:
        for _ in range(_ATTEMPTS):
            registration = await ctx.store.get_registration(registration_id)
            if registration is None or not registration.note_bill(**bill):
                break
            if await _save(ctx, registration):
                noted += 1
                break
    return noted


async def registration_paid(ctx: Context, registration_ids: list[str], *, bill_id: str) -> int:
    confirmed = 0
    for registration_id in registration_ids:
        registration = await ctx.store.get_registration(registration_id)
        if registration is None:
            continue
        event = await _event(ctx, registration.event_id)
        _, done = await _change_registration(
            ctx,
            registration_id,
            lambda r, ev=event: r.mark_paid(ev, ctx.signer, bill_id=bill_id, now=ctx.clock()),
        )
        confirmed += bool(done)
    return confirmed


async def bill_expired(ctx: Context, registration_ids: list[str], *, bill_id: str) -> int:
    """Unpaid by its expiry: cancelled (cause unpaid), the seat to the first waiting."""
    cancelled = 0
    for registration_id in registration_ids:
        registration = await ctx.store.get_registration(registration_id)
        if registration is None or registration.status != "pending_payment":
            continue
        event = await _event(ctx, registration.event_id)

        def cancel(r: Registration, ev: Event = event) -> str | None:
            if r.status != "pending_payment":
                return None
            r.note_bill(status="expired")
            return r.cancel(ev, by="organiser", reason="unpaid", now=ctx.clock(), cause="unpaid")

        written, previous = await _change_registration(ctx, registration_id, cancel)
        if previous in SEAT_HOLDING:
            await _release_choices(ctx, event.id, event.limited_picks(written.answers))
            await ctx.store.release_seat(event, written.category)
            await promote_waitlisted(ctx, event.id, 1)
            cancelled += 1
    return cancelled
