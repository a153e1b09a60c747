"""SMTP capture server: accepts every message and keeps it as an ``.eml`` file.

The dev stack's and the tests' stand-in for an SMTP relay. It is a real SMTP server
(aiosmtpd), so the notification service sends through it exactly as it would through
a production relay. Run: ``python -m deploy.mailcapture --host 127.0.0.1 --port 1025
--dir .data/mail``.

Each file is the message as received, preceded by ``X-Envelope-From`` and
``X-Envelope-To`` headers (the SMTP envelope, so that Bcc recipients are visible).
Files are written to a temporary name and renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class EmlDirectoryHandler:
    """aiosmtpd handler that writes each accepted message into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook name)
        """Store the message; answer 250 with the file name."""
        content: Any = envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        envelope_headers = (
            f"X-Envelope-From: {envelope.mail_from or ''}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        path = write_eml(self.directory, envelope_headers + content)
        # Addresses stay in the .eml only: logs carry no personal data.
        print(f"stored {path.name} ({len(envelope.rcpt_tos)} recipient(s))", flush=True)
        return f"250 Message accepted as {path.stem}"


def write_eml(directory: Path, data: bytes) -> Path:
    """Write ``data`` atomically to a new ``<timestamp>-<uuid>.eml`` file in ``directory``."""
    # The nanosecond timestamp sorts files in arrival order; the uuid makes names unique.
    name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
    final = directory / name
    tmp = directory / f".{name}.tmp"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve SMTP on ``host:port`` until SIGTERM or SIGINT."""
    handler = EmlDirectoryHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="mailcapture.mkutano.local",
            ident="Mkutano mail capture",
            enable_SMTPUTF8=True,  # participants' names are not all ASCII
            data_size_limit=32 * 1024 * 1024,
        ),
        host=host,
        port=port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"SMTP capture listening on {host}:{port}, writing to {directory}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))


if __name__ == "__main__":
    main()
