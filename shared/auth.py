"""API-key authentication and role checks.

Keys are opaque secrets presented as ``Authorization: Bearer <key>`` or ``X-API-Key``;
only their SHA-256 hashes are kept. The dev stack passes a bootstrap admin key
(``MKUTANO_BOOTSTRAP_ADMIN_KEY``); production has no default credential.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request

from shared.errors import ApiError

Role = Literal["admin", "organiser", "registrar", "coordinator", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "organiser", "registrar", "coordinator", "auditor")


@dataclass(frozen=True)
class Principal:
    """Who is calling, with which roles (and an optional scope, e.g. conference ids)."""

    id: str
    roles: frozenset[str]
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_any(self, roles: tuple[str, ...]) -> bool:
        return "admin" in self.roles or bool(self.roles.intersection(roles))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


KeyLookup = Callable[[str], Awaitable[Principal | None]]


class Authenticator:
    """Resolves a presented credential to a principal; pluggable lookups (keys, JWT)."""

    def __init__(self, bootstrap_admin_key: str | None = None) -> None:
        self._bootstrap_hash = hash_key(bootstrap_admin_key) if bootstrap_admin_key else None
        self._lookups: list[KeyLookup] = []

    def add_lookup(self, lookup: KeyLookup) -> None:
        self._lookups.append(lookup)

    async def authenticate(self, credential: str) -> Principal | None:
        digest = hash_key(credential)
        if self._bootstrap_hash and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(id="bootstrap-admin", roles=frozenset({"admin"}))
        for lookup in self._lookups:
            principal = await lookup(credential)
            if principal is not None:
                return principal
        return None


def credential_from(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: 401 without a valid credential, 403 without one of ``roles``."""

    async def dependency(request: Request) -> Principal:
        credential = credential_from(request)
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(credential) if credential else None
        if principal is None:
            raise ApiError(401, "unauthenticated", "A valid API key or token is required.")
        # Known before the role check: a refused write (403) is audited under its caller.
        request.state.principal = principal
        if not principal.has_any(roles):
            raise ApiError(403, "forbidden", f"This needs one of the roles: {', '.join(roles)}.")
        return principal

    # Read by the OpenAPI generator (shared.http): this route needs a credential.
    dependency.mkutano_roles = roles  # type: ignore[attr-defined]
    return dependency
