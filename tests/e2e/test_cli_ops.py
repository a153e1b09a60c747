"""The ``mkutano`` operator CLI against the running platform (as a process, as ops run it)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from deploy import cli
from deploy.cli import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from deploy.embedded import free_port
from shared.topics import NOTIFICATION, dead_letter_topic
from tests.helpers import TopicReader, cloudevent_headers, publish_raw, unique_id
from tests.stack import unique_suffix

pytestmark = pytest.mark.e2e

# The session's platform runs three services; the CLI speaks to five (payments and webhooks
# too), so this module starts those two beside it, in databases and groups of their own.
ALL = list(cli.SERVICES)


@pytest.fixture(scope="module")
async def operated(platform) -> AsyncIterator[dict[str, str]]:
    """Every service the CLI knows, by name → URL (payments and webhooks started here)."""
    group = f"-{secrets.token_hex(3)}"
    suffix = unique_suffix()
    extra = await asyncio.gather(
        platform.factory.start(
            "payments", db_suffix=suffix, PAYMENTS_CONSUMER_GROUP=f"payments{group}"
        ),
        platform.factory.start(
            "webhooks", db_suffix=suffix, WEBHOOKS_CONSUMER_GROUP=f"webhooks{group}"
        ),
    )
    try:
        yield {**{s: h.url for s, h in platform.services.items()}, **{h.name: h.url for h in extra}}
    finally:
        await asyncio.gather(*(h.stop() for h in extra))


async def mkutano(platform, urls: dict[str, str], *args: str) -> tuple[int, list[dict], str]:
    env = {
        **os.environ,
        "MKUTANO_ADMIN_KEY": platform.admin_key,
        "KAFKA_BOOTSTRAP_SERVERS": platform.kafka.bootstrap,
        **{f"MKUTANO_{s.upper()}_URL": url for s, url in urls.items()},
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    return proc.returncode, lines, err.decode()


async def test_api_keys_on_every_service_then_revoke_one(platform, operated) -> None:
    label = unique_id("cli")
    rc, made, err = await mkutano(
        platform, operated, "api-keys", "create", "--roles", "auditor", "--label", label
    )
    assert rc == 0, err
    assert sorted(m["service"] for m in made) == sorted(ALL)
    async with httpx.AsyncClient(timeout=10) as client:
        for m in made:
            url = operated[m["service"]]
            r = await client.get(
                f"{url}/api/v1/admin/status", headers={"Authorization": f"Bearer {m['key']}"}
            )
            assert r.status_code == 200
    reg = next(m for m in made if m["service"] == "registration")
    rc, (revoked,), err = await mkutano(
        platform, operated, "api-keys", "revoke", reg["id"], "--service", "registration"
    )
    assert rc == 0 and revoked["active"] is False, err
    rc, listed, _ = await mkutano(
        platform, operated, "api-keys", "list", "--service", "registration"
    )
    mine = [k for k in listed if k["label"] == label]
    assert [k["active"] for k in mine] == [False] and "key" not in mine[0]
    # Bad input: a clear one-line error and the "refused" exit code.
    rc, _, err = await mkutano(
        platform, operated, "api-keys", "create", "--roles", "root", "--label", "x"
    )
    assert rc == EXIT_REFUSED and "roles" in err and "unknown role" in err


async def test_status_and_dlq_replay(platform, operated) -> None:
    rc, statuses, err = await mkutano(platform, operated, "status")
    assert rc == 0, err
    assert [s["service"] for s in statuses] == ALL
    assert all("backlog" in s["outbox"] for s in statuses)

    # A dead letter as the consumer runtime writes it, then replayed to its topic.
    ce_id = str(uuid.uuid4())
    headers = {
        **cloudevent_headers("tz.go.ega.tests.Unknown.v1", ce_id=ce_id),
        "dlq_reason": "handler_failed",
        "dlq_original_topic": NOTIFICATION,
        "dlq_original_partition": "0",
        "dlq_original_offset": "0",
    }
    await publish_raw(
        platform.kafka.bootstrap,
        dead_letter_topic("resolutions"),
        key="k-" + ce_id,
        headers=headers,
        value=b"{}",
    )
    rc, dry, err = await mkutano(
        platform, operated, "dlq", "replay", "--service", "resolutions", "--dry-run"
    )
    assert rc == 0, err
    assert [d["result"] for d in dry if d.get("ce_id") == ce_id] == ["would_replay"]
    rc, done, err = await mkutano(platform, operated, "dlq", "replay", "--service", "resolutions")
    assert rc == 0, err
    assert [d["result"] for d in done if d.get("ce_id") == ce_id] == ["replayed"]
    async with TopicReader(platform.kafka.bootstrap, [NOTIFICATION]) as reader:
        (record,) = await reader.wait_for(lambda r: r.ce_id == ce_id)
    assert record.key == "k-" + ce_id
    assert not any(k.startswith("dlq_") for k in record.headers)
    # A second run replays nothing new (the replay group remembers).
    rc, again, err = await mkutano(platform, operated, "dlq", "replay", "--service", "resolutions")
    assert rc == 0 and not [d for d in again if d.get("ce_id") == ce_id], err


async def test_resolutions_import_is_checked_whole_then_written_all_or_nothing(
    platform, operated, tmp_path
) -> None:
    conference_id = unique_id("conf")
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=10) as client:
        r = await client.post(
            "/api/v1/conferences",
            headers=platform.admin_headers,
            json={
                "id": conference_id,
                "name_sw": "Mkutano",
                "name_en": "Conference",
                "starts_on": "2025-02-11",
                "ends_on": "2025-02-13",
                "venue": "AICC",
            },
        )
        assert r.status_code == 201, r.text
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "number,title_sw,title_en,lead_institution\n"
        "1,Usalama wa mifumo,Systems security,e-GA\n"
        "x,Mafunzo,Training,e-GA\n",
        encoding="utf-8",
    )
    rc, lines, err = await mkutano(
        platform, operated, "resolutions", "import", str(bad), "--conference", conference_id
    )
    assert rc == EXIT_REFUSED, err
    assert any(line["result"] == "problem" for line in lines)
    assert lines[-1]["result"] == "refused"

    good = tmp_path / "good.csv"
    good.write_text(
        "number,title_sw,title_en,lead_institution\n"
        "1,Usalama wa mifumo,Systems security,e-GA\n"
        "2,Mafunzo,Training,e-GA\n",
        encoding="utf-8",
    )
    rc, lines, err = await mkutano(
        platform,
        operated,
        "resolutions",
        "import",
        str(good),
        "--conference",
        conference_id,
        "--dry-run",
    )
    assert rc == 0 and lines[-1]["result"] == "checked", err
    # Progress is counted in records (the file's rows), not in requests.
    assert "check good.csv: 0/2 records" in err and "check good.csv: 2/2 records" in err
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=10) as client:
        listed = (await client.get(f"/api/v1/conferences/{conference_id}/resolutions")).json()
        assert listed == []  # the bad file and the dry run wrote nothing
        rc, lines, err = await mkutano(
            platform, operated, "resolutions", "import", str(good), "--conference", conference_id
        )
        assert rc == 0 and lines[-1]["result"] == "imported", err
        assert "import good.csv: 2/2 records" in err
        listed = (await client.get(f"/api/v1/conferences/{conference_id}/resolutions")).json()
        assert [r["number"] for r in listed] == [1, 2]


async def test_status_reports_every_service_even_when_one_is_down(platform, operated) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rc, statuses, err = await mkutano(platform, operated, "--url", f"notification={down}", "status")
    assert rc == EXIT_UNREACHABLE, err
    assert [s["service"] for s in statuses] == ALL
    by = {s["service"]: s for s in statuses}
    assert by["notification"]["reachable"] is False and by["notification"]["url"] == down
    assert "error" in by["notification"]
    for name in (s for s in ALL if s != "notification"):
        assert by[name]["reachable"] is True and by[name]["ready"] is True, by[name]
        assert "backlog" in by[name]["outbox"]


async def test_distinct_exit_codes(platform, operated) -> None:
    rc, _, err = await mkutano(
        platform, operated, "seats", "recount", "--event", unique_id("no-such")
    )
    assert rc == EXIT_NOT_FOUND, err
    rc, _, err = await mkutano(
        platform, operated, "api-keys", "revoke", "no-such-key", "--service", "registration"
    )
    assert rc == EXIT_NOT_FOUND and "404" in err, err
    rc, _, err = await mkutano(
        platform,
        operated,
        "--admin-key",
        "mk_wrong",
        "api-keys",
        "list",
        "--service",
        "registration",
    )
    assert rc == EXIT_REFUSED and "401" in err, err
    down = f"http://127.0.0.1:{free_port()}"
    rc, _, err = await mkutano(
        platform, operated, "--url", f"registration={down}", "seats", "recount", "--event", "e"
    )
    assert rc == EXIT_UNREACHABLE and "cannot reach" in err, err
    rc, _, err = await mkutano(platform, operated, "resolutions", "import")
    assert rc == EXIT_USAGE and "usage:" in err, err
    rc, _, err = await mkutano(platform, operated, "--url", "nosuch=http://x", "status")
    assert rc == EXIT_USAGE, err
    rc, _, err = await mkutano(
        platform, operated, "resolutions", "import", "/no/such/file.csv", "--conference", "c"
    )
    assert rc == EXIT_NOT_FOUND, err
