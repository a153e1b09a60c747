"""The console's JSON API: its JWKS (what the services trust) and staff accounts for the
``mkutano users`` command (admins)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.console import handlers
from services.console.domain import ConsoleError, StaffAccount, totp_uri
from shared.auth import require_roles
from shared.errors import ApiError, FieldProblem, error_responses

router = APIRouter()

ERROR_STATUSES: dict[str, int] = {
    "account_exists": 409,
    "weak_password": 422,
    "invalid_username": 422,
    "invalid_name": 422,
    "invalid_language": 422,
    "unknown_role": 422,
    "no_role": 422,
}


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def api_error(exc: ConsoleError) -> ApiError:
    return ApiError(
        ERROR_STATUSES.get(exc.code, 409),
        exc.code,
        exc.message,
        fields=[FieldProblem(field=exc.field, reason=exc.message)] if exc.field else None,
    )


@router.get("/.well-known/jwks.json", tags=["tokens"])
async def jwks(request: Request) -> dict[str, Any]:
    """The public keys of the tokens the console signs (services verify with them)."""
    return _ctx(request).issuer.jwks()


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    roles: list[Literal["admin", "organiser", "registrar", "coordinator", "auditor"]] = Field(
        min_length=1, max_length=5
    )
    password: SecretStr = Field(min_length=1, max_length=1024)
    language: Literal["sw", "en"] = "sw"
    totp: bool = Field(False, description="Turn on a TOTP second factor (RFC 6238)")


class AccountView(BaseModel):
    username: str
    name: str
    roles: list[str]
    language: str
    totp: bool
    created_at: str
    totp_uri: str | None = Field(
        None, description="Shown once at creation: the otpauth:// URI for an authenticator"
    )


def _view(account: StaffAccount, *, with_secret: bool = False) -> AccountView:
    return AccountView(
        username=account.id,
        name=account.name,
        roles=sorted(account.roles),
        language=account.language,
        totp=account.totp_secret is not None,
        created_at=account.created_at,
        totp_uri=totp_uri(account.totp_secret, account.id)
        if with_secret and account.totp_secret
        else None,
    )


@router.post(
    "/api/v1/users",
    response_model=AccountView,
    response_model_exclude_none=True,
    status_code=201,
    tags=["staff"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_user(
    body: AccountIn, request: Request, _: Annotated[Any, Depends(require_roles("admin"))]
) -> AccountView:
    """Create a local staff account (admins; ``mkutano users create``)."""
    try:
        account = await handlers.create_account(
            _ctx(request),
            body.username,
            body.name,
            list(body.roles),
            body.password.get_secret_value(),
            language=body.language,
            totp=body.totp,
        )
    except ConsoleError as exc:
        raise api_error(exc) from None
    return _view(account, with_secret=True)


@router.get(
    "/api/v1/users",
    response_model=list[AccountView],
    response_model_exclude_none=True,
    tags=["staff"],
    responses=error_responses(401, 403),
)
async def list_users(
    request: Request, _: Annotated[Any, Depends(require_roles("admin"))]
) -> list[AccountView]:
    """The local staff accounts (admins)."""
    return [_view(a) for a in await handlers.list_accounts(_ctx(request))]
