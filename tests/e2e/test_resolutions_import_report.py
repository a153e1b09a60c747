"""CSV import (dry run, all-or-nothing), bulk progress, export and the report over HTTP;
the report rendered in headless Chromium (screenshot and PDF)."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import httpx
import pytest

from shared.demo import demo_calendar
from shared.timeutil import EAT, utcnow
from shared.topics import RESOLUTIONS
from tests.browser import chromium_page
from tests.helpers import TopicReader, unique_id
from tests.stack import unique_suffix

pytestmark = pytest.mark.e2e

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "report.png"
HEADER = (
    "number,title_sw,title_en,lead_institution,supporting_institutions,target_date,"
    "status,progress,weight,focal_person_name,focal_person_email\n"
)
GOOD_ROWS = [
    "1,Kuimarisha usalama wa mifumo,Strengthen systems security,e-GA,TCRA;PDPC,2025-12-31,"
    "completed,,2,Asha Juma,asha@example.go.tz",
    "2,Kuunganisha mifumo,Integrate systems,e-GA,,2025-06-30,in_progress,60,1,,",
    "3,Saini za kidijitali,Digital signatures,e-GA,,2030-12-31,not_started,,1,,",
    "4,Vituo vya data,Data centres,e-GA,,2025-03-31,delayed,30,1,,",
]


def _csv(rows: list[str], header: str = HEADER) -> bytes:
    return (header + "\n".join(rows) + "\n").encode()


async def _conference(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    conference_id = unique_id("conf")
    r = await client.post(
        "/api/v1/conferences",
        headers=headers,
        json={
            "id": conference_id,
            "name_sw": "Mkutano wa Tano wa Mwaka wa Serikali Mtandao",
            "name_en": "5th Annual e-Government Conference",
            "starts_on": "2025-02-11",
            "ends_on": "2025-02-13",
            "venue": "AICC, Arusha",
        },
    )
    assert r.status_code == 201, r.text
    return conference_id


@pytest.fixture
async def client(platform) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=15) as c:
        yield c


async def test_resolution_import_dry_run_then_all_or_nothing(platform, client) -> None:
    headers = {**platform.admin_headers, "Content-Type": "text/csv"}
    conference_id = await _conference(client, platform.admin_headers)
    url = f"/api/v1/conferences/{conference_id}/resolutions/import"
    bad = GOOD_ROWS + [
        "5,A,A,e-GA,,2024-01-01,,,1,,",  # target before the conference
        "6,B,B,e-GA,,,unknown,,1,,",  # unknown status
        "7,C,C,e-GA,,,,140,1,,",  # progress out of range
    ]
    dry = await client.post(url, params={"dry_run": "true"}, headers=headers, content=_csv(bad))
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert (report["valid"], report["rows"], report["valid_rows"]) == (False, 7, 4)
    assert [(p["row"], p["field"]) for p in report["problems"]] == [
        (6, "target_date"),
        (7, "status"),
        (8, "progress"),
    ]
    refused = await client.post(url, headers=headers, content=_csv(bad))
    assert refused.status_code == 422
    fields = [f["field"] for f in refused.json()["error"]["fields"]]
    assert fields == ["row 6: target_date", "row 7: status", "row 8: progress"]
    wrong_header = await client.post(
        url, headers=headers, content=_csv(GOOD_ROWS, header="nambari,kichwa\n")
    )
    assert wrong_header.status_code == 422
    assert {f["field"] for f in wrong_header.json()["error"]["fields"]} >= {
        "row 1: nambari",
        "row 1: number",
    }
    listed = await client.get(f"/api/v1/conferences/{conference_id}/resolutions")
    assert listed.json() == []  # nothing written by any of these

    done = await client.post(url, headers=headers, content=_csv(GOOD_ROWS))
    assert done.status_code == 201, done.text
    assert done.json()["imported"] == 4
    listed = (await client.get(f"/api/v1/conferences/{conference_id}/resolutions")).json()
    assert [(x["number"], x["status"], x["progress"]) for x in listed] == [
        (1, "completed", 100),
        (2, "in_progress", 60),
        (3, "not_started", 0),
        (4, "delayed", 30),
    ]
    assert listed[0]["supporting_institutions"] == ["TCRA", "PDPC"]
    again = await client.post(url, headers=headers, content=_csv(GOOD_ROWS))
    assert again.status_code == 422  # the numbers are taken now
    async with TopicReader(platform.kafka.bootstrap, [RESOLUTIONS]) as reader:
        created = await reader.wait_for(
            lambda r: (
                r.ce_type.endswith("ResolutionCreated.v2")
                and r.value["conference_id"] == conference_id
            ),
            count=4,
        )
    assert sorted(r.key for r in created) == sorted(done.json()["resolution_ids"])
    assert len(created) == 4


async def test_bulk_progress_import_export_and_report_forms(platform, client) -> None:
    headers = {**platform.admin_headers, "Content-Type": "text/csv"}
    conference_id = await _conference(client, platform.admin_headers)
    r = await client.post(
        f"/api/v1/conferences/{conference_id}/resolutions/import",
        headers=headers,
        content=_csv(GOOD_ROWS),
    )
    assert r.status_code == 201, r.text
    url = f"/api/v1/conferences/{conference_id}/updates/import"
    stale = b"number,progress,note,version\n2,70,Mifumo 30,1\n3,10,,7\n"
    dry = await client.post(url, params={"dry_run": "1"}, headers=headers, content=stale)
    assert [(p["row"], p["field"]) for p in dry.json()["problems"]] == [(3, "version")]
    assert (await client.post(url, headers=headers, content=stale)).status_code == 422
    good = (
        b"number,status,progress,note,evidence\n"
        b"2,,70,Mifumo 30 imeunganishwa,https://www.ega.go.tz/r2.pdf\n"
        b"3,in_progress,,Kazi imeanza,\n"
    )
    r = await client.post(url, headers=headers, content=good)
    assert r.status_code == 201, r.text
    listed = (await client.get(f"/api/v1/conferences/{conference_id}/resolutions")).json()
    assert [(x["number"], x["progress"]) for x in listed] == [(1, 100), (2, 70), (3, 25), (4, 30)]
    assert listed[1]["latest_update"]["evidence"] == ["https://www.ega.go.tz/r2.pdf"]

    export = await client.get(
        f"/api/v1/conferences/{conference_id}/resolutions/export", params={"format": "csv"}
    )
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(x["number"], x["progress"], x["version"]) for x in rows] == [
        ("1", "100", "1"),
        ("2", "70", "2"),
        ("3", "25", "2"),
        ("4", "30", "1"),
    ]
    assert "asha@example.go.tz" not in export.text  # no personal data in exports
    as_json = await client.get(f"/api/v1/conferences/{conference_id}/resolutions/export")
    assert [x["number"] for x in as_json.json()] == [1, 2, 3, 4]

    data = (await client.get(f"/api/v1/conferences/{conference_id}/report?format=json")).json()
    # Weights 2,1,1,1: (200 + 70 + 25 + 30) / 5 = 65
    assert data["overall_progress"] == 65 and data["resolution_count"] == 4
    overdue = [x["number"] for x in data["resolutions"] if x["overdue"]]
    assert overdue == [2, 4]  # past target, not completed (1 is completed, 3 is due 2030)
    report_csv = await client.get(
        f"/api/v1/conferences/{conference_id}/report", headers={"Accept": "text/csv"}
    )
    assert report_csv.text.splitlines()[0].startswith("number,title_sw,title_en")
    assert len(report_csv.text.splitlines()) == 5


async def test_the_report_renders_in_a_browser_and_prints_to_pdf(
    platform, client, tmp_path: Path
) -> None:
    headers = {**platform.admin_headers, "Content-Type": "text/csv"}
    conference_id = await _conference(client, platform.admin_headers)
    r = await client.post(
        f"/api/v1/conferences/{conference_id}/resolutions/import",
        headers=headers,
        content=_csv(GOOD_ROWS),
    )
    assert r.status_code == 201, r.text
    url = f"{platform.resolutions.url}/api/v1/conferences/{conference_id}/report"
    async with chromium_page(width=1366, height=900) as page:
        requested: list[str] = []
        page.on("request", lambda req: requested.append(req.url))
        response = await page.goto(url)
        assert response is not None and response.status == 200
        assert await page.title() == (
            "Utekelezaji wa Maazimio / Implementation of Resolutions — "
            "Mkutano wa Tano wa Mwaka wa Serikali Mtandao / 5th Annual e-Government Conference"
        )
        assert await page.inner_text("#overall-progress") == "58%"  # (200+60+0+30)/5
        assert await page.inner_text("#overdue-count") == "2"
        rows = page.locator("tr.resolution")
        assert await rows.count() == 4
        text = await page.inner_text("body")
        for title in ("Strengthen systems security", "Vituo vya data", "Digital signatures"):
            assert title in text
        overdue_row = await page.inner_text("#resolution-4")
        assert "Imepita muda / Overdue" in overdue_row and "30%" in overdue_row
        assert "Overdue" not in await page.inner_text("#resolution-1")
        # The chart is drawn: one bar per status, the delayed bar as long as one resolution.
        bars = page.locator("svg.chart rect")
        assert await bars.count() == 5
        assert await page.locator('svg.chart rect[data-status="delayed"]').get_attribute("width")
        # Nothing was fetched but the page itself: it works offline on a projector.
        assert requested == [url]
        shot = tmp_path / "report.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        pdf = await page.pdf(format="A4", landscape=True, print_background=True)
        assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
        english = await page.goto(url + "?lang=en")
        assert english is not None and english.status == 200
        assert "Maazimio kwa hali" not in await page.inner_text("body")


async def test_a_fresh_dev_stack_shows_the_labelled_demo_report(
    start_service, tmp_path: Path
) -> None:
    # As after `make run`: a resolutions service with the demo seed on an empty database.
    service = await start_service(
        "resolutions", db_suffix=unique_suffix(), MKUTANO_SEED_DEMO="true"
    )
    # Last year's conference, dated from today as the seed dates it (Tanzanian calendar).
    previous = demo_calendar(utcnow().astimezone(EAT).date()).previous
    url = f"{service.url}/api/v1/conferences/{previous.id}/report"
    async with httpx.AsyncClient(timeout=15) as plain:
        data = (await plain.get(url, params={"format": "json"})).json()
    assert data["resolution_count"] == 12
    assert all(r["title_en"].startswith("[DEMO]") for r in data["resolutions"])
    async with chromium_page(width=1366, height=900) as page:
        response = await page.goto(url)
        assert response is not None and response.status == 200
        assert "Demo data — not the real resolutions." in await page.inner_text(".demo")
        assert await page.inner_text("#overall-progress") == f"{data['overall_progress']}%"
        assert await page.locator("tr.resolution").count() == 12
        assert await page.locator("tr.resolution .overdue").count() == data["overdue_count"] > 0
        shot = tmp_path / "demo-report.png"
        await page.screenshot(path=str(shot), full_page=True)
    # The README's picture of the report is this page; refreshed on request only, so
    # that a test run leaves the work tree as it found it.
    if os.environ.get("MKUTANO_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG)
