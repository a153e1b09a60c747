"""Text fields that are safe to store, show, mail and export: pydantic annotated types.

- ``PlainText``: free text, multi-line allowed. Refuses NUL and every other control
  character (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F) except tab, line feed and
  carriage return. For descriptions, notes, messages.
- ``SingleLineText``: a line of text. Refuses every control character (tab, CR and LF
  included) and the Unicode line and paragraph separators U+2028 and U+2029. For
  anything that can reach an email header, a calendar entry or a CSV header cell:
  titles, names, subjects, institutions, venues.

A refused value is a validation error whose reason is ``must not contain control
characters`` or ``must be a single line``; the HTTP layer renders it as a 422 naming the
field. Both carry their rule to the JSON Schema (``pattern``), so the OpenAPI says it.

With length bounds, build them with ``plain_text(...)`` / ``single_line_text(...)``:
the length is checked first, with pydantic's own messages, then the characters::

    Title = single_line_text(min_length=1, max_length=300)
    title: Title | None = None
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

CONTROL_REASON = "must not contain control characters"
LINE_REASON = "must be a single line"

# Control characters but tab, LF and CR (those three are the line structure of text).
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_LINE_BREAK = re.compile("[\n\r\u2028\u2029]")
_TAB = re.compile("\t")

# The same rules as JSON Schema patterns (ECMA-262 syntax).
PLAIN_PATTERN = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$"


def control_problem(value: str, *, single_line: bool = False) -> str | None:
    """The reason ``value`` is refused, or None when it is acceptable text."""
    if _CONTROL.search(value):
        return CONTROL_REASON
    if single_line:
        if _LINE_BREAK.search(value):
            return LINE_REASON
        if _TAB.search(value):
            return CONTROL_REASON
    return None


def without_controls(value: str, *, keep_line_breaks: bool = True) -> str:
    """``value`` with refused characters replaced by U+FFFD (for text read back from
    before these rules, on its way out: exports, reports)."""
    value = _CONTROL.sub("\ufffd", value)
    if not keep_line_breaks:
        value = _LINE_BREAK.sub(" ", _TAB.sub(" ", value))
    return value


@dataclass(frozen=True)
class _RefuseControls:
    single_line: bool

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        target.setdefault("pattern", SINGLE_LINE_PATTERN if self.single_line else PLAIN_PATTERN)
        return json_schema

    def _check(self, value: str) -> str:
        reason = control_problem(value, single_line=self.single_line)
        if reason is not None:
            raise PydanticCustomError("text_refused", reason)
        return value


_PLAIN = _RefuseControls(single_line=False)
_SINGLE_LINE = _RefuseControls(single_line=True)

PlainText = Annotated[str, _PLAIN]
SingleLineText = Annotated[str, _SINGLE_LINE]


def plain_text(
    *, min_length: int | None = None, max_length: int | None = None, strip: bool = True
) -> Any:
    """``PlainText`` with length bounds (checked first), stripped of outer whitespace."""
    bounds = StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)
    return Annotated[str, bounds, _PLAIN]


def single_line_text(
    *, min_length: int | None = None, max_length: int | None = None, strip: bool = True
) -> Any:
    """``SingleLineText`` with length bounds (checked first), stripped of outer whitespace."""
    bounds = StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)
    return Annotated[str, bounds, _SINGLE_LINE]
