"""The organisers' list cursor: every cursor this API did not issue is a 422 naming
``cursor``, never a 500 (a ``[10**30, "x"]`` once overflowed the BSON int64 of the query)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registration.api import decode_cursor, encode_cursor
from shared.errors import ApiError


def b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def assert_refused(cursor: str) -> None:
    with pytest.raises(ApiError) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 422
    assert [f.field for f in raised.value.fields] == ["cursor"]


MALFORMED = [
    b64([10**30, "x"]),
    b64([2**63, "x"]),
    b64([-1, "x"]),
    b64([True, "x"]),
    b64([1.5, "x"]),
    b64([1e400, "x"]),
    b64(b'[NaN, "x"]'),
    b64(b'[Infinity, "x"]'),
    b64([1, 2]),
    b64([1, ""]),
    b64([1, "x" * 65]),
    b64([1, None]),
    b64([1, ["x"]]),
    b64(["1", "x"]),
    b64([1]),
    b64([1, "x", 3]),
    b64({"a": 1, "b": "x"}),
    b64("ab"),
    b64(42),
    b64(None),
    b64(b"\xff\xfe"),
    b64(b"[" * 300),
    "!!!!",
    "a",
    "====",
    "%00",
]


@pytest.mark.parametrize("cursor", MALFORMED)
def test_each_malformed_cursor_is_refused_naming_the_field(cursor: str) -> None:
    assert_refused(cursor)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=120), json_values.map(b64), st.binary(max_size=80).map(b64)))
def test_any_cursor_is_a_valid_position_or_a_422(cursor: str) -> None:
    try:
        created_us, last_id = decode_cursor(cursor)
    except ApiError as exc:
        assert exc.status == 422 and [f.field for f in exc.fields] == ["cursor"]
    else:
        assert type(created_us) is int and 0 <= created_us < 2**63
        assert isinstance(last_id, str) and 0 < len(last_id) <= 64


@given(st.integers(min_value=0, max_value=2**63 - 1), st.uuids().map(str))
def test_a_cursor_the_api_issued_reads_back(created_us: int, registration_id: str) -> None:
    class Last:
        pass

    last = Last()
    last.created_us, last.id = created_us, registration_id  # type: ignore[attr-defined]
    assert decode_cursor(encode_cursor(last)) == (created_us, registration_id)  # type: ignore[arg-type]
