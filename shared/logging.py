"""structlog set-up: JSON when not on a terminal, readable console otherwise.

Personal data (names, emails, phones of civil servants) must never reach a log line
(Tanzania's Personal Data Protection Act, 2022). Two guards:
- keys known to carry personal data are replaced by ``[redacted]``;
- any string value is scrubbed of email addresses and phone numbers by pattern.
Both apply to structlog events and to standard-library records (uvicorn, aiokafka,
FastStream), which are routed through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

PII_KEYS = frozenset(
    {
        "email",
        "phone",
        "full_name",
        "name",
        "participant_name",
        "recipient",
        "to",
        "contact",
        "participant",
        "focal_persons",
        "manage_token",
        "token",
        "password",
        "api_key",
        "authorization",
    }
)
REDACTED = "[redacted]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International or Tanzanian local numbers: +255 7.., 2557.., 07.. (9+ digits, spaced or not).
_PHONE = re.compile(r"(?<![\w/.-])(?:\+|00)?\d[\d \-]{7,}\d(?![\w/.-])")


def scrub(text: str) -> str:
    """Remove email addresses and phone numbers from free text."""
    return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, text))


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in PII_KEYS and value is not None:
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact_personal_data(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop personal data from every field of a log event."""
    return {k: _redact_value(k, v) for k, v in event_dict.items()}


def _render_stdlib_message(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Standard-library records arrive with the formatted message as "event".
    record = event_dict.get("_record")
    if record is not None and "logger" not in event_dict:
        event_dict["logger"] = record.name
    return event_dict


def configure_logging(service: str, *, fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library for one service process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _render_stdlib_message,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_personal_data,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
