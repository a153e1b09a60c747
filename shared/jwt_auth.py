"""A verifier for JWTs from a government identity provider (pluggable into auth).

Issuer, audience and the JWKS URL come from settings (``MKUTANO_JWT_*``); off unless a
JWKS URL is set, and a service with a JWKS URL but no issuer or no audience refuses to
start: a key set alone would accept a token the provider issued to any other application.
Every token must name that issuer (``iss``) and that audience (``aud``). A token's roles come from a claim (``roles`` by default) and are
intersected with Mkutano's roles; scopes (e.g. the conferences a coordinator may
touch) from another claim.
"""

from __future__ import annotations

import asyncio

import jwt
from jwt import PyJWKClient
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import ROLES, Principal
from shared.logging import get_logger

log = get_logger("auth")


class JwtSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MKUTANO_JWT_", extra="ignore")

    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    roles_claim: str = "roles"
    scopes_claim: str = "mkutano_scopes"
    algorithms: str = "RS256,ES256"
    leeway_s: int = 30

    @model_validator(mode="after")
    def _issuer_and_audience_with_a_jwks_url(self) -> JwtSettings:
        if self.jwks_url:
            missing = [
                f"MKUTANO_JWT_{name.upper()}"
                for name in ("issuer", "audience")
                if not (getattr(self, name) or "").strip()
            ]
            if missing:
                raise ValueError(
                    f"MKUTANO_JWT_JWKS_URL is set but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not: tokens would be accepted "
                    "from any issuer or for any application"
                )
        return self


class JwtVerifier:
    """Verifies signature (JWKS), issuer, audience and expiry; maps claims to a principal."""

    def __init__(self, settings: JwtSettings) -> None:
        if not (settings.jwks_url and settings.issuer and settings.audience):
            raise ValueError("a JWT verifier needs a JWKS URL, an issuer and an audience")
        self.settings = settings
        self._jwks = PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=3600, timeout=5)

    async def __call__(self, credential: str) -> Principal | None:
        if credential.count(".") != 2:
            return None  # not a JWT (an API key): let the next lookup try
        try:
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, credential)
            claims = jwt.decode(
                credential,
                key.key,
                algorithms=[a.strip() for a in self.settings.algorithms.split(",")],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, OSError) as exc:
            log.info("jwt_rejected", reason=type(exc).__name__)
            return None
        raw_roles = claims.get(self.settings.roles_claim) or []
        roles = (
            frozenset(r for r in raw_roles if r in ROLES)
            if isinstance(raw_roles, list)
            else frozenset()
        )
        raw_scopes = claims.get(self.settings.scopes_claim) or []
        scopes = (
            frozenset(str(s) for s in raw_scopes) if isinstance(raw_scopes, list) else frozenset()
        )
        return Principal(id=f"jwt:{claims['sub']}", roles=roles, scopes=scopes)


def jwt_lookup_from_settings(settings: JwtSettings | None = None) -> JwtVerifier | None:
    settings = settings or JwtSettings()
    return JwtVerifier(settings) if settings.jwks_url else None
