"""The console's MongoDB (``mkutano_console``): staff accounts, sessions, OIDC states.

The only module of the console that touches MongoDB. No business data lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.console.domain import PendingSignIn, StaffAccount, StaffSession, session_key
from services.console.ports import AccountExists

ACCOUNTS = "staff_accounts"
SESSIONS = "sessions"
PENDING = "oidc_pending"
# Per person (``staff:<user>`` or ``oidc:<sub>``): the language they chose, and for people
# of the identity provider the name it gave (the history pages name who acted).
PEOPLE = "people"


def _expiry(iso_text: str) -> datetime:
    return datetime.strptime(iso_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class MongoConsoleStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.accounts_col = db[ACCOUNTS]
        self.sessions_col = db[SESSIONS]
        self.pending_col = db[PENDING]
        self.people_col = db[PEOPLE]

    async def ensure_indexes(self) -> None:
        # Expired sessions and abandoned sign-ins go away on their own.
        await self.sessions_col.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)
        await self.pending_col.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)

    # -- accounts

    @staticmethod
    def _account_doc(a: StaffAccount) -> dict[str, Any]:
        return {
            "_id": a.id,
            "name": a.name,
            "roles": sorted(a.roles),
            "password_hash": a.password_hash,
            "language": a.language,
            "totp_secret": a.totp_secret,
            "failed_sign_ins": a.failed_sign_ins,
            "locked_until": a.locked_until,
            "disabled": a.disabled,
            "created_at": a.created_at,
            "rev": a.rev,
        }

    @staticmethod
    def _account(doc: dict[str, Any]) -> StaffAccount:
        return StaffAccount(
            id=doc["_id"],
            name=doc["name"],
            roles=frozenset(doc.get("roles") or []),
            password_hash=doc["password_hash"],
            language=doc.get("language", "sw"),
            totp_secret=doc.get("totp_secret"),
            failed_sign_ins=int(doc.get("failed_sign_ins", 0)),
            locked_until=doc.get("locked_until"),
            disabled=bool(doc.get("disabled", False)),
            created_at=doc.get("created_at", ""),
            rev=int(doc.get("rev", 0)),
        )

    async def add_account(self, account: StaffAccount) -> None:
        try:
            await self.accounts_col.insert_one(self._account_doc(account))
        except DuplicateKeyError:
            raise AccountExists(account.id) from None

    async def account(self, username: str) -> StaffAccount | None:
        doc = await self.accounts_col.find_one({"_id": username})
        return self._account(doc) if doc else None

    async def accounts(self) -> list[StaffAccount]:
        return [self._account(d) async for d in self.accounts_col.find({}, sort=[("_id", 1)])]

    async def save_account(self, account: StaffAccount) -> bool:
        doc = self._account_doc(account)
        doc.pop("_id")
        doc["rev"] = account.rev + 1
        result = await self.accounts_col.update_one(
            {"_id": account.id, "rev": account.rev}, {"$set": doc}
        )
        if result.matched_count:
            account.rev += 1
        return bool(result.matched_count)

    # -- sessions

    @staticmethod
    def _session_doc(s: StaffSession) -> dict[str, Any]:
        return {
            "_id": session_key(s.id),
            "person_id": s.person_id,
            "name": s.name,
            "roles": sorted(s.roles),
            "language": s.language,
            "csrf_token": s.csrf_token,
            "created_at": s.created_at,
            "last_seen_at": s.last_seen_at,
            "source": s.source,
            "expires_at": s.expires_at,
            "expire_at": _expiry(s.expires_at),
            "flash": s.flash,
            "data": s.data,
        }

    async def add_session(self, session: StaffSession) -> None:
        await self.sessions_col.insert_one(self._session_doc(session))

    async def session(self, session_id: str) -> StaffSession | None:
        doc = await self.sessions_col.find_one({"_id": session_key(session_id)})
        if not doc:
            return None
        return StaffSession(
            id=session_id,
            person_id=doc["person_id"],
            name=doc["name"],
            roles=frozenset(doc.get("roles") or []),
            language=doc.get("language", "sw"),
            csrf_token=doc["csrf_token"],
            created_at=doc["created_at"],
            last_seen_at=doc["last_seen_at"],
            source=doc.get("source", "local"),
            expires_at=doc["expires_at"],
            flash=doc.get("flash"),
            data=doc.get("data") or {},
        )

    async def save_session(self, session: StaffSession) -> None:
        doc = self._session_doc(session)
        key = doc.pop("_id")
        await self.sessions_col.update_one({"_id": key}, {"$set": doc})

    async def end_session(self, session_id: str) -> None:
        await self.sessions_col.delete_one({"_id": session_key(session_id)})

    # -- OIDC sign-ins under way

    async def add_pending_sign_in(self, pending: PendingSignIn) -> None:
        await self.pending_col.insert_one(
            {
                "_id": pending.state,
                "code_verifier": pending.code_verifier,
                "nonce": pending.nonce,
                "created_at": pending.created_at,
                "language": pending.language,
                "next": pending.next,
                "expire_at": _expiry(pending.created_at) + timedelta(minutes=10),
            }
        )

    async def take_pending_sign_in(self, state: str) -> PendingSignIn | None:
        doc = await self.pending_col.find_one_and_delete({"_id": state})
        if not doc:
            return None
        return PendingSignIn(
            state=doc["_id"],
            code_verifier=doc["code_verifier"],
            nonce=doc["nonce"],
            created_at=doc["created_at"],
            language=doc.get("language"),
            next=doc.get("next") or "/events",
        )

    # -- what the console keeps of a person across sessions

    async def remember_person(
        self, person_id: str, *, name: str | None = None, language: str | None = None
    ) -> None:
        fields = {k: v for k, v in (("name", name), ("language", language)) if v is not None}
        if fields:
            await self.people_col.update_one({"_id": person_id}, {"$set": fields}, upsert=True)

    async def person(self, person_id: str) -> dict[str, str] | None:
        doc = await self.people_col.find_one({"_id": person_id})
        if not doc:
            return None
        return {k: str(doc[k]) for k in ("name", "language") if doc.get(k) is not None}
