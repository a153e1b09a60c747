"""The one error shape of every Mkutano HTTP API.

``{"error": {"code": "...", "message": "...", "fields": [{"field": "...", "reason": "..."}]}}``
"""

from __future__ import annotations

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

    ``code`` says which rule, ``status`` the HTTP status it maps to; ``field`` names the
    input at fault, and ``details`` may carry more (``problems``: per-row findings of an
    import). Raised by pure domain code and use cases; every service's HTTP layer renders
    it in the common error shape (``shared.http.install_error_handlers``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 409,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.details = details

    def to_api_error(self) -> ApiError:
        fields = [FieldProblem(field=self.field, reason=self.message)] if self.field else []
        if self.details and self.details.get("problems"):
            # An import: each row's problem as a field "row N: column".
            fields = [
                FieldProblem(field=f"row {p['row']}: {p['field']}", reason=p["reason"])
                for p in self.details["problems"]
            ]
        return ApiError(self.status, self.code, self.message, fields=fields, details=self.details)
