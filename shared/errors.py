"""The one error shape of every Mkutano HTTP API.

``{"error": {"code": "...", "message": "...", "fields": [{"field": "...", "reason": "..."}]}}``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


class FieldProblem(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[FieldProblem] = []
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Raised by handlers and routes; rendered in the common error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[FieldProblem] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.details = details
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return ErrorResponse(
            error=ErrorBody(
                code=self.code, message=self.message, fields=self.fields, details=self.details
            )
        ).model_dump(exclude_none=True)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the common error shape."""
    return {s: {"model": ErrorResponse} for s in statuses}


class DomainError(Exception):
    """A rule of a service's domain refused a command.

    ``code`` says which rule (``event_not_found``, ``registration_closed``…), ``field``
    names the input at fault, and ``details`` may carry more (``problems``: per-row
    findings of an import). It says nothing of HTTP: each service's HTTP layer maps the
    code to a status (``status_for``), so the same rule can be refused over HTTP, in a
    Kafka consumer or in a CLI.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details


# How the HTTP layer answers a refused command. A code not listed is a rule that refused
# a well-formed request in the current state: 409. ``*_not_found`` is 404 everywhere.
COMMON_STATUSES: dict[str, int] = {
    "concurrent_update": 409,
    "version_conflict": 409,
    "version_required": 428,
    "invalid_dates": 422,
    "service_unavailable": 503,
}


def status_for(code: str, statuses: Mapping[str, int] | None = None) -> int:
    """The HTTP status of a domain error code: the service's map, the common one, a rule."""
    if statuses and code in statuses:
        return statuses[code]
    if code in COMMON_STATUSES:
        return COMMON_STATUSES[code]
    if code.endswith("_not_found"):
        return 404
    return 409


def api_error_of(exc: DomainError, statuses: Mapping[str, int] | None = None) -> ApiError:
    """A domain error in the common HTTP error shape, with the service's status for it."""
    fields = [FieldProblem(field=exc.field, reason=exc.message)] if exc.field else []
    if exc.details and exc.details.get("problems"):
        # An import: each row's problem as a field "row N: column".
        fields = [
            FieldProblem(field=f"row {p['row']}: {p['field']}", reason=p["reason"])
            for p in exc.details["problems"]
        ]
    return ApiError(
        status_for(exc.code, statuses), exc.code, exc.message, fields=fields, details=exc.details
    )
