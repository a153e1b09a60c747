"""Channel adapters: SMTP email (aiosmtplib) and an HTTP SMS gateway.

Each classifies failures: permanent (5xx from SMTP, unknown mailbox; 4xx from the
gateway, invalid number) or transient (SMTP 4xx, connection errors, time-outs,
gateway 5xx). An answer the adapter does not understand is raised as transient with
its text, so it is recorded, never swallowed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from services.notification.domain import DeliveryError
from services.notification.ports import EmailSender, SmsSender
from services.notification.settings import SmsSettings, SmtpSettings

__all__ = ["EmailSender", "HttpSmsGateway", "SmsSender", "SmtpEmailSender"]


class SmtpEmailSender:
    """Email through an SMTP relay, over connections that are kept and reused.

    A connection per message would cost a TCP (and TLS) handshake, EHLO and AUTH for
    every email, and relays throttle senders that open many. A connection is reused
    while it has been idle less than ``SMTP_CONNECTION_IDLE_S``. If the relay closed it
    meanwhile, the message goes at once over a new one; a connection on which anything
    else failed is closed, never reused, and the message takes the usual retry path.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []  # (connection, idle since)
        self._local_hostname: str | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        if self._local_hostname is None:  # the EHLO name; getfqdn may block on DNS
            self._local_hostname = await asyncio.get_running_loop().run_in_executor(
                None, socket.getfqdn
            )
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            start_tls=s.starttls,
            use_tls=s.tls,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            timeout=s.timeout_s,
            local_hostname=self._local_hostname,
        )
        await client.connect()
        return client

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An idle connection young enough to reuse, else a new one; and which it is."""
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self.settings.connection_idle_s:
                return client, True
            _drop(client)
        return await self._connect(), False

    async def send(self, message: EmailMessage) -> None:
        try:
            errors = await self._send(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = all(500 <= c < 600 for c in codes)
            raise DeliveryError(f"recipient refused: {codes}", permanent=permanent) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message[:200]}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {str(exc)[:200]}", permanent=False) from exc
        if errors:
            codes = {addr: resp.code for addr, resp in errors.items()}
            raise DeliveryError(f"recipient refused: {list(codes.values())}", permanent=True)

    async def _send(self, message: EmailMessage) -> dict[str, Any]:
        while True:
            client, reused = await self._checkout()
            try:
                errors, _ = await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                _drop(client)
                if reused:  # the relay closed it while idle: once more, on a new connection
                    continue
                raise
            except BaseException:  # any failure, or cancelled mid-conversation: not reused
                _drop(client)
                raise
            self._idle.append((client, time.monotonic()))
            return errors

    async def close(self) -> None:
        """Say QUIT on every idle connection, all at once (at shutdown)."""
        idle, self._idle = self._idle, []

        async def quit_one(client: aiosmtplib.SMTP) -> None:
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                _drop(client)

        await asyncio.gather(*(quit_one(client) for client, _ in idle))


def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None:
        client.close()


class HttpSmsGateway:
    """POST ``{"to", "sender", "text"}`` as JSON, bearer token from settings."""

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(timeout=settings.timeout_s)

    async def send(self, to: str, text: str) -> str:
        s = self.settings
        assert s.gateway_url, "SMS gateway not configured"
        headers = {"Authorization": f"Bearer {s.token.get_secret_value()}"} if s.token else {}
        try:
            response = await self._client.post(
                s.gateway_url, json={"to": to, "sender": s.sender_id, "text": text}, headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {str(exc)[:200]}", permanent=False) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"gateway {response.status_code}", permanent=False)
        if response.status_code >= 400:
            raise DeliveryError(
                f"gateway {response.status_code}: {response.text[:200]}", permanent=True
            )
        try:
            return str(response.json().get("id", ""))
        except ValueError as exc:
            raise DeliveryError(
                f"gateway answered non-JSON: {response.text[:200]}", permanent=False
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()
