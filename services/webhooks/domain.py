"""The webhooks domain: subscriptions, deliveries and their rules. Pure: no I/O.

A ``Subscription`` is an e-GA system's endpoint: a target URL, the event types it wants
(patterns such as ``tz.go.ega.registration.*``), its signing secrets (rotated with an
overlap), whether an admin granted it personal data and for what purpose, active or
paused. A ``Delivery`` is one event for one subscription: its payload as that
subscription may see it, its attempts, when it is next due, and its outcome.

Every method takes the time as a parameter; randomness (jitter, secrets) is passed in.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel
from standardwebhooks.webhooks import Webhook

from shared.aggregate import Aggregate
from shared.contracts import IntegrationEvent, event_class
from shared.errors import DomainError

SubscriptionStatus = Literal["active", "paused"]
DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]
SECRET_PREFIX = "whsec_"
CLOUDEVENTS_JSON = "application/cloudevents+json"


# --------------------------------------------------------------------------- targets


def parse_target(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a target URL; ``invalid_target_url`` if it is not one.

    Only http(s), a host, no credentials in the URL (they would be logged and shown).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise DomainError("invalid_target_url", f"Not a URL: {exc}", field="url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError(
            "invalid_target_url", "The target must be an http(s) URL with a host.", field="url"
        )
    if parts.username or parts.password:
        raise DomainError(
            "invalid_target_url", "Credentials do not belong in the target URL.", field="url"
        )
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host names literally (``10.1.2.3``, ``[::1]``), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local (cloud metadata lives there), private, or otherwise not public."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return bool(
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class TargetPolicy:
    """Which internal targets are allowed anyway (networks such as ``127.0.0.1/32``, or
    host names); every other internal address is refused."""

    allowed: tuple[str, ...] = ()
    # Refuse public targets too: only the allow-list (a sandboxed dev or test stack).
    only_allowed: bool = False

    def may_resolve(self, host: str) -> bool:
        """Whether looking the name up is allowed at all (a sandbox resolves only the
        names on its list: no query leaves the machine for a name it would refuse)."""
        return not self.only_allowed or host in {e.lower() for e in self.allowed}

    def _allows(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        for entry in self.allowed:
            if entry.lower() == host:
                return True
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse (``target_not_allowed``) if any address the host resolves to is internal
        and not allowed. Checking every address: a name with one public and one private
        address must not slip through."""
        found = list(addresses)
        if not found:
            raise DomainError("target_unresolvable", f"{host} does not resolve.", field="url")
        for raw in found:
            ip = ipaddress.ip_address(raw.split("%")[0])
            if self.only_allowed and not self._allows(host, ip):
                raise DomainError(
                    "target_not_allowed",
                    "This deployment delivers only to the targets on its allow-list.",
                    field="url",
                )
            if _internal(ip) and not self._allows(host, ip):
                raise DomainError(
                    "target_not_allowed",
                    "The target resolves to a loopback, link-local or private address; "
                    "such targets are refused unless an operator allows them.",
                    field="url",
                )


# --------------------------------------------------------------------------- event types

_PATTERN = re.compile(r"^[A-Za-z0-9_.*-]{1,200}$")


def check_patterns(patterns: Sequence[str], known_types: Iterable[str]) -> list[str]:
    """The event-type patterns, each checked: well formed and matching some known type
    (a typo would otherwise subscribe to nothing, silently)."""
    known = list(known_types)
    if not patterns:
        raise DomainError(
            "event_types_required", "Name at least one event type.", field="event_types"
        )
    out: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not _PATTERN.match(pattern):
            raise DomainError(
                "invalid_event_type", f"Not an event-type pattern: {pattern!r}", field="event_types"
            )
        if not any(type_matches(pattern, t) for t in known):
            raise DomainError(
                "invalid_event_type",
                f"{pattern!r} matches no event type of the streams delivered here.",
                field="event_types",
            )
        if pattern not in out:
            out.append(pattern)
    return out


def type_matches(pattern: str, ce_type: str) -> bool:
    """``*`` stands for anything (dots included): ``tz.go.ega.registration.*``."""
    return fnmatch.fnmatchcase(ce_type, pattern)


# --------------------------------------------------------------------------- personal data

# A model whose docstring starts so holds personal data (shared/contracts marks them).
PERSONAL_MARK = "Personal data"
# Fields of such a model that do not identify the person: kept without a grant.
NOT_IDENTIFYING = frozenset({"language", "institution"})
# Outside those models: a signed ticket is a credential; free text (a reason, a note)
# may name people; ``*_by`` names the person or key that acted.
CREDENTIALS = frozenset({"ticket"})
FREE_TEXT = frozenset({"reason", "note"})


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model inside an annotation (Optional, list) and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        inner, _ = _models_in(get_args(annotation)[0])
        return inner, inner is not None
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            inner, many = _models_in(arg)
            if inner is not None:
                return inner, many
    return None, False


def _is_free_string(annotation: Any) -> bool:
    """A ``str`` (or ``str | None``) a person writes, not a ``Literal`` of codes."""
    if annotation is str:
        return True
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return any(a is str for a in get_args(annotation))
    return False


def personal_paths(cls: type[BaseModel]) -> list[str]:
    """The paths of an event's personal fields, derived from its contract model:
    ``participant.full_name``, ``focal_persons[].email``, ``ticket``, ``approved_by`` …"""
    paths: list[str] = []

    def walk(model: type[BaseModel], prefix: str, personal: bool) -> None:
        personal = personal or (model.__doc__ or "").lstrip().startswith(PERSONAL_MARK)
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            inner, many = _models_in(info.annotation)
            if inner is not None:
                walk(inner, f"{path}[]." if many else f"{path}.", personal)
            elif personal:
                if name not in NOT_IDENTIFYING:
                    paths.append(path)
            elif name in CREDENTIALS or (
                _is_free_string(info.annotation) and (name in FREE_TEXT or name.endswith("_by"))
            ):
                paths.append(path)

    walk(cls, "", False)
    return paths


def without_personal_data(data: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of a payload with the fields at ``paths`` left out."""
    out = json.loads(json.dumps(data))

    def drop(node: Any, parts: list[str]) -> None:
        if not parts or node is None:
            return
        head, rest = parts[0], parts[1:]
        many = head.endswith("[]")
        key = head.removesuffix("[]")
        if not isinstance(node, dict) or key not in node:
            return
        if not rest:
            node.pop(key, None)
        elif many:
            for item in node[key] or []:
                drop(item, rest)
        else:
            drop(node[key], rest)

    for path in paths:
        drop(out, path.split("."))
    return out


def payload_for(
    event_cls: type[IntegrationEvent] | None, data: dict[str, Any], *, granted: bool
) -> dict[str, Any]:
    """The payload a subscription receives: all of it with a grant, else without the
    personal fields (an unknown type without a grant: nothing but its keys' names is
    safe to guess, so it is left out entirely)."""
    if granted:
        return data
    if event_cls is None:
        return {}
    return without_personal_data(data, personal_paths(event_cls))


# --------------------------------------------------------------------------- secrets and signing


def new_secret(random_bytes: bytes) -> str:
    """A signing secret in the Standard Webhooks form ``whsec_<base64>``."""
    if len(random_bytes) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def signature_header(msg_id: str, at: datetime, body: str, secrets: Sequence[str]) -> str:
    """``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` per valid secret, space-separated
    (two during a rotation's overlap, as the specification allows)."""
    return " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets)


@dataclass(frozen=True)
class SigningSecret:
    value: str
    created_at: datetime
    # None: the current secret; else valid until then (the previous one, overlapping).
    expires_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class PersonalDataGrant:
    """An admin allowed this subscription personal data, for this purpose (PDPA)."""

    purpose: str
    granted_by: str
    granted_at: datetime


# --------------------------------------------------------------------------- subscription


@dataclass(kw_only=True)
class Subscription(Aggregate):
    id: str
    url: str
    event_types: list[str]
    label: str
    owner_email: str
    secrets: list[SigningSecret]
    created_at: datetime
    updated_at: datetime
    created_by: str
    status: SubscriptionStatus = "active"
    paused_reason: str | None = None
    paused_at: datetime | None = None
    personal_data: PersonalDataGrant | None = None
    consecutive_failures: int = 0
    # When the current run of failures began (None after a success).
    failing_since: datetime | None = None
    # The owner is told once per automatic pause; set in the same write as the pause.
    owner_notice_pending: bool = False
    owner_notified_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    @classmethod
    def create(
        cls,
        *,
        id: str,
        url: str,
        event_types: list[str],
        label: str,
        owner_email: str,
        secret: str,
        personal_data_purpose: str | None,
        by: str,
        now: datetime,
    ) -> Subscription:
        grant = None
        if personal_data_purpose is not None:
            purpose = personal_data_purpose.strip()
            if not purpose:
                raise DomainError(
                    "purpose_required",
                    "Granting personal data needs the purpose it is used for.",
                    field="personal_data.purpose",
                )
            grant = PersonalDataGrant(purpose=purpose, granted_by=by, granted_at=now)
        return cls(
            id=id,
            url=url.strip(),
            event_types=event_types,
            label=label.strip(),
            owner_email=owner_email,
            secrets=[SigningSecret(secret, now)],
            created_at=now,
            updated_at=now,
            created_by=by,
            personal_data=grant,
        )

    @property
    def active(self) -> bool:
        return self.status == "active"

    def change(
        self,
        *,
        now: datetime,
        url: str | None = None,
        event_types: list[str] | None = None,
        label: str | None = None,
        owner_email: str | None = None,
    ) -> list[str]:
        """Change what was given (the caller checked the URL and the patterns); the
        names of what changed."""
        changed = []
        for name, value in (
            ("url", url.strip() if url is not None else None),
            ("event_types", event_types),
            ("label", label.strip() if label is not None else None),
            ("owner_email", owner_email),
        ):
            if value is not None and value != getattr(self, name):
                setattr(self, name, value)
                changed.append(name)
        if changed:
            self.updated_at = now
        return changed

    def grant_personal_data(self, *, purpose: str, by: str, now: datetime) -> None:
        """Personal data from the next recorded event on, for ``purpose`` (PDPA)."""
        purpose = purpose.strip()
        if not purpose:
            raise DomainError(
                "purpose_required",
                "Granting personal data needs the purpose it is used for.",
                field="purpose",
            )
        self.personal_data = PersonalDataGrant(purpose=purpose, granted_by=by, granted_at=now)
        self.updated_at = now

    def revoke_personal_data(self, *, now: datetime) -> None:
        """No personal data in what is recorded from now on."""
        if self.personal_data is None:
            raise DomainError("personal_data_not_granted", "No personal data was granted.")
        self.personal_data = None
        self.updated_at = now

    def matches(self, ce_type: str) -> bool:
        return any(type_matches(p, ce_type) for p in self.event_types)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with now: the current one first, then any still overlapping."""
        valid = [s for s in self.secrets if s.valid_at(now)]
        valid.sort(key=lambda s: s.expires_at is not None)
        return [s.value for s in valid]

    def rotate_secret(self, new: str, *, overlap_s: float, now: datetime) -> datetime | None:
        """Make ``new`` the current secret; the old one stays valid ``overlap_s`` more.

        Returns until when the previous secret is still valid (None without overlap).
        Without overlap (a leaked secret) every earlier secret stops at once; secrets
        that have expired are dropped.
        """
        until = now + timedelta(seconds=overlap_s) if overlap_s > 0 else None
        kept = []
        if until is not None:
            for s in self.secrets:
                if s.valid_at(now):
                    ends = until if s.expires_at is None else min(s.expires_at, until)
                    kept.append(SigningSecret(s.value, s.created_at, ends))
        self.secrets = [SigningSecret(new, now), *kept]
        self.updated_at = now
        return until

    def pause(self, *, reason: str, now: datetime) -> None:
        if self.status == "paused":
            raise DomainError("subscription_paused", "The subscription is paused already.")
        self.status = "paused"
        self.paused_reason = reason
        self.paused_at = now
        self.updated_at = now

    def resume(self, *, now: datetime) -> None:
        """Active again; the run of failures starts over, held deliveries go out."""
        if self.status == "active":
            raise DomainError("subscription_active", "The subscription is active already.")
        self.status = "active"
        self.paused_reason = None
        self.paused_at = None
        self.consecutive_failures = 0
        self.failing_since = None
        self.owner_notice_pending = False
        self.updated_at = now

    def record_success(self, now: datetime) -> None:
        self.consecutive_failures = 0
        self.failing_since = None
        self.last_success_at = now

    def record_failure(
        self, now: datetime, *, pause_after: int, failing_for_s: float = 0.0
    ) -> bool:
        """Count a failed attempt; True if this failure paused the subscription: at least
        ``pause_after`` failures in a row, over at least ``failing_for_s`` (a burst of
        events to an endpoint restarting for a minute must not pause it)."""
        self.consecutive_failures += 1
        self.last_failure_at = now
        if self.failing_since is None:
            self.failing_since = now
        long_enough = (now - self.failing_since).total_seconds() >= failing_for_s
        if self.status == "active" and self.consecutive_failures >= pause_after and long_enough:
            self.pause(reason=f"{self.consecutive_failures} failed attempts in a row", now=now)
            self.owner_notice_pending = True
            return True
        return False

    def owner_notified(self, now: datetime) -> None:
        self.owner_notice_pending = False
        self.owner_notified_at = now


# --------------------------------------------------------------------------- delivery


def delivery_id(subscription_id: str, event_id: str) -> str:
    """One delivery per (subscription, CloudEvent id): a redelivered record adds none."""
    return f"{subscription_id}:{event_id}"


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    latency_ms: int
    status_code: int | None = None
    # Our own words (``HTTP 503``, ``timeout``): never the receiver's response body.
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def retry_delay(
    failed_attempts: int, schedule: Sequence[float], jitter: float, rand: float
) -> float | None:
    """Seconds to wait after the ``failed_attempts``-th failure, jittered by ``rand`` in
    [0, 1); None once the schedule is used up (the delivery has failed)."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = schedule[failed_attempts - 1]
    return max(0.0, base * (1 + jitter * (2 * rand - 1)))


@dataclass(kw_only=True)
class Delivery(Aggregate):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    source: str
    event_time: datetime | None
    # The aggregate the event is about (the Kafka key): order is kept per key.
    key: str
    data: dict[str, Any]
    personal_data: bool
    # Consumption order (epoch seconds): within a subscription and a key, older first.
    recorded_at: float
    status: DeliveryStatus = "pending"
    next_attempt_at: float = 0.0
    attempts_count: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    last_error: str | None = None
    delivered_at: datetime | None = None
    replays: int = 0
    # Waiting for something else (a paused subscription, an older event of the key),
    # not for a retry's backoff: released early when that is over.
    held: bool = False
    # Attempts numbered up to here came before the last replay.
    replayed_after: int = 0

    @classmethod
    def record(
        cls,
        subscription: Subscription,
        *,
        event_id: str,
        event_type: str,
        source: str,
        event_time: datetime | None,
        key: str,
        data: dict[str, Any],
        event_cls: type[IntegrationEvent] | None,
        recorded_at: float,
    ) -> Delivery:
        granted = subscription.personal_data is not None
        return cls(
            id=delivery_id(subscription.id, event_id),
            subscription_id=subscription.id,
            event_id=event_id,
            event_type=event_type,
            source=source,
            event_time=event_time,
            key=key,
            data=payload_for(event_cls, data, granted=granted),
            personal_data=granted,
            recorded_at=recorded_at,
        )

    @property
    def finished(self) -> bool:
        return self.status in ("delivered", "failed")

    def cloudevent(self) -> dict[str, Any]:
        """The CloudEvent in JSON structured mode (the body of the POST)."""
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.event_id,
            "source": self.source,
            "type": self.event_type,
            "datacontenttype": "application/json",
            # CloudEvents' partitioning extension: events of one key keep their order.
            "partitionkey": self.key,
        }
        if self.event_time is not None:
            event["time"] = self.event_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if not self.personal_data:
            event["personaldata"] = "omitted"
        event["data"] = self.data
        return event

    def body(self) -> str:
        return json.dumps(self.cloudevent(), separators=(",", ":"), ensure_ascii=False)

    def headers(self, subscription: Subscription, now: datetime) -> dict[str, str]:
        """Standard Webhooks headers: the id is the CloudEvent's (the same on every retry
        and replay, so a receiver deduplicates on it); the timestamp is this attempt's."""
        at = now.astimezone(UTC).replace(microsecond=0)
        return {
            "content-type": CLOUDEVENTS_JSON,
            "webhook-id": self.event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature_header(
                self.event_id, at, self.body(), subscription.signing_secrets(now)
            ),
        }

    def _log(self, attempt: Attempt, keep: int) -> None:
        self.attempts_count = attempt.number
        self.attempts = [*self.attempts, attempt][-keep:]

    def succeeded(
        self, *, status_code: int, latency_ms: int, now: datetime, keep: int = 20
    ) -> None:
        self._log(Attempt(self.attempts_count + 1, now, latency_ms, status_code), keep)
        self.status = "delivered"
        self.held = False
        self.delivered_at = now
        self.last_error = None
        self.next_attempt_at = 0.0

    def failed(
        self,
        *,
        error: str,
        status_code: int | None,
        latency_ms: int,
        now: datetime,
        schedule: Sequence[float],
        jitter: float,
        rand: float,
        keep: int = 20,
    ) -> bool:
        """Record a failed attempt and schedule the next; True if it was the last one."""
        self._log(Attempt(self.attempts_count + 1, now, latency_ms, status_code, error), keep)
        self.last_error = error
        self.held = False
        # The replays' attempts count from the replay: a replayed delivery gets the whole
        # schedule again.
        since_replay = self.attempts_count - self.replayed_after
        delay = retry_delay(since_replay, schedule, jitter, rand)
        if delay is None:
            self.status = "failed"
            self.next_attempt_at = 0.0
            return True
        self.status = "pending"
        self.next_attempt_at = now.timestamp() + delay
        return False

    def erase_personal_data(self) -> bool:
        """The participant's data was erased at the source (``PersonalDataErased``): keep
        no copy of it here, and send none from now on. True if there was one."""
        if not self.personal_data:
            return False
        self.data = payload_for(event_class(self.event_type), self.data, granted=False)
        self.personal_data = False
        return True

    def hold(self, until: float) -> None:
        """Not now (subscription paused, an older event of the key still pending): due
        again at ``until``, no attempt counted."""
        self.status = "pending"
        self.next_attempt_at = until
        self.held = True

    def replay(self, now: datetime) -> None:
        """Send again, from the start of the schedule (same ``webhook-id``)."""
        self.status = "pending"
        self.held = False
        self.next_attempt_at = now.timestamp()
        self.replays += 1
        self.replayed_after = self.attempts_count
        self.delivered_at = None
