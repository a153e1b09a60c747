"""Adapters of the console's ports: the services' HTTP APIs (httpx) and the identity
provider (OpenID Connect authorization code with PKCE S256: Authlib's RFC 7636 and URL
helpers, the code exchanged over httpx, the ID token checked with PyJWT against the
provider's JWKS; Authlib's own httpx client is deprecated in 1.8 for httpx2)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from services.console.domain import PendingSignIn
from services.console.ports import Answer, ServiceUnavailable


class HttpServices:
    """The services' public APIs: ``service`` is a name of ``urls``."""

    def __init__(self, urls: dict[str, str], *, timeout_s: float = 10.0) -> None:
        self.urls = {k: v.rstrip("/") for k, v in urls.items()}
        self._client = httpx.AsyncClient(timeout=timeout_s)

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
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.request(
                method,
                self.urls[service] + path,
                params={k: v for k, v in (params or {}).items() if v not in (None, "")},
                json=json,
                content=content,
                data=data,
                files=files,
                headers=sent,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"{service}: {type(exc).__name__}") from exc
        body: Any = None
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
        return Answer(
            status=response.status_code,
            body=body,
            content=response.content,
            headers=dict(response.headers),
        )

    async def close(self) -> None:
        await self._client.aclose()


# Signatures an ID token may carry: asymmetric only. The provider's discovery document
# lists what it supports; "none" or an HMAC (keyed with the client secret) never pass.
_ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA")  # fmt: skip


def _id_token_algorithms(meta: dict[str, Any]) -> list[str]:
    offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    allowed = [a for a in offered if a in _ID_TOKEN_ALGORITHMS]
    if not allowed:
        raise ValueError("the provider offers no asymmetric ID token signature")
    return allowed


class OidcProvider:
    """The government identity provider, from its discovery document."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, scopes: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self._metadata: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                answer.raise_for_status()
                self._metadata = answer.json()
            self._jwks = jwt.PyJWKClient(self._metadata["jwks_uri"], cache_keys=True)
        return self._metadata

    async def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str:
        meta = await self.metadata()
        return str(
            add_params_to_uri(
                meta["authorization_endpoint"],
                [
                    ("response_type", "code"),
                    ("client_id", self.client_id),
                    ("redirect_uri", redirect_uri),
                    ("scope", self.scopes),
                    ("state", pending.state),
                    ("nonce", pending.nonce),
                    ("code_challenge", create_s256_code_challenge(pending.code_verifier)),
                    ("code_challenge_method", "S256"),
                ],
            )
        )

    async def claims_for(
        self, code: str, pending: PendingSignIn, redirect_uri: str
    ) -> dict[str, Any]:
        meta = await self.metadata()
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": pending.code_verifier,
                },
                auth=(self.client_id, self.client_secret),
            )
            answer.raise_for_status()
            token = answer.json()
        id_token = token.get("id_token")
        if not id_token:
            raise ValueError("the provider returned no ID token")
        key = await asyncio.to_thread(self._signing_key, id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=_id_token_algorithms(meta),
            audience=self.client_id,
            issuer=meta.get("issuer", self.issuer),
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        if claims.get("nonce") != pending.nonce:
            raise ValueError("the ID token's nonce is not this sign-in's")
        return claims

    def _signing_key(self, id_token: str) -> jwt.PyJWK:
        """The provider's key for this ID token: the one its ``kid`` names, or, without a
        ``kid``, the JWKS's only signing key (OpenID Connect Core 10.1 requires a ``kid``
        only when the set has several keys)."""
        assert self._jwks is not None
        kid = jwt.get_unverified_header(id_token).get("kid")
        if kid is not None:
            return self._jwks.get_signing_key(kid)
        keys = self._jwks.get_signing_keys()
        if len(keys) != 1:
            raise ValueError("the ID token names no key and the provider has several")
        return keys[0]


class HttpPayments:
    """The payments service's public API (``GET /api/v1/bills/summary``)."""

    def __init__(self, url: str, *, timeout_s: float = 3.0) -> None:
        self._services = HttpServices({"payments": url}, timeout_s=timeout_s)

    async def bills_summary(self, event_id: str, *, token: str | None) -> dict[str, Any]:
        answer = await self._services.call(
            "payments", "GET", "/api/v1/bills/summary", token=token, params={"event_id": event_id}
        )
        if not answer.ok or not isinstance(answer.body, dict):
            raise ServiceUnavailable(f"payments: HTTP {answer.status}")
        return answer.body

    async def close(self) -> None:
        await self._services.close()
