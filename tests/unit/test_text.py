"""shared/text.py: text fields refuse control characters, single lines refuse breaks."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from shared.text import (
    CONTROL_REASON,
    LINE_REASON,
    PLAIN_PATTERN,
    SINGLE_LINE_PATTERN,
    PlainText,
    SingleLineText,
    plain_text,
    single_line_text,
    without_controls,
)

Title = single_line_text(min_length=1, max_length=20)
Note = plain_text(max_length=50)


class Form(BaseModel):
    subject: SingleLineText = "s"
    body: PlainText = ""
    title: Title = "t"
    note: Note = ""
    tags: list[Title] = []
    maybe: Title | None = None


def _reasons(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as refused:
        Form(**fields)
    return {".".join(map(str, e["loc"])): e["msg"] for e in refused.value.errors()}


# C0 (but tab, LF, CR), DEL and C1 controls: refused everywhere.
CONTROLS = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]
CONTROLS += [chr(c) for c in range(0x80, 0xA0)]


@pytest.mark.parametrize("char", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_character_is_refused_in_plain_and_single_line_text(char: str) -> None:
    value = f"a{char}b"
    assert _reasons(body=value) == {"body": CONTROL_REASON}
    assert _reasons(note=value) == {"note": CONTROL_REASON}
    assert _reasons(subject=value) == {"subject": CONTROL_REASON}
    assert _reasons(title=value) == {"title": CONTROL_REASON}


@pytest.mark.parametrize("char", ["\n", "\r", "\r\n", "\u2028", "\u2029"])
def test_a_line_break_is_refused_in_single_line_text_and_kept_in_plain_text(char: str) -> None:
    value = f"Mkutano{char}Bcc: all@example.go.tz"
    assert _reasons(subject=value) == {"subject": LINE_REASON}
    assert _reasons(title=value[:20]) == {"title": LINE_REASON}
    assert _reasons(tags=["ok", value[:20]]) == {"tags.1": LINE_REASON}
    assert _reasons(maybe=value[:20]) == {"maybe": LINE_REASON}
    if char in ("\n", "\r", "\r\n"):
        assert Form(body=value).body == value
    else:  # U+2028/U+2029 are not control characters: plain text keeps them
        assert Form(body=value).body == value


def test_tab_is_text_in_plain_text_and_a_control_in_a_single_line() -> None:
    assert Form(body="a\tb", note="a\tb").note == "a\tb"
    assert _reasons(subject="a\tb") == {"subject": CONTROL_REASON}


def test_ordinary_text_passes_in_every_script() -> None:
    text = "Mkutano wa Serikali Mtandao — e‑GA 2026 · Арусha · أروشا · 阿鲁沙 😀"
    assert Form(subject=text, body=text).subject == text
    assert Form(title="  Azimio  ").title == "Azimio"  # bounded types strip outer spaces
    assert Form(title="Azimio\n").title == "Azimio"  # a trailing break is stripped first


def test_bounds_are_checked_with_pydantic_messages_before_the_characters() -> None:
    assert _reasons(title="") == {"title": "String should have at least 1 character"}
    assert _reasons(title="x" * 21) == {"title": "String should have at most 20 characters"}
    assert _reasons(note="\x00" * 51) == {"note": "String should have at most 50 characters"}


def test_the_json_schema_carries_the_rule_as_a_pattern() -> None:
    schema = Form.model_json_schema()["properties"]
    assert schema["subject"]["pattern"] == SINGLE_LINE_PATTERN
    assert schema["body"]["pattern"] == PLAIN_PATTERN
    assert (schema["title"]["pattern"], schema["title"]["maxLength"]) == (SINGLE_LINE_PATTERN, 20)
    assert schema["tags"]["items"]["pattern"] == SINGLE_LINE_PATTERN
    # The patterns say what the validators do (Python's re reads the same escapes).
    for char in CONTROLS:
        assert not re.match(PLAIN_PATTERN, f"a{char}")
        assert not re.match(SINGLE_LINE_PATTERN, f"a{char}")
    for char in "\t\n\r":
        assert re.match(PLAIN_PATTERN, f"a{char}b")
        assert not re.match(SINGLE_LINE_PATTERN, f"a{char}b")
    assert not re.match(SINGLE_LINE_PATTERN, "a\u2028b")


def test_without_controls_cleans_text_from_before_the_rules() -> None:
    assert without_controls("a\x00b\x1bc\nd\te") == "a\ufffdb\ufffdc\nd\te"
    assert without_controls("a\nb\u2028c\td", keep_line_breaks=False) == "a b c d"
