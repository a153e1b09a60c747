"""Adapters behind the ports: HTTP delivery (httpx), DNS, and the owners' email (SMTP)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from email.message import EmailMessage

import aiosmtplib
import httpx
from cryptography.fernet import Fernet, InvalidToken

from services.webhooks.domain import Subscription
from services.webhooks.ports import PostOutcome
from services.webhooks.settings import SmtpSettings, WebhooksSettings


class SecretsCipher:
    """Encrypts the subscriptions' signing secrets at rest (Fernet: AES-CBC + HMAC), so a
    copy of the database alone does not let anyone forge deliveries."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def for_settings(cls, settings: WebhooksSettings) -> SecretsCipher:
        """The configured key; production must set one, dev and test derive a local one."""
        if settings.secrets_key is not None:
            return cls(settings.secrets_key.get_secret_value().encode())
        if settings.core.env == "production":
            raise RuntimeError("WEBHOOKS_SECRETS_KEY must be set in production")
        admin = settings.core.bootstrap_admin_key
        seed = admin.get_secret_value() if admin else "mkutano-dev"
        digest = hashlib.sha256(f"webhooks-secrets:{seed}".encode()).digest()
        return cls(base64.urlsafe_b64encode(digest))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:  # another key: say so, never show the token
            raise RuntimeError(
                "a signing secret does not decrypt with WEBHOOKS_SECRETS_KEY"
            ) from exc


class HttpTransport:
    """POSTs over one bounded connection pool: at most ``max_connections`` in all, each
    request limited by ``request_timeout_s`` (connect, write, read, pool wait), no
    redirect followed (a 3xx is a failure), and at most ``max_response_bytes`` of an
    answer read — the body is only drained, never kept."""

    def __init__(self, settings: WebhooksSettings) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.request_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
                keepalive_expiry=30.0,
            ),
            headers={"user-agent": "Mkutano-Webhooks/1.0"},
            trust_env=False,  # no proxy from the environment between us and a target
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                async with self._client.stream("POST", url, content=body, headers=headers) as r:
                    read = 0
                    async for chunk in r.aiter_raw():
                        read += len(chunk)
                        if read >= self.settings.max_response_bytes:
                            break
                    status = r.status_code
        except TimeoutError:
            return PostOutcome(None, took(), "timeout")
        except httpx.TimeoutException:
            return PostOutcome(None, took(), "timeout")
        except httpx.HTTPError as exc:
            return PostOutcome(None, took(), f"connection failed: {type(exc).__name__}")
        except OSError as exc:
            return PostOutcome(None, took(), f"connection failed: {type(exc).__name__}")
        if 200 <= status < 300:
            return PostOutcome(status, took())
        if 300 <= status < 400:
            return PostOutcome(status, took(), f"HTTP {status} (redirects are not followed)")
        return PostOutcome(status, took(), f"HTTP {status}")

    async def close(self) -> None:
        await self._client.aclose()


class DnsResolver:
    """The addresses a host name resolves to (the system resolver, off the event loop)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]) for info in infos})


class SmtpOwnerMailer:
    """Tells a subscription's owner by email that it was paused (one message, English
    and Swahili; the owner is an e-GA system's administrator)."""

    def __init__(self, settings: SmtpSettings, console_url: str = "") -> None:
        self.settings = settings
        self.console_url = console_url

    def message(self, subscription: Subscription) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = subscription.owner_email
        msg["Subject"] = f"Webhook paused: {subscription.label or subscription.id}"
        msg.set_content(
            f'Your Mkutano webhook subscription "{subscription.label}" ({subscription.id}) '
            f"was paused after {subscription.consecutive_failures} failed deliveries in a row "
            f"to {subscription.url}.\n\n"
            "Events are still recorded and wait for it. Once the endpoint answers 2xx again, "
            "ask an administrator to resume the subscription "
            f"(POST /api/v1/subscriptions/{subscription.id}/resume); what waited is then "
            "delivered, in order per aggregate.\n\n"
            "---\n"
            f'Usajili wako wa webhook wa Mkutano "{subscription.label}" umesitishwa baada ya '
            f"majaribio {subscription.consecutive_failures} mfululizo kushindwa. Matukio "
            "yanahifadhiwa na yatatumwa utakaporejeshwa.\n"
        )
        return msg

    async def subscription_paused(self, subscription: Subscription) -> None:
        s = self.settings
        await aiosmtplib.send(
            self.message(subscription),
            hostname=s.host,
            port=s.port,
            start_tls=s.starttls,
            use_tls=s.tls,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            timeout=s.timeout_s,
        )
