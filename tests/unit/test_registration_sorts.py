"""The organisers' list sorted by the server (issue 15): every sort pages by keyset, the
pages together are the whole list in that order, and a cursor is only good for its sort.

The store here is the fake; tests/integration/test_registration_sorts_store.py runs the
same paging against MongoDB (nx-27017 by default)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registration import api, handlers
from services.registration.api import decode_cursor, encode_cursor
from services.registration.domain import (
    REGISTRATION_SORTS,
    EventSpec,
    RegistrationRequest,
    RegistrationSort,
    TicketSigner,
    name_sort_key,
    sort_key,
)
from shared.auth import Principal
from shared.errors import ApiError
from shared.http import install_error_handlers
from tests.unit.fakes.registration import FakeRegistrationStore

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
NAMES = [
    "Zuhura Said",
    "amina Juma",
    "Baraka Mollel",
    "Émile Nduwimana",
    "Amina Ali",
    "zawadi Kimaro",
    "Neema Mushi",
    "Baraka Mollel",  # the same name twice: the older first
    "Elia Mrema",
    "ANNA MREMA",
]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def refused(cursor: str, sort: RegistrationSort) -> str:
    with pytest.raises(ApiError) as raised:
        decode_cursor(cursor, sort)
    assert raised.value.status == 422
    assert [f.field for f in raised.value.fields] == ["cursor"]
    return raised.value.fields[0].reason


async def _event_with_people() -> tuple[handlers.Context, Clock, str]:
    clock = Clock()
    ctx = handlers.Context(
        store=FakeRegistrationStore(),
        signer=TicketSigner(b"k" * 32),
        notice_version="2025-01",
        clock=clock,
    )
    spec = EventSpec.model_validate(
        {
            "id": "event-sorts",
            "code": "SORTS",
            "title_sw": "Semina",
            "title_en": "Seminar",
            "venue": "AICC",
            "city": "Arusha",
            "starts_at": NOW + timedelta(days=30),
            "ends_at": NOW + timedelta(days=31),
            "capacity": 6,  # the rest wait: two statuses to sort by
            "registration_opens_at": NOW - timedelta(days=1),
            "state": "published",
        }
    )
    event_id = (await handlers.create_event(ctx, spec)).id
    for i, name in enumerate(NAMES):
        clock.now = NOW + timedelta(seconds=i)
        request = RegistrationRequest.model_validate(
            {
                "full_name": name,
                "email": f"person.{i}@example.go.tz",
                "phone": f"0712{i:06d}",
                "institution": "e-GA",
                "position": "ICT Officer",
                "cadre": "ict_officer",
                "language": "sw",
                "consent": {"accepted": True},
            }
        )
        await handlers.register_participant(ctx, event_id, request)
    return ctx, clock, event_id


def test_name_order_ignores_case_and_accents() -> None:
    assert name_sort_key("Émile NDUWIMANA") == name_sort_key("emile nduwimana") == "emile nduwimana"
    assert sorted(["zawadi", "Amina", "Émile", "baraka"], key=name_sort_key) == [
        "Amina",
        "baraka",
        "Émile",
        "zawadi",
    ]


@pytest.mark.parametrize("sort", REGISTRATION_SORTS)
async def test_pages_of_each_sort_are_the_whole_list_in_that_order(sort: RegistrationSort) -> None:
    ctx, _, event_id = await _event_with_people()
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        after = decode_cursor(cursor, sort) if cursor else None
        page = await handlers.registrations_page(ctx, event_id, {}, after, 3, sort)
        if not page:
            break
        pages.append([r.id for r in page])
        cursor = encode_cursor(page[-1], sort)  # what the API hands out, read back
    everyone = await handlers.registrations_page(ctx, event_id, {}, None, 100)
    expected = sorted(everyone, key=lambda r: sort_key(r, sort), reverse=sort == "-created")
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i for p in pages for i in p] == [r.id for r in expected]
    by_id = {r.id: r for r in everyone}
    listed = [by_id[i] for p in pages for i in p]
    if sort == "name":
        assert [r.full_name for r in listed[:4]] == [
            "Amina Ali",
            "amina Juma",
            "ANNA MREMA",
            "Baraka Mollel",
        ]
        twins = [r for r in listed if r.full_name == "Baraka Mollel"]
        assert twins[0].created_us < twins[1].created_us
    if sort == "status":
        statuses = [r.status for r in listed]
        assert statuses == ["confirmed"] * 6 + ["waitlisted"] * 4
    if sort == "-created":
        assert listed[0].full_name == "ANNA MREMA" and listed[-1].full_name == "Zuhura Said"


async def test_a_cursor_of_one_sort_is_refused_by_another() -> None:
    ctx, _, event_id = await _event_with_people()
    page = await handlers.registrations_page(ctx, event_id, {}, None, 2, "name")
    by_name = encode_cursor(page[-1], "name")
    assert decode_cursor(by_name, "name") == sort_key(page[-1], "name")
    reason = refused(by_name, "created")
    assert "name" in reason
    refused(by_name, "status")
    oldest_first = encode_cursor(page[-1])  # the format cursors had before sorts
    assert json.loads(base64.urlsafe_b64decode(oldest_first + "==")) == [
        page[-1].created_us,
        page[-1].id,
    ]
    for other in ("-created", "name", "status"):
        refused(oldest_first, other)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        (b64(["name", 5, 1, "x"]), "name"),
        (b64(["name", "a" * 601, 1, "x"]), "name"),
        (b64(["name", "amina", 1]), "name"),
        (b64(["name", "amina", -1, "x"]), "name"),
        (b64(["status", "asleep", 1, "x"]), "status"),
        (b64(["status", ["confirmed"], 1, "x"]), "status"),
        (b64(["status", "confirmed", 1, ""]), "status"),
        (b64(["-created", 1]), "-created"),
        (b64(["-created", 2**63, "x"]), "-created"),
        (b64(["created", 1, "x"]), "created"),
        (b64(["bogus", 1, "x"]), "created"),
        (b64([]), "created"),
    ],
)
def test_malformed_cursors_of_the_sorts_are_refused(cursor: str, sort: RegistrationSort) -> None:
    refused(cursor, sort)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from([*REGISTRATION_SORTS, "confirmed", "waitlisted"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REGISTRATION_SORTS), json_values.map(b64) | st.text(max_size=80))
def test_any_cursor_is_a_keyset_of_the_sort_or_a_422(sort: RegistrationSort, cursor: str) -> None:
    try:
        key = decode_cursor(cursor, sort)
    except ApiError as exc:
        assert exc.status == 422 and [f.field for f in exc.fields] == ["cursor"]
        return
    *first, created_us, last_id = key
    assert type(created_us) is int and 0 <= created_us < 2**63
    assert isinstance(last_id, str) and 0 < len(last_id) <= 64
    assert len(first) == (0 if sort in ("created", "-created") else 1)
    if sort == "status":
        assert first[0] in {
            "confirmed",
            "waitlisted",
            "pending_approval",
            "rejected",
            "cancelled",
            "pending_payment",
        }
    if sort == "name":
        assert isinstance(first[0], str)


# -- through HTTP: the one error shape, naming the field -------------------------------------


class _Organisers:
    async def authenticate(self, credential: Any) -> Principal:
        return Principal(id="organiser-1", roles=frozenset({"organiser"}))


async def _client() -> tuple[httpx.AsyncClient, str]:
    ctx, _, event_id = await _event_with_people()
    app = FastAPI()
    install_error_handlers(app, api.ERROR_STATUSES)
    app.include_router(api.router)
    app.state.context = ctx
    app.state.authenticator = _Organisers()
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"X-API-Key": "organiser"}
    )
    return client, f"/api/v1/events/{event_id}/registrations"


def _problem(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return [f["field"] for f in error["fields"]]


async def test_the_api_sorts_the_whole_list_and_refuses_what_it_cannot_read() -> None:
    client, url = await _client()
    async with client:
        first = await client.get(url, params={"sort": "name", "limit": 4})
        assert first.status_code == 200, first.text
        names = [i["full_name"] for i in first.json()["items"]]
        assert names == ["Amina Ali", "amina Juma", "ANNA MREMA", "Baraka Mollel"]
        cursor = first.json()["next_cursor"]
        second = await client.get(url, params={"sort": "name", "limit": 4, "cursor": cursor})
        assert [i["full_name"] for i in second.json()["items"]] == [
            "Baraka Mollel",
            "Elia Mrema",
            "Émile Nduwimana",
            "Neema Mushi",
        ]
        assert _problem(await client.get(url, params={"sort": "age"})) == ["sort"]
        mixed = await client.get(url, params={"sort": "created", "cursor": cursor})
        assert _problem(mixed) == ["cursor"]
        assert _problem(await client.get(url, params={"cursor": cursor})) == ["cursor"]
