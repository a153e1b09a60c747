"""The implementation report as the hall sees it, a phone shows it and paper keeps it:
axe-core finds nothing, it fits a 390 px phone, and printed on A4 it is a tidy document.
On the demo seed of a fresh stack (12 resolutions of every status)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.demo import demo_calendar
from shared.timeutil import EAT, utcnow
from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.stack import unique_suffix

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def report_url(start_module_service) -> str:
    """The demo report of one resolutions service, which every test here only reads."""
    service = await start_module_service(
        "resolutions", db_suffix=unique_suffix(), MKUTANO_SEED_DEMO="true"
    )
    previous = demo_calendar(utcnow().astimezone(EAT).date()).previous
    return f"{service.url}/api/v1/conferences/{previous.id}/report"


@pytest.mark.parametrize("lang", ["both", "sw", "en"])
async def test_axe_finds_nothing_on_the_report(report_url: str, lang: str) -> None:
    async with chromium_page(width=1366, height=900) as page:
        await page.goto(f"{report_url}?lang={lang}")
        assert await page.locator("main").count() == 1
        assert await axe_violations(page) == []


async def test_the_report_fits_a_phone(report_url: str) -> None:
    async with chromium_page(width=390, height=844) as page:
        await page.goto(report_url)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px phone"
        # Each resolution still shows its number, status and progress, labelled.
        first = page.locator("tr.resolution").first
        assert await first.locator(".status").is_visible()
        assert await page.get_by_role("progressbar").count() == 12 + 1
        assert await axe_violations(page) == []


async def test_the_report_prints_as_a_tidy_document(report_url: str, tmp_path: Path) -> None:
    async with chromium_page(width=1366, height=900) as page:
        await page.goto(report_url)
        await page.emulate_media(media="print")
        # Table headers repeat on every page; headings stay with what follows them;
        # dates never break across lines.
        assert (
            await page.evaluate("getComputedStyle(document.querySelector('thead')).display")
            == "table-header-group"
        )
        for heading in await page.locator("h2").all():
            assert await heading.evaluate("h => getComputedStyle(h).breakAfter") == "avoid"
        dates = page.locator("td.target .date")
        assert await dates.count() >= 10
        for date in await dates.all():
            assert await date.evaluate("d => getComputedStyle(d).whiteSpace") == "nowrap"
        pdf = await page.pdf(format="A4", landscape=True, print_background=True)
    (tmp_path / "report.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    # 12 resolutions, the summary, the chart and the scorecard by lead institution: four
    # A4 pages at most (the progress-over-time charts are left off paper).
    assert 1 <= pages <= 4, pages
