"""Channel adapters: SMTP email (aiosmtplib) and an HTTP SMS gateway.

Each classifies failures: permanent (5xx from SMTP, unknown mailbox; 4xx from the
gateway, invalid number) or transient (SMTP 4xx, connection errors, time-outs,
gateway 5xx). An answer the adapter does not understand is raised as transient with
its text, so it is recorded, never swallowed.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx

from services.notification.domain import DeliveryError
from services.notification.settings import SmsSettings, SmtpSettings


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmsSender(Protocol):
    async def send(self, to: str, text: str) -> str: ...


class SmtpEmailSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            errors, _ = await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                start_tls=s.starttls,
                use_tls=s.tls,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                timeout=s.timeout_s,
            )
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
