"""API keys kept in each service's own database, and the admin API that manages them.

A key is shown once, as ``mk_<id>_<secret>``; only its SHA-256 hash is stored. Lookup is
by id (the ``_id`` of the ``api_keys`` document), then a constant-time comparison of the
hashes, so a wrong secret costs the same whatever it is. Services share nothing, so each
service has its own ``api_keys`` collection: ``mkutano api-keys … --service all`` creates
the same roles on each (see docs/operations.md).

Document: ``{_id, hash, roles, scopes, label, created_at, revoked_at, last_used_at,
rotated_at, created_by}``; times are ISO strings (the MongoDB rules of the project).
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth import ROLES, Principal, hash_key, require_roles
from shared.errors import ApiError, error_responses
from shared.logging import get_logger
from shared.timeutil import epoch, now_iso

COLLECTION = "api_keys"
KEY_PREFIX = "mk_"
# The id is hex (no "_"), so "mk_<id>_<secret>" splits unambiguously at the second "_".
_KEY_RE = re.compile(r"^mk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")
# Writing last_used_at on every request would double the writes of a busy key.
LAST_USED_RESOLUTION_S = 60.0
log = get_logger("apikeys")


def _new_id() -> str:
    return secrets.token_hex(8)


def _new_secret(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(credential: str) -> str | None:
    """The key id of a well-formed ``mk_<id>_<secret>`` credential, else None."""
    match = _KEY_RE.match(credential)
    return match.group(1) if match else None


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A key document without its hash: what the admin API and the CLI show."""
    return {
        "id": doc["_id"],
        "label": doc.get("label", ""),
        "roles": list(doc.get("roles", [])),
        "scopes": list(doc.get("scopes", [])),
        "created_at": doc.get("created_at"),
        "created_by": doc.get("created_by"),
        "rotated_at": doc.get("rotated_at"),
        "revoked_at": doc.get("revoked_at"),
        "last_used_at": doc.get("last_used_at"),
        "active": doc.get("revoked_at") is None,
    }


class ApiKeyStore:
    """The ``api_keys`` collection of one service's database."""

    def __init__(self, database: AsyncDatabase) -> None:
        self._col = database[COLLECTION]
        self._last_touch: dict[str, float] = {}

    async def create(
        self,
        *,
        roles: list[str],
        scopes: list[str] | None = None,
        label: str = "",
        created_by: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Store a new key; returns its document and the secret (the only time it exists)."""
        key_id = _new_id()
        secret = _new_secret(key_id)
        doc = {
            "_id": key_id,
            "hash": hash_key(secret),
            "roles": sorted(set(roles)),
            "scopes": sorted(set(scopes or [])),
            "label": label,
            "created_at": now_iso(),
            "created_by": created_by,
            "rotated_at": None,
            "revoked_at": None,
            "last_used_at": None,
        }
        await self._col.insert_one(doc)
        return doc, secret

    async def get(self, key_id: str) -> dict[str, Any] | None:
        return await self._col.find_one({"_id": key_id})

    async def list_keys(self, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        flt: dict[str, Any] = {} if include_revoked else {"revoked_at": None}
        return await self._col.find(flt).sort("created_at", 1).to_list()

    async def revoke(self, key_id: str) -> dict[str, Any] | None:
        """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
        doc = await self._col.find_one_and_update(
            {"_id": key_id, "revoked_at": None},
            {"$set": {"revoked_at": now_iso()}},
            return_document=ReturnDocument.AFTER,
        )
        return doc or await self.get(key_id)

    async def rotate(self, key_id: str) -> tuple[dict[str, Any], str] | None:
        """A new secret for an active key; the old secret stops working at once.

        Returns None when the key does not exist or is revoked.
        """
        secret = _new_secret(key_id)
        doc = await self._col.find_one_and_update(
            {"_id": key_id, "revoked_at": None},
            {"$set": {"hash": hash_key(secret), "rotated_at": now_iso()}},
            return_document=ReturnDocument.AFTER,
        )
        return (doc, secret) if doc else None

    async def lookup(self, credential: str) -> Principal | None:
        """``Authenticator`` lookup: the principal of an active key, else None."""
        key_id = parse_key(credential)
        if key_id is None:
            return None
        doc = await self._col.find_one({"_id": key_id})
        if doc is None or doc.get("revoked_at") is not None:
            return None
        if not hmac.compare_digest(str(doc.get("hash", "")), hash_key(credential)):
            return None
        await self._touch(key_id)
        return Principal(
            id=f"key:{key_id}",
            roles=frozenset(doc.get("roles", [])),
            scopes=frozenset(doc.get("scopes", [])),
        )

    async def _touch(self, key_id: str) -> None:
        now = epoch()
        if now - self._last_touch.get(key_id, 0.0) < LAST_USED_RESOLUTION_S:
            return
        self._last_touch[key_id] = now
        try:
            await self._col.update_one({"_id": key_id}, {"$set": {"last_used_at": now_iso()}})
        except Exception as exc:  # usage tracking must never refuse a valid key
            log.warning("api_key_touch_failed", key_id=key_id, error=type(exc).__name__)


# --------------------------------------------------------------------------- admin API


class ApiKeySpec(BaseModel):
    """What a new key may do."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=100, description="Who or what holds the key")
    roles: list[str] = Field(min_length=1, description=f"Any of: {', '.join(ROLES)}")
    scopes: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Optional restriction, e.g. the conference ids a coordinator may edit",
    )

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; expected {', '.join(ROLES)}")
        return roles

    @field_validator("scopes")
    @classmethod
    def _plain_scopes(cls, scopes: list[str]) -> list[str]:
        for s in scopes:
            if not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", s):
                raise ValueError("scopes are ids: letters, digits, '.', '_', ':', '-'")
        return scopes


class ApiKeyView(BaseModel):
    id: str
    label: str
    roles: list[str]
    scopes: list[str]
    created_at: str | None
    created_by: str | None = None
    rotated_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None
    active: bool


class ApiKeySecret(ApiKeyView):
    key: str = Field(description="The secret, shown once: store it now")


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]


router = APIRouter(prefix="/api/v1/admin/api-keys", tags=["admin"])
AdminOnly = Annotated[Principal, Depends(require_roles("admin"))]
_KEY_ID = r"^[0-9a-f]{16}$"


def _store(request: Request) -> ApiKeyStore:
    return request.app.state.api_keys


def _not_found() -> ApiError:
    return ApiError(404, "api_key_not_found", "No such API key.")


def _check_id(key_id: str) -> None:
    if not re.fullmatch(_KEY_ID, key_id):
        raise _not_found()


@router.post(
    "",
    response_model=ApiKeySecret,
    status_code=201,
    summary="Create an API key (the secret is returned once)",
    responses=error_responses(401, 403, 422),
)
async def create_api_key(
    spec: ApiKeySpec, request: Request, principal: AdminOnly
) -> dict[str, Any]:
    doc, secret = await _store(request).create(
        roles=spec.roles, scopes=spec.scopes, label=spec.label, created_by=principal.id
    )
    log.info("api_key_created", key_id=doc["_id"], roles=doc["roles"], by=principal.id)
    return {**public_view(doc), "key": secret}


@router.get(
    "",
    response_model=ApiKeyList,
    summary="List API keys (never their secrets)",
    responses=error_responses(401, 403),
)
async def list_api_keys(request: Request, _: AdminOnly) -> dict[str, Any]:
    return {"items": [public_view(d) for d in await _store(request).list_keys()]}


@router.post(
    "/{key_id}/revoke",
    response_model=ApiKeyView,
    summary="Revoke an API key (at once; idempotent)",
    responses=error_responses(401, 403, 404),
)
async def revoke_api_key(key_id: str, request: Request, principal: AdminOnly) -> dict[str, Any]:
    _check_id(key_id)
    doc = await _store(request).revoke(key_id)
    if doc is None:
        raise _not_found()
    log.info("api_key_revoked", key_id=key_id, by=principal.id)
    return public_view(doc)


@router.post(
    "/{key_id}/rotate",
    response_model=ApiKeySecret,
    summary="Give an API key a new secret; the old one stops working at once",
    responses=error_responses(401, 403, 404, 409),
)
async def rotate_api_key(key_id: str, request: Request, principal: AdminOnly) -> dict[str, Any]:
    _check_id(key_id)
    store = _store(request)
    rotated = await store.rotate(key_id)
    if rotated is None:
        if await store.get(key_id) is None:
            raise _not_found()
        raise ApiError(409, "api_key_revoked", "A revoked key cannot be rotated; create a new one.")
    doc, secret = rotated
    log.info("api_key_rotated", key_id=key_id, by=principal.id)
    return {**public_view(doc), "key": secret}


def install_api_keys(app: Any, database: AsyncDatabase, authenticator: Any) -> ApiKeyStore:
    """Give a service its key store, the admin routes and the authenticator lookup."""
    store = ApiKeyStore(database)
    app.state.api_keys = store
    authenticator.add_lookup(store.lookup)
    app.include_router(router)
    return store
