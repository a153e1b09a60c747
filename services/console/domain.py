"""The console's own rules: staff accounts, sessions, CSRF, roles, tokens. Pure: no I/O.

The console owns no business data; what it decides itself is who is signed in, for how
long, what each person may see and do, and the short-lived token it signs for them so
that every service can authorize their calls and name them in its audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from shared.auth import ROLES
from shared.timeutil import iso

LANGUAGES = ("sw", "en")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LENGTH = 12

# What each part of the console needs (docs/security.md's roles; admin may do all).
# A page the person may not open is not in their navigation, and asking for it is 403.
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "events": ("organiser", "registrar", "auditor"),
    "dashboard": ("organiser", "auditor"),
    "payments": ("organiser", "auditor"),
    "registrations": ("organiser",),
    "decide": ("organiser",),
    "export": ("organiser",),
    "announcements": ("organiser",),
    "edit_event": ("organiser",),
    "door": ("registrar", "organiser"),
    "badges": ("registrar", "organiser"),
    "coordinators": ("coordinator",),
    "resolutions": ("coordinator", "auditor"),
    "users": ("admin",),
    "webhooks": ("admin",),
}


class ConsoleError(Exception):
    """A rule of the console refused (sign-in, CSRF, a role)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def may(roles: frozenset[str] | set[str], page: str) -> bool:
    """True if a person with ``roles`` may open ``page``."""
    return "admin" in roles or bool(set(roles) & set(PAGE_ROLES[page]))


def valid_roles(roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Mkutano's roles among ``roles``; anything else is refused (not silently dropped)."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConsoleError("unknown_role", f"Unknown roles: {', '.join(unknown)}", field="roles")
    if not roles:
        raise ConsoleError("no_role", "A staff account needs at least one role.", field="roles")
    return frozenset(roles)


# -- passwords and second factor -------------------------------------------------------------

_HASHER = PasswordHasher()  # argon2id, RFC 9106's second recommended parameters


def hash_password(password: str) -> str:
    """An argon2id hash of a password that meets the policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConsoleError(
            "weak_password",
            f"A password needs at least {MIN_PASSWORD_LENGTH} characters.",
            field="password",
        )
    return _HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


# A hash to verify against when the account does not exist: the answer takes as long.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Mkutano")


def totp_matches(secret: str, code: str, now: datetime) -> bool:
    """RFC 6238 (30 s steps, 6 digits), one step either side for clock drift."""
    code = code.strip().replace(" ", "")
    return bool(code.isdigit()) and pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1)


# -- accounts --------------------------------------------------------------------------------


@dataclass
class StaffAccount:
    """A local staff account (small deployments and the dev stack; production uses OIDC)."""

    id: str  # the username
    name: str
    roles: frozenset[str]
    password_hash: str
    language: str = "sw"
    totp_secret: str | None = None
    failed_sign_ins: int = 0
    locked_until: str | None = None
    disabled: bool = False
    created_at: str = ""
    rev: int = 0

    @classmethod
    def create(
        cls,
        username: str,
        name: str,
        roles: list[str],
        password: str,
        now: datetime,
        *,
        language: str = "sw",
        totp: bool = False,
    ) -> StaffAccount:
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise ConsoleError(
                "invalid_username",
                "A username is 2-64 characters: lower-case letters, digits, . _ @ -",
                field="username",
            )
        if not name.strip() or len(name) > 200:
            raise ConsoleError("invalid_name", "A name is 1-200 characters.", field="name")
        if language not in LANGUAGES:
            raise ConsoleError("invalid_language", "sw or en.", field="language")
        return cls(
            id=username,
            name=name.strip(),
            roles=valid_roles(roles),
            password_hash=hash_password(password),
            language=language,
            totp_secret=new_totp_secret() if totp else None,
            created_at=iso(now),
        )

    def locked(self, now: datetime) -> bool:
        return bool(self.locked_until and self.locked_until > iso(now))

    def check_sign_in(
        self,
        password: str,
        totp_code: str | None,
        now: datetime,
        *,
        max_failures: int,
        lockout: timedelta,
    ) -> bool:
        """True if the password (and the code, with a second factor) are right. Counts
        failures and locks the account for ``lockout`` after ``max_failures``."""
        if self.disabled or self.locked(now):
            return False
        ok = password_matches(self.password_hash, password)
        if ok and self.totp_secret:
            ok = totp_matches(self.totp_secret, totp_code or "", now)
        if ok:
            self.failed_sign_ins = 0
            self.locked_until = None
            if password_needs_rehash(self.password_hash):
                self.password_hash = _HASHER.hash(password)
            return True
        self.failed_sign_ins += 1
        if self.failed_sign_ins >= max_failures:
            self.locked_until = iso(now + lockout)
            self.failed_sign_ins = 0
        return False


def spend_dummy_verification(password: str) -> None:
    """Verify against a throwaway hash: an unknown username costs what a known one does."""
    password_matches(_DUMMY_HASH, password)


# -- sessions --------------------------------------------------------------------------------


def session_key(session_id: str) -> str:
    """What the store keeps for a session id (its hash: a copy of the database opens
    no session)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class StaffSession:
    """One signed-in person in one browser: the cookie holds ``id``, the store its hash."""

    id: str
    person_id: str
    name: str
    roles: frozenset[str]
    language: str
    csrf_token: str
    created_at: str
    last_seen_at: str
    source: str = "local"  # or "oidc"
    expires_at: str = ""
    flash: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        person_id: str,
        name: str,
        roles: frozenset[str],
        language: str,
        now: datetime,
        *,
        absolute: timedelta,
        source: str = "local",
    ) -> StaffSession:
        return cls(
            id=secrets.token_urlsafe(32),
            person_id=person_id,
            name=name,
            roles=frozenset(roles),
            language=language if language in LANGUAGES else "sw",
            csrf_token=secrets.token_urlsafe(32),
            created_at=iso(now),
            last_seen_at=iso(now),
            source=source,
            expires_at=iso(now + absolute),
        )

    def expired(self, now: datetime, *, idle: timedelta) -> bool:
        """Past the absolute timeout, or idle longer than ``idle``."""
        return iso(now) >= self.expires_at or self.last_seen_at < iso(now - idle)

    def touch(self, now: datetime) -> bool:
        """Seen now; True if the store should be told (at most once a minute)."""
        due = self.last_seen_at < iso(now - timedelta(seconds=60))
        if due:
            self.last_seen_at = iso(now)
        return due

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token, token or "")

    def may(self, page: str) -> bool:
        return may(self.roles, page)


# -- tokens the services verify -------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Signs short-lived EdDSA (Ed25519) JWTs for the person signed in; publishes the JWKS.

    The services verify them from the JWKS (``shared.jwt_auth``: ``MKUTANO_JWT_*``):
    issuer, audience, expiry; ``sub`` names the person, ``roles`` their roles, so every
    service's audit log shows who acted.
    """

    ALGORITHM = "EdDSA"

    def __init__(self, key: Ed25519PrivateKey, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
        # RFC 7638 thumbprint: the key id.
        canonical = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": self._jwk["x"]}, separators=(",", ":")
        )
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())

    @classmethod
    def from_pem(cls, pem: bytes, **kwargs: Any) -> TokenIssuer:
        key = load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the console's signing key must be an Ed25519 private key")
        return cls(key, **kwargs)

    @classmethod
    def from_seed(cls, seed: bytes, **kwargs: Any) -> TokenIssuer:
        return cls(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()), **kwargs)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": self.ALGORITHM}]}

    def issue(self, session: StaffSession, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": session.person_id,
            "name": session.name,
            "roles": sorted(session.roles),
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm=self.ALGORITHM, headers={"kid": self.kid})


# -- OpenID Connect --------------------------------------------------------------------------


@dataclass
class PendingSignIn:
    """An authorization-code sign-in under way: state, PKCE verifier and nonce; the
    language the person chose on the sign-in page (None if they chose none) and the page
    to open after it."""

    state: str
    code_verifier: str
    nonce: str
    created_at: str
    language: str | None = None
    next: str = "/events"

    @classmethod
    def start(
        cls, now: datetime, *, language: str | None = None, next: str = "/events"
    ) -> PendingSignIn:
        return cls(
            state=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(24),
            created_at=iso(now),
            language=language if language in LANGUAGES else None,
            next=next,
        )

    @property
    def code_challenge(self) -> str:
        """S256 (RFC 7636)."""
        return _b64(hashlib.sha256(self.code_verifier.encode()).digest())

    def expired(self, now: datetime) -> bool:
        return self.created_at < iso(now - timedelta(minutes=10))


def roles_from_claims(claims: dict[str, Any], claim: str) -> frozenset[str]:
    """The Mkutano roles an identity provider's token grants (others ignored)."""
    raw = claims.get(claim) or []
    if isinstance(raw, str):
        raw = raw.split()
    return frozenset(r for r in raw if isinstance(r, str) and r in ROLES)


def language_of_locale(locale: object) -> str | None:
    """The console's language for an OIDC ``locale`` claim (BCP 47: ``en-GB``, ``sw_TZ``),
    or None when it names neither Swahili nor English."""
    if not isinstance(locale, str):
        return None
    primary = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in LANGUAGES else None
