"""The console's own rules and use cases: password hashing, TOTP, sign-in and lockout,
sessions (idle and absolute timeouts), CSRF, roles, the tokens it signs (and that the
services' verifier accepts, and refuses once tampered), OIDC with PKCE."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pyotp
import pytest

from services.console import handlers
from services.console.domain import (
    ConsoleError,
    PendingSignIn,
    StaffAccount,
    StaffSession,
    TokenIssuer,
    hash_password,
    language_of_locale,
    may,
    password_matches,
    roles_from_claims,
    totp_matches,
)
from shared.jwt_auth import JwtSettings, JwtVerifier
from tests.unit.fakes.console import FakeConsoleStore, FakeIdentityProvider, FakeServices

NOW = datetime(2026, 2, 11, 6, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def issuer() -> TokenIssuer:
    return TokenIssuer.from_seed(b"test", issuer="http://console", audience="mkutano", ttl_s=300)


def context(**kwargs: Any) -> tuple[handlers.Context, Clock]:
    clock = Clock()
    ctx = handlers.Context(
        store=FakeConsoleStore(), services=FakeServices(), issuer=issuer(), clock=clock, **kwargs
    )
    return ctx, clock


# -- passwords, second factor ----------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id_and_checked() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert password_matches(hashed, PASSWORD)
    assert not password_matches(hashed, PASSWORD + "!")
    assert not password_matches("not a hash", PASSWORD)
    with pytest.raises(ConsoleError) as err:
        hash_password("short")
    assert err.value.field == "password"


def test_totp_codes_of_now_and_one_step_either_side() -> None:
    secret = pyotp.random_base32()
    code = pyotp.TOTP(secret).at(NOW)
    assert totp_matches(secret, code, NOW)
    assert totp_matches(secret, code, NOW + timedelta(seconds=30))
    assert not totp_matches(secret, code, NOW + timedelta(minutes=5))
    assert not totp_matches(secret, "abcdef", NOW)


# -- sign-in ---------------------------------------------------------------------------------


async def test_sign_in_starts_a_session_and_one_answer_hides_which_part_was_wrong() -> None:
    ctx, _ = context()
    await handlers.create_account(ctx, "Amina", "Amina Salim", ["organiser"], PASSWORD)
    session = await handlers.sign_in(ctx, "amina", PASSWORD)
    assert session.person_id == "staff:amina" and session.roles == {"organiser"}
    assert await handlers.session_of(ctx, session.id) is not None
    messages = set()
    for username, password in (("amina", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(ConsoleError) as err:
            await handlers.sign_in(ctx, username, password)
        messages.add((err.value.code, err.value.message))
    assert len(messages) == 1


async def test_an_account_is_locked_after_five_failures_for_a_while() -> None:
    ctx, clock = context()
    await handlers.create_account(ctx, "juma", "Juma", ["registrar"], PASSWORD)
    for _ in range(5):
        with pytest.raises(ConsoleError):
            await handlers.sign_in(ctx, "juma", "wrong password!")
    with pytest.raises(ConsoleError):  # the right password, while locked
        await handlers.sign_in(ctx, "juma", PASSWORD)
    clock.now = NOW + timedelta(minutes=16)
    assert await handlers.sign_in(ctx, "juma", PASSWORD)


async def test_a_second_factor_is_asked_for_when_turned_on() -> None:
    ctx, _ = context()
    account = await handlers.create_account(
        ctx, "neema", "Neema", ["organiser"], PASSWORD, totp=True
    )
    assert account.totp_secret
    with pytest.raises(ConsoleError):
        await handlers.sign_in(ctx, "neema", PASSWORD)
    with pytest.raises(ConsoleError):
        await handlers.sign_in(ctx, "neema", PASSWORD, "000000")
    code = pyotp.TOTP(account.totp_secret).at(NOW)
    assert await handlers.sign_in(ctx, "neema", PASSWORD, code)


async def test_accounts_refuse_unknown_roles_bad_names_and_duplicates() -> None:
    ctx, _ = context()
    for args, field in (
        (("x y", "N", ["organiser"], PASSWORD), "username"),
        (("ok", "N", ["superuser"], PASSWORD), "roles"),
        (("ok", "N", [], PASSWORD), "roles"),
        (("ok", " ", ["organiser"], PASSWORD), "name"),
    ):
        with pytest.raises(ConsoleError) as err:
            await handlers.create_account(ctx, *args)
        assert err.value.field == field
    await handlers.create_account(ctx, "ok", "N", ["organiser"], PASSWORD)
    with pytest.raises(ConsoleError) as err:
        await handlers.create_account(ctx, "OK", "N", ["organiser"], PASSWORD)
    assert err.value.code == "account_exists"


# -- sessions, CSRF, roles --------------------------------------------------------------------


async def test_sessions_end_after_the_idle_and_the_absolute_timeout() -> None:
    ctx, clock = context(idle=timedelta(minutes=30), absolute=timedelta(hours=2))
    await handlers.create_account(ctx, "amina", "Amina", ["organiser"], PASSWORD)
    session = await handlers.sign_in(ctx, "amina", PASSWORD)
    # Active every 20 minutes: alive past the idle timeout, not past the absolute one.
    for minutes in (20, 40, 60, 80, 100):
        clock.now = NOW + timedelta(minutes=minutes)
        assert await handlers.session_of(ctx, session.id) is not None, minutes
    clock.now = NOW + timedelta(minutes=121)
    assert await handlers.session_of(ctx, session.id) is None
    # Idle for 31 minutes: gone, and the store forgot it.
    clock.now = NOW
    second = await handlers.sign_in(ctx, "amina", PASSWORD)
    clock.now = NOW + timedelta(minutes=31)
    assert await handlers.session_of(ctx, second.id) is None
    assert await ctx.store.session(second.id) is None
    assert await handlers.session_of(ctx, "made-up") is None


def test_the_store_keeps_a_hash_of_the_session_id_not_the_id() -> None:
    from services.console.domain import session_key

    assert session_key("abc") == hashlib.sha256(b"abc").hexdigest()


def test_csrf_tokens_are_per_session_and_compared_exactly() -> None:
    a = StaffSession.start(
        "staff:a", "A", frozenset({"organiser"}), "sw", NOW, absolute=timedelta(hours=1)
    )
    b = StaffSession.start(
        "staff:b", "B", frozenset({"organiser"}), "sw", NOW, absolute=timedelta(hours=1)
    )
    assert a.csrf_token != b.csrf_token
    assert a.csrf_ok(a.csrf_token)
    assert not a.csrf_ok(b.csrf_token)
    assert not a.csrf_ok(None) and not a.csrf_ok("")
    assert not a.csrf_ok(a.csrf_token[:-1])


def test_roles_decide_the_pages() -> None:
    assert may(frozenset({"organiser"}), "registrations")
    assert not may(frozenset({"registrar"}), "registrations")
    assert may(frozenset({"registrar"}), "door")
    assert not may(frozenset({"auditor"}), "decide")
    assert may(frozenset({"auditor"}), "dashboard")
    assert may(frozenset({"coordinator"}), "coordinators")
    assert not may(frozenset({"organiser"}), "users")
    assert all(may(frozenset({"admin"}), page) for page in ("users", "door", "decide"))


# -- tokens ----------------------------------------------------------------------------------


def _session(roles: set[str]) -> StaffSession:
    return StaffSession.start(
        "staff:amina", "Amina", frozenset(roles), "sw", NOW, absolute=timedelta(hours=1)
    )


def test_tokens_are_short_lived_eddsa_jwts_naming_the_person_and_roles() -> None:
    tokens = issuer()
    token = tokens.issue(_session({"organiser", "registrar"}), NOW)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == tokens.kid
    (key,) = tokens.jwks()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and "d" not in key
    public = jwt.PyJWK(key).key
    claims = jwt.decode(
        token, public, algorithms=["EdDSA"], audience="mkutano", issuer="http://console",
        options={"verify_exp": False},
    )  # fmt: skip
    assert claims["sub"] == "staff:amina"
    assert claims["roles"] == ["organiser", "registrar"]
    assert claims["exp"] - claims["iat"] == 300


class _Key:
    def __init__(self, key: Any) -> None:
        self.key = key


async def test_the_services_verifier_accepts_the_token_and_refuses_it_tampered_or_late() -> None:
    tokens = issuer()
    verifier = JwtVerifier(
        JwtSettings(
            jwks_url="http://console/.well-known/jwks.json",
            issuer="http://console",
            audience="mkutano",
            algorithms="EdDSA",
        )
    )
    public = jwt.PyJWK(tokens.jwks()["keys"][0]).key
    verifier._jwks.get_signing_key_from_jwt = lambda _token: _Key(public)  # type: ignore[method-assign]
    now = datetime.now(UTC)
    token = tokens.issue(_session({"registrar"}), now)
    principal = await verifier(token)
    assert principal is not None
    assert principal.id == "jwt:staff:amina" and principal.roles == {"registrar"}
    head, body, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_body = (
        base64.urlsafe_b64encode(jwt.api_jws.json.dumps({**claims, "roles": ["admin"]}).encode())
        .decode()
        .rstrip("=")
    )
    assert await verifier(f"{head}.{forged_body}.{signature}") is None  # roles changed
    # The first character carries six significant bits (the last ones carry padding bits
    # a lenient decoder may ignore), so changing it always changes the signature's bytes.
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert await verifier(f"{head}.{body}.{tampered}") is None  # signature changed
    assert await verifier(tokens.issue(_session({"registrar"}), now - timedelta(hours=1))) is None
    other = TokenIssuer.from_seed(b"other", issuer="http://console", audience="mkutano", ttl_s=300)
    assert await verifier(other.issue(_session({"registrar"}), now)) is None


async def test_calls_to_the_services_carry_the_persons_token() -> None:
    ctx, _ = context()
    session = _session({"organiser"})
    await handlers.call(ctx, session, "registration", "GET", "/api/v1/events")
    (call,) = ctx.services.calls  # type: ignore[attr-defined]
    claims = jwt.decode(call["token"], options={"verify_signature": False})
    assert claims["sub"] == "staff:amina"


# -- OpenID Connect --------------------------------------------------------------------------


async def test_oidc_sign_in_with_pkce_state_used_once_and_roles_from_the_token() -> None:
    idp = FakeIdentityProvider({"sub": "u-123", "name": "Rehema", "roles": ["organiser", "x"]})
    ctx, _ = context(idp=idp, oidc_redirect_uri="http://console/sign-in/oidc/callback")
    url = await handlers.begin_oidc_sign_in(ctx)
    (pending,) = ctx.store.pending.values()  # type: ignore[attr-defined]
    assert f"state={pending.state}" in url
    expected = (
        base64.urlsafe_b64encode(hashlib.sha256(pending.code_verifier.encode()).digest())
        .decode()
        .rstrip("=")
    )
    assert f"code_challenge={expected}" in url
    session, target = await handlers.finish_oidc_sign_in(ctx, pending.state, "good-code")
    assert session.person_id == "oidc:u-123" and session.roles == {"organiser"}
    assert target == "/events"
    with pytest.raises(ConsoleError) as err:  # the state is spent
        await handlers.finish_oidc_sign_in(ctx, pending.state, "good-code")
    assert err.value.code == "oidc_state"


async def test_oidc_refuses_a_bad_code_an_old_state_and_a_person_without_a_role() -> None:
    idp = FakeIdentityProvider({"sub": "u-9", "roles": []})
    ctx, clock = context(idp=idp)
    await handlers.begin_oidc_sign_in(ctx)
    state = next(iter(ctx.store.pending))  # type: ignore[attr-defined]
    with pytest.raises(ConsoleError) as err:
        await handlers.finish_oidc_sign_in(ctx, state, "bad-code")
    assert err.value.code == "oidc_failed"
    await handlers.begin_oidc_sign_in(ctx)
    state = next(iter(ctx.store.pending))  # type: ignore[attr-defined]
    with pytest.raises(ConsoleError) as err:
        await handlers.finish_oidc_sign_in(ctx, state, "good-code")
    assert err.value.code == "no_role"
    await handlers.begin_oidc_sign_in(ctx)
    state = next(iter(ctx.store.pending))  # type: ignore[attr-defined]
    clock.now = NOW + timedelta(minutes=11)
    with pytest.raises(ConsoleError) as err:
        await handlers.finish_oidc_sign_in(ctx, state, "good-code")
    assert err.value.code == "oidc_state"


async def test_an_oidc_persons_language_chosen_here_then_kept_then_the_providers_locale() -> None:
    idp = FakeIdentityProvider({"sub": "u-7", "name": "Neema", "roles": ["organiser"],
                                "locale": "en-GB"})  # fmt: skip
    ctx, _ = context(idp=idp)

    async def sign_in(**kwargs: Any) -> tuple[StaffSession, str]:
        await handlers.begin_oidc_sign_in(ctx, **kwargs)
        state = next(iter(ctx.store.pending))  # type: ignore[attr-defined]
        return await handlers.finish_oidc_sign_in(ctx, state, "good-code")

    session, _ = await sign_in()
    assert session.language == "en"  # the provider's locale, nothing chosen yet
    session, target = await sign_in(language="sw", next="/events/e1/door")
    assert (session.language, target) == ("sw", "/events/e1/door")  # chosen on the page
    session, _ = await sign_in()
    assert session.language == "sw"  # kept for the next sign-in, above the locale
    await handlers.set_language(ctx, session, "en")
    session, _ = await sign_in()
    assert session.language == "en"  # chosen inside the console, kept too
    names = await handlers.staff_names(ctx, ["oidc:u-7", "oidc:nobody", None])
    assert names == {"oidc:u-7": "Neema"}  # the history names who acted


async def test_a_local_accounts_language_choice_outlives_the_session() -> None:
    ctx, _ = context()
    await handlers.create_account(ctx, "juma", "Juma", ["registrar"], PASSWORD, language="sw")
    session = await handlers.sign_in(ctx, "juma", PASSWORD)
    assert session.language == "sw"
    await handlers.set_language(ctx, session, "en")
    await handlers.sign_out(ctx, session)
    assert (await handlers.sign_in(ctx, "juma", PASSWORD)).language == "en"


def test_language_of_locale_reads_bcp47_and_refuses_others() -> None:
    assert language_of_locale("en-GB") == "en"
    assert language_of_locale("sw_TZ") == "sw"
    assert language_of_locale("SW") == "sw"
    assert language_of_locale("fr") is None
    assert language_of_locale("") is None
    assert language_of_locale(["en"]) is None


def test_roles_from_claims_keep_mkutano_roles_only() -> None:
    assert roles_from_claims({"roles": "organiser admin other"}, "roles") == {"organiser", "admin"}
    assert roles_from_claims({"roles": ["registrar", 3]}, "roles") == {"registrar"}
    assert roles_from_claims({}, "roles") == frozenset()
    assert PendingSignIn.start(NOW).code_challenge


def test_account_create_lowercases_the_username() -> None:
    account = StaffAccount.create("Amina.S", "Amina", ["organiser"], PASSWORD, NOW)
    assert account.id == "amina.s"


def test_badges_are_a6_pages_in_the_order_given() -> None:
    import re

    from services.console.badges import colour_of, render_badges

    people = [
        {"full_name": n, "institution": "e-GA", "category": c, "reference": f"MK-{i}",
         "ticket": "MK2" + "A" * 128}
        for i, (n, c) in enumerate([("Asha", "ict_officer"), ("Baraka", "custom_cat")])
    ]  # fmt: skip
    pdf = render_badges({"title_sw": "Mkutano", "title_en": "Conference"}, people)
    assert pdf.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert re.search(rb"/Count 2\b", pdf)  # one page a person
    assert boxes and all(
        abs(float(w) - 297.64) < 1 and abs(float(h) - 419.53) < 1 for w, h in boxes
    )
    assert colour_of("ict_officer") != colour_of("custom_cat") == colour_of("custom_cat")


@pytest.mark.parametrize(
    "target",
    ["https://evil.example", "//evil.example", "/\\evil.example", "/\t/evil.example",
     "/\n/evil.example", "events", "", None],
)  # fmt: skip
def test_the_page_after_sign_in_is_always_one_of_the_consoles(target: str | None) -> None:
    from services.console.web import _safe_next

    assert _safe_next(target) == "/events"
    assert _safe_next("/events/e1/door?x=1") == "/events/e1/door?x=1"


def test_an_id_token_may_carry_an_asymmetric_signature_only() -> None:
    from services.console.clients import _id_token_algorithms

    assert _id_token_algorithms({"id_token_signing_alg_values_supported": ["RS256", "none",
                                 "HS256", "ES256"]}) == ["RS256", "ES256"]  # fmt: skip
    assert _id_token_algorithms({}) == ["RS256"]
    with pytest.raises(ValueError):
        _id_token_algorithms({"id_token_signing_alg_values_supported": ["HS256", "none"]})
