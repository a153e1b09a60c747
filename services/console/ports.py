"""What the console's use cases may ask for: its account and session store, and the
other services' public HTTP APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.console.domain import PendingSignIn, StaffAccount, StaffSession


class AccountExists(Exception):
    """A staff account with that username exists already."""


class ConsoleStore(Protocol):
    async def add_account(self, account: StaffAccount) -> None:
        """Insert; raises AccountExists."""

    async def account(self, username: str) -> StaffAccount | None: ...

    async def accounts(self) -> list[StaffAccount]: ...

    async def save_account(self, account: StaffAccount) -> bool:
        """Revision-checked write; False if someone else changed it first."""

    async def add_session(self, session: StaffSession) -> None: ...

    async def session(self, session_id: str) -> StaffSession | None: ...

    async def save_session(self, session: StaffSession) -> None: ...

    async def end_session(self, session_id: str) -> None: ...

    async def add_pending_sign_in(self, pending: PendingSignIn) -> None: ...

    async def take_pending_sign_in(self, state: str) -> PendingSignIn | None:
        """The pending sign-in of ``state``, removed (a state is used once)."""

    async def remember_person(
        self, person_id: str, *, name: str | None = None, language: str | None = None
    ) -> None:
        """Keep what the console knows of a person across sessions (the language they
        chose; the name an identity provider gave): only the fields given change."""

    async def person(self, person_id: str) -> dict[str, str] | None:
        """What ``remember_person`` kept (``name``, ``language``), or None."""


@dataclass
class Answer:
    """What a service answered: the status, the JSON body (or raw bytes), headers."""

    status: int
    body: Any = None
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return None


class ServiceUnavailable(Exception):
    """A service did not answer (refused, timed out)."""


class Services(Protocol):
    """The other services' public HTTP APIs, called with the person's token."""

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    ) -> Answer:
        """``content`` is a raw body (a CSV file) sent with ``headers`` (its
        content-type, If-Match); ``json`` a JSON one; ``data`` and ``files`` a
        multipart form (evidence files: (field, (name, bytes, media type)))."""


class IdentityProvider(Protocol):
    """OpenID Connect: authorization code with PKCE."""

    async def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str: ...

    async def claims_for(
        self, code: str, pending: PendingSignIn, redirect_uri: str
    ) -> dict[str, Any]:
        """Exchange the code (with the PKCE verifier), verify the ID token (signature,
        issuer, audience, nonce) and return its claims."""


class Payments(Protocol):
    """The payments service's public API: an event's bills summed up."""

    async def bills_summary(self, event_id: str, *, token: str | None) -> dict[str, Any]:
        """``GET /api/v1/bills/summary?event_id=``: collected, outstanding and expired TZS
        (integers) and counts; raises ServiceUnavailable when payments does not answer or
        refuses."""
