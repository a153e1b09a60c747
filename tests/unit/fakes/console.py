"""In-memory console store and services (the ports of ``services/console/ports.py``)."""

from __future__ import annotations

import copy
from typing import Any

from services.console.domain import PendingSignIn, StaffAccount, StaffSession, session_key
from services.console.ports import AccountExists, Answer


class FakeConsoleStore:
    def __init__(self) -> None:
        self.accounts_by_id: dict[str, StaffAccount] = {}
        self.sessions: dict[str, StaffSession] = {}  # by the hash of the id, as in MongoDB
        self.pending: dict[str, PendingSignIn] = {}
        self.people: dict[str, dict[str, str]] = {}

    async def add_account(self, account: StaffAccount) -> None:
        if account.id in self.accounts_by_id:
            raise AccountExists(account.id)
        self.accounts_by_id[account.id] = copy.deepcopy(account)

    async def account(self, username: str) -> StaffAccount | None:
        found = self.accounts_by_id.get(username)
        return copy.deepcopy(found) if found else None

    async def accounts(self) -> list[StaffAccount]:
        return [copy.deepcopy(a) for _, a in sorted(self.accounts_by_id.items())]

    async def save_account(self, account: StaffAccount) -> bool:
        current = self.accounts_by_id.get(account.id)
        if current is None or current.rev != account.rev:
            return False
        account.rev += 1
        self.accounts_by_id[account.id] = copy.deepcopy(account)
        return True

    async def add_session(self, session: StaffSession) -> None:
        self.sessions[session_key(session.id)] = copy.deepcopy(session)

    async def session(self, session_id: str) -> StaffSession | None:
        found = self.sessions.get(session_key(session_id))
        return copy.deepcopy(found) if found else None

    async def save_session(self, session: StaffSession) -> None:
        self.sessions[session_key(session.id)] = copy.deepcopy(session)

    async def end_session(self, session_id: str) -> None:
        self.sessions.pop(session_key(session_id), None)

    async def add_pending_sign_in(self, pending: PendingSignIn) -> None:
        self.pending[pending.state] = pending

    async def take_pending_sign_in(self, state: str) -> PendingSignIn | None:
        return self.pending.pop(state, None)

    async def remember_person(
        self, person_id: str, *, name: str | None = None, language: str | None = None
    ) -> None:
        fields = {k: v for k, v in (("name", name), ("language", language)) if v is not None}
        if fields:
            self.people.setdefault(person_id, {}).update(fields)

    async def person(self, person_id: str) -> dict[str, str] | None:
        found = self.people.get(person_id)
        return dict(found) if found else None


class FakeServices:
    """Records each call with its token; answers what the test set."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answers: dict[tuple[str, str, str], Answer] = {}

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Answer:
        self.calls.append(
            {"service": service, "method": method, "path": path, "token": token, "json": json}
        )
        return self.answers.get((service, method, path), Answer(status=200, body={}))


class FakeIdentityProvider:
    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.seen: list[tuple[str, PendingSignIn]] = []

    async def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str:
        return (
            f"https://idp.example/authorize?state={pending.state}"
            f"&code_challenge={pending.code_challenge}&redirect_uri={redirect_uri}"
        )

    async def claims_for(
        self, code: str, pending: PendingSignIn, redirect_uri: str
    ) -> dict[str, Any]:
        self.seen.append((code, pending))
        if code != "good-code":
            raise ValueError("bad code")
        return {**self.claims, "nonce": pending.nonce}
