"""The channel adapters against real local servers: how each answer is classified.

Transient (retry later) or permanent (fail at once), and an answer the adapter does not
understand is raised with its text so that it is recorded, never swallowed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

from deploy.embedded import LOCALHOST, free_port
from services.notification.channels import HttpSmsGateway, SmtpEmailSender
from services.notification.domain import DeliveryError
from services.notification.settings import SmsSettings, SmtpSettings


class ScriptedSmtp:
    """Answers RCPT by the local part of the address: ``busy`` 451, ``nobody`` 550,
    ``odd`` accepted but DATA answered with a code outside the protocol's 250."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        local = address.split("@")[0]
        if local == "busy":
            return "451 4.3.0 Try again later"
        if local == "nobody":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if any(a.startswith("odd@") for a in envelope.rcpt_tos):
            return "299 What is this"
        self.received.append(envelope.original_content or b"")
        return "250 Accepted"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[int, ScriptedSmtp]]:
    handler = ScriptedSmtp()
    port = free_port()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), LOCALHOST, port)
    try:
        yield port, handler
    finally:
        server.close()
        await server.wait_closed()


class CountingSmtpServer:
    """A real SMTP server that counts the connections it accepted and can drop them all."""

    def __init__(self, handler: ScriptedSmtp, port: int) -> None:
        self.handler, self.port = handler, port
        self.connections: list[SMTP] = []
        self.server: asyncio.Server | None = None

    def _protocol(self) -> SMTP:
        protocol = SMTP(self.handler)
        self.connections.append(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, LOCALHOST, self.port)

    def drop_all(self) -> None:
        """What a relay does to idle clients after its time-out."""
        for protocol in self.connections:
            if protocol.transport is not None:
                protocol.transport.close()

    async def stop(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "no-reply@mkutano.ega.go.tz"
    msg["To"] = to
    msg["Subject"] = "Jaribio"
    msg.set_content("Habari")
    return msg


async def test_smtp_answers_are_classified(smtp_server) -> None:
    port, handler = smtp_server
    sender = SmtpEmailSender(SmtpSettings(host=LOCALHOST, port=port, timeout_s=5))
    await sender.send(message("asha@example.go.tz"))
    assert len(handler.received) == 1

    with pytest.raises(DeliveryError) as busy:
        await sender.send(message("busy@example.go.tz"))
    assert busy.value.permanent is False and "451" in str(busy.value)

    with pytest.raises(DeliveryError) as nobody:
        await sender.send(message("nobody@example.go.tz"))
    assert nobody.value.permanent is True and "550" in str(nobody.value)

    with pytest.raises(DeliveryError) as odd:
        await sender.send(message("odd@example.go.tz"))
    assert odd.value.permanent is False and "299" in str(odd.value)
    assert len(handler.received) == 1


async def test_smtp_connections_are_reused_and_replaced_when_the_relay_drops_them() -> None:
    handler = ScriptedSmtp()
    server = CountingSmtpServer(handler, free_port())
    await server.start()
    sender = SmtpEmailSender(SmtpSettings(host=LOCALHOST, port=server.port, timeout_s=5))
    try:
        for i in range(5):
            await sender.send(message(f"asha{i}@example.go.tz"))
        assert (len(handler.received), len(server.connections)) == (5, 1)

        # Eight at once (the default number of senders) need eight connections, no more,
        # and the next eight reuse them.
        for _ in range(2):
            await asyncio.gather(*(sender.send(message(f"b{i}@example.go.tz")) for i in range(8)))
        assert (len(handler.received), len(server.connections)) == (21, 8)

        # A refused recipient costs its connection (its state is unknown); others go on.
        with pytest.raises(DeliveryError):
            await sender.send(message("nobody@example.go.tz"))
        await sender.send(message("juma@example.go.tz"))
        assert len(handler.received) == 22

        # The relay drops every idle connection: the next message still goes, at once.
        server.drop_all()
        await sender.send(message("neema@example.go.tz"))
        assert len(handler.received) == 23
        assert len(server.connections) == 9
    finally:
        await sender.close()
        await server.stop()


async def test_smtp_connection_idle_too_long_is_not_reused() -> None:
    handler = ScriptedSmtp()
    server = CountingSmtpServer(handler, free_port())
    await server.start()
    sender = SmtpEmailSender(
        SmtpSettings(host=LOCALHOST, port=server.port, timeout_s=5, connection_idle_s=0)
    )
    try:
        await sender.send(message("asha@example.go.tz"))
        await sender.send(message("juma@example.go.tz"))
        assert (len(handler.received), len(server.connections)) == (2, 2)
    finally:
        await sender.close()
        await server.stop()


async def test_smtp_unreachable_is_transient() -> None:
    sender = SmtpEmailSender(SmtpSettings(host=LOCALHOST, port=free_port(), timeout_s=2))
    with pytest.raises(DeliveryError) as down:
        await sender.send(message("asha@example.go.tz"))
    assert down.value.permanent is False


class ScriptedGateway:
    """A real HTTP/1.1 server: answers each POST by the number it is sent to."""

    ANSWERS: dict[str, tuple[int, str, str]] = {
        "+255700000503": (503, "text/plain", "overloaded"),
        "+255700000429": (429, "text/plain", "slow down"),
        "+255700000400": (400, "application/json", '{"error": "invalid number"}'),
        "+255700000299": (200, "text/html", "<html>maintenance</html>"),
    }

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
        self.requests.append({"auth": headers.get("authorization"), **body})
        status, kind, text = self.ANSWERS.get(
            body["to"], (200, "application/json", json.dumps({"id": f"sms-{len(self.requests)}"}))
        )
        payload = text.encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()


async def test_sms_gateway_answers_are_classified() -> None:
    gateway = ScriptedGateway()
    port = free_port()
    server = await asyncio.start_server(gateway.handle, LOCALHOST, port)
    sms = HttpSmsGateway(
        SmsSettings(
            gateway_url=f"http://{LOCALHOST}:{port}/sms",
            token=SecretStr("s3cret"),
            sender_id="eGA-MKUTANO",
            timeout_s=5,
        )
    )
    try:
        assert await sms.send("+255712345678", "e-GA: Habari") == "sms-1"
        assert gateway.requests[0] == {
            "auth": "Bearer s3cret",
            "to": "+255712345678",
            "sender": "eGA-MKUTANO",
            "text": "e-GA: Habari",
        }
        for number, permanent in [
            ("+255700000503", False),
            ("+255700000429", False),
            ("+255700000400", True),
            ("+255700000299", False),
        ]:
            with pytest.raises(DeliveryError) as failure:
                await sms.send(number, "x")
            assert failure.value.permanent is permanent, number
        assert "maintenance" in str(failure.value)  # the odd answer's text is kept
    finally:
        await sms.close()
        server.close()
        await server.wait_closed()
    with pytest.raises(DeliveryError) as down:  # the gateway is gone
        sms2 = HttpSmsGateway(SmsSettings(gateway_url=f"http://{LOCALHOST}:{port}/sms"))
        try:
            await sms2.send("+255712345678", "x")
        finally:
            await sms2.close()
    assert down.value.permanent is False
