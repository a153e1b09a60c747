"""JWTs from a government identity provider: keys fetched from a real JWKS endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.auth import Authenticator
from shared.jwt_auth import JwtSettings, JwtVerifier, jwt_lookup_from_settings

ISSUER = "https://idp.ega.go.tz/realms/government"
AUDIENCE = "mkutano"


@pytest.fixture(scope="module")
def idp() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs", key
    finally:
        server.shutdown()
        server.server_close()


def _token(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "officer-17", "iat": now, "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}  # None: leave the claim out
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


async def test_valid_token_maps_roles_and_scopes_and_bad_tokens_are_refused(idp) -> None:
    url, key = idp
    auth = Authenticator()
    auth.add_lookup(JwtVerifier(JwtSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE)))

    good = await auth.authenticate(
        _token(key, roles=["coordinator", "superuser"], mkutano_scopes=["egov-2024"])
    )
    assert good is not None and good.id == "jwt:officer-17"
    assert good.roles == frozenset({"coordinator"})  # unknown roles are dropped
    assert good.scopes == frozenset({"egov-2024"})

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await auth.authenticate(_token(other_key, roles=["admin"])) is None  # forged
    assert await auth.authenticate(_token(key, aud="other-app", roles=["admin"])) is None
    assert await auth.authenticate(_token(key, iss="https://evil", roles=["admin"])) is None
    assert await auth.authenticate(_token(key, exp=int(time.time()) - 3600)) is None
    assert await auth.authenticate("not-a-jwt") is None
    # A token must name the issuer and the audience, not merely not contradict them.
    assert await auth.authenticate(_token(key, iss=None, roles=["admin"])) is None
    assert await auth.authenticate(_token(key, aud=None, roles=["admin"])) is None


@pytest.mark.parametrize(
    "given",
    [{}, {"issuer": ISSUER}, {"audience": AUDIENCE}, {"issuer": " ", "audience": AUDIENCE}],
)
def test_a_jwks_url_without_issuer_and_audience_refuses_to_start(
    idp, given: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = idp
    with pytest.raises(ValueError, match="MKUTANO_JWT_"):
        JwtSettings(jwks_url=url, **given)
    # As a service reads it: from the environment, when the runtime is built.
    monkeypatch.setenv("MKUTANO_JWT_JWKS_URL", url)
    for name, value in given.items():
        monkeypatch.setenv(f"MKUTANO_JWT_{name.upper()}", value)
    with pytest.raises(ValueError, match="MKUTANO_JWT_"):
        jwt_lookup_from_settings()


def test_jwt_is_off_without_a_jwks_url_and_on_with_all_three(
    idp, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = idp
    assert jwt_lookup_from_settings(JwtSettings()) is None
    monkeypatch.setenv("MKUTANO_JWT_JWKS_URL", url)
    monkeypatch.setenv("MKUTANO_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("MKUTANO_JWT_AUDIENCE", AUDIENCE)
    assert isinstance(jwt_lookup_from_settings(), JwtVerifier)
