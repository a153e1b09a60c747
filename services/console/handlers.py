"""The console's use cases over a ``Context``: accounts, sign-in, sessions, and calls to
the services on a person's behalf (with a token signed for them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.console.domain import (
    LANGUAGES,
    ConsoleError,
    PendingSignIn,
    StaffAccount,
    StaffSession,
    TokenIssuer,
    language_of_locale,
    roles_from_claims,
    spend_dummy_verification,
)
from services.console.ports import (
    AccountExists,
    Answer,
    ConsoleStore,
    IdentityProvider,
    Payments,
    Services,
    ServiceUnavailable,
)
from shared.timeutil import utcnow


@dataclass
class Context:
    store: ConsoleStore
    services: Services
    issuer: TokenIssuer
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    max_failed_sign_ins: int = 5
    lockout: timedelta = timedelta(minutes=15)
    idp: IdentityProvider | None = None
    oidc_redirect_uri: str = ""
    oidc_roles_claim: str = "roles"
    clock: Callable[[], datetime] = utcnow
    payments: Payments | None = None


# -- accounts --------------------------------------------------------------------------------


async def create_account(
    ctx: Context,
    username: str,
    name: str,
    roles: list[str],
    password: str,
    *,
    language: str = "sw",
    totp: bool = False,
) -> StaffAccount:
    account = StaffAccount.create(
        username, name, roles, password, ctx.clock(), language=language, totp=totp
    )
    try:
        await ctx.store.add_account(account)
    except AccountExists:
        raise ConsoleError(
            "account_exists", "A staff account with this username exists.", field="username"
        ) from None
    return account


async def ensure_account(
    ctx: Context, username: str, name: str, roles: list[str], password: str
) -> bool:
    """Create the account unless it exists (the dev stack's admin); True if created."""
    if await ctx.store.account(username) is not None:
        return False
    await create_account(ctx, username, name, roles, password, language="en")
    return True


async def list_accounts(ctx: Context) -> list[StaffAccount]:
    return await ctx.store.accounts()


# -- sign-in and sessions --------------------------------------------------------------------

SIGN_IN_FAILED = ConsoleError(
    "sign_in_failed", "The username, password or code is not right.", field="username"
)


async def sign_in(
    ctx: Context, username: str, password: str, totp_code: str | None = None
) -> StaffSession:
    """A new session for a local account. One answer for every failure: it does not say
    whether the account exists, is locked, or which part was wrong."""
    now = ctx.clock()
    account = await ctx.store.account(username.strip().lower())
    if account is None:
        spend_dummy_verification(password)
        raise SIGN_IN_FAILED
    ok = account.check_sign_in(
        password, totp_code, now, max_failures=ctx.max_failed_sign_ins, lockout=ctx.lockout
    )
    await ctx.store.save_account(account)
    if not ok:
        raise SIGN_IN_FAILED
    person_id = f"staff:{account.id}"
    known = await ctx.store.person(person_id) or {}
    session = StaffSession.start(
        person_id,
        account.name,
        account.roles,
        known.get("language") or account.language,  # the last one they chose, if any
        now,
        absolute=ctx.absolute,
    )
    await ctx.store.add_session(session)
    return session


async def session_of(ctx: Context, session_id: str | None) -> StaffSession | None:
    """The live session of a cookie, seen now; None if unknown or timed out (then ended)."""
    if not session_id:
        return None
    session = await ctx.store.session(session_id)
    if session is None:
        return None
    now = ctx.clock()
    if session.expired(now, idle=ctx.idle):
        await ctx.store.end_session(session_id)
        return None
    if session.touch(now):
        await ctx.store.save_session(session)
    return session


async def sign_out(ctx: Context, session: StaffSession) -> None:
    await ctx.store.end_session(session.id)


async def set_language(ctx: Context, session: StaffSession, language: str) -> None:
    """The person's language, for this session and the next ones."""
    if language in LANGUAGES and language != session.language:
        session.language = language
        await ctx.store.save_session(session)
        await ctx.store.remember_person(session.person_id, language=language)


async def remember(ctx: Context, session: StaffSession, **data: Any) -> None:
    """Keep something for the next page of this session (a draft to confirm, a notice)."""
    session.data.update(data)
    await ctx.store.save_session(session)


# -- OpenID Connect --------------------------------------------------------------------------


async def begin_oidc_sign_in(
    ctx: Context, *, language: str | None = None, next: str = "/events"
) -> str:
    """The identity provider's authorization URL for a new sign-in; ``language`` is the
    one the person chose on the sign-in page (None: their own, or the provider's
    ``locale``), ``next`` the page to open afterwards."""
    if ctx.idp is None:
        raise ConsoleError("oidc_not_configured", "Sign-in with the identity provider is off.")
    pending = PendingSignIn.start(ctx.clock(), language=language, next=next)
    await ctx.store.add_pending_sign_in(pending)
    return await ctx.idp.authorization_url(pending, ctx.oidc_redirect_uri)


async def finish_oidc_sign_in(ctx: Context, state: str, code: str) -> tuple[StaffSession, str]:
    """The session of a sign-in the identity provider completed, and the page to open."""
    if ctx.idp is None:
        raise ConsoleError("oidc_not_configured", "Sign-in with the identity provider is off.")
    now = ctx.clock()
    pending = await ctx.store.take_pending_sign_in(state)
    if pending is None or pending.expired(now):
        raise ConsoleError("oidc_state", "This sign-in has expired; start again.")
    try:
        claims = await ctx.idp.claims_for(code, pending, ctx.oidc_redirect_uri)
    except Exception as exc:  # any failure of the provider or of its token: refuse
        raise ConsoleError("oidc_failed", "The identity provider did not sign you in.") from exc
    roles = roles_from_claims(claims, ctx.oidc_roles_claim)
    if not roles:
        raise ConsoleError("no_role", "Your account has no role in Mkutano.")
    person_id = f"oidc:{claims['sub']}"
    name = str(claims.get("name") or claims.get("preferred_username") or claims["sub"])[:200]
    known = await ctx.store.person(person_id) or {}
    # Chosen on the sign-in page, else chosen before, else the provider's locale, else Swahili.
    language = (
        pending.language
        or known.get("language")
        or language_of_locale(claims.get("locale"))
        or "sw"
    )
    session = StaffSession.start(
        person_id, name, roles, language, now, absolute=ctx.absolute, source="oidc"
    )
    await ctx.store.add_session(session)
    await ctx.store.remember_person(
        person_id, name=name, language=pending.language or known.get("language")
    )
    return session, pending.next


# -- the services, on the person's behalf -----------------------------------------------------


def token_for(ctx: Context, session: StaffSession) -> str:
    return ctx.issuer.issue(session, ctx.clock())


async def call(
    ctx: Context,
    session: StaffSession | None,
    service: str,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
) -> Answer:
    """Call a service's public API as the person signed in (anonymous without a session)."""
    token = token_for(ctx, session) if session is not None else None
    extra: dict[str, Any] = {}
    if content is not None or headers or data is not None or files:
        extra = {"content": content, "headers": headers}
        if data is not None or files:
            extra.update(data=data, files=files)
    return await ctx.services.call(
        service, method, path, token=token, params=params, json=json, **extra
    )


async def payments_summary(
    ctx: Context, session: StaffSession, event_id: str
) -> dict[str, Any] | None:
    """The event's amounts collected, outstanding and expired (integer TZS) from the
    payments service, as the person signed in; None when payments cannot say."""
    if ctx.payments is None:
        return None
    try:
        summary = await ctx.payments.bills_summary(event_id, token=token_for(ctx, session))
    except ServiceUnavailable:
        return None
    return {
        "collected_tzs": int(summary.get("collected_tzs") or 0),
        "outstanding_tzs": int(summary.get("outstanding_tzs") or 0),
        "expired_tzs": int(summary.get("expired_tzs") or 0),
        "bills": int(summary.get("bills") or 0),
        "by_status": dict(summary.get("by_status") or {}),
    }


async def staff_names(ctx: Context, actors: list[str | None]) -> dict[str, str]:
    """The names of the people among a history's actors: the console's own users
    (``staff:<user>``) and the identity provider's people who signed in here
    (``oidc:<sub>``, with the name the provider gave at their last sign-in)."""
    names: dict[str, str] = {}
    for actor in {a for a in actors if a}:
        if actor.startswith("staff:"):
            account = await ctx.store.account(actor.removeprefix("staff:"))
            if account is not None:
                names[actor] = account.name
        elif actor.startswith("oidc:"):
            known = await ctx.store.person(actor)
            if known and known.get("name"):
                names[actor] = known["name"]
    return names
