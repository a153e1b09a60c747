"""The audit log: every write by an organiser, registrar, coordinator or admin.

Who (the principal's id and roles), what (method, route, its path parameters, the
answer's status), when. Refused writes are recorded too: a caller who authenticated but
lacks the role (403) or is out of scope leaves an entry with that status, so the log
shows who tried what. Writes without a valid credential (401) have no one to name. Kept in the service's own database, append-only, readable by
auditors and admins at ``GET /api/v1/admin/audit``. Bodies are not kept: they may hold
personal data.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, require_roles
from shared.logging import get_logger
from shared.timeutil import now_iso

COLLECTION = "audit_log"
log = get_logger("audit")


class AuditEntry(BaseModel):
    id: str
    at: str
    actor: str
    roles: list[str]
    method: str
    route: str
    params: dict[str, str]
    status: int


class AuditMiddleware:
    """Records every authenticated non-GET request after it is answered, refused or not."""

    def __init__(self, app: ASGIApp, db: AsyncDatabase) -> None:
        self.app = app
        self.col = db[COLLECTION]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            principal: Principal | None = (scope.get("state") or {}).get("principal")
            if principal is not None:
                route = scope.get("route")
                entry = {
                    "_id": str(uuid.uuid4()),
                    "at": now_iso(),
                    "actor": principal.id,
                    "roles": sorted(principal.roles),
                    "method": scope["method"],
                    "route": getattr(route, "path", scope["path"]),
                    "params": {k: str(v) for k, v in (scope.get("path_params") or {}).items()},
                    "status": status,
                }
                try:
                    await self.col.insert_one(entry)
                except Exception as exc:  # never fail the request for the log; say so loudly
                    log.error("audit_write_failed", error=type(exc).__name__, route=entry["route"])


def install_audit(app: FastAPI, db: AsyncDatabase) -> None:
    app.add_middleware(AuditMiddleware, db=db)
    router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

    @router.get("/audit", response_model=list[AuditEntry])
    async def audit_log(
        _: Annotated[Any, Depends(require_roles("auditor"))],
        actor: Annotated[str | None, Query(max_length=128)] = None,
        since: Annotated[str | None, Query(max_length=40, description="ISO time")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[AuditEntry]:
        """The audit log, newest first (auditors and admins)."""
        query: dict[str, Any] = {}
        if actor:
            query["actor"] = actor
        if since:
            query["at"] = {"$gte": since}
        docs = await db[COLLECTION].find(query, sort=[("at", DESCENDING)], limit=limit).to_list()
        return [AuditEntry(id=d.pop("_id"), **d) for d in docs]

    app.include_router(router)


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)
