"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against a
live `runq serve` with real workers. Screenshots go to $RUNQ_TEST_ARTIFACTS (else the test's
tmp_path); their paths are printed."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("RUNQ_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _missing() -> str:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does)"
    return ""


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # only here: it may be missing

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1300, "height": 1000})
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[list[Path]]:
    taken: list[Path] = []
    yield taken
    for path in taken:
        print(f"screenshot: {path}")


def _shoot(page: Page, shots: list[Path], name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("RUNQ_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


def test_dashboard_in_a_browser(
    server_factory: object, page: Page, shots: list[Path], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server: Server = server_factory()  # type: ignore[operator]
    server.add_endpoint("demo", "native_sleep.py", workers=0)  # max 1 worker: jobs queue up
    server.settings = {"stop_grace": 1}  # the cancelled 30 s job's worker is killed sooner
    server.start(wait_workers=False)

    # The printed link: the token is traded for a cookie and leaves the address bar.
    page.goto(f"{server.url}/?token={server.key}")
    assert page.url == f"{server.url}/"
    row = page.locator('tr[data-endpoint="demo"]')
    row.wait_for()
    assert row.locator('[data-field="workers"]').inner_text() == "0 / 0 / 0"
    _shoot(page, shots, "list-idle", tmp_path)

    # Jobs arrive: the queue, then the workers, move on the page without a reload.
    jobs = [server.run("demo", {"input": {"seconds": 0.8}}) for _ in range(4)]
    # expect() retries until its deadline, without evaluating strings (the page's CSP
    # forbids eval, which wait_for_function would need).
    expect(row.locator('[data-field="queued"]')).to_have_text(
        re.compile(r"^[1-9]"), timeout=WAIT_MS
    )
    expect(row.locator('[data-field="workers"]')).not_to_have_text("0 / 0 / 0", timeout=WAIT_MS)
    _shoot(page, shots, "list-busy", tmp_path)
    for job in jobs:
        server.wait_status("demo", job, {"COMPLETED"})
    expect(row.locator('[data-field="queued"]')).to_have_text("0", timeout=WAIT_MS)

    # Cancel a queued job from the endpoint page: a long job holds the only worker.
    long_job = server.run("demo", {"input": {"seconds": 30}})
    server.wait_status("demo", long_job, {"IN_PROGRESS"})
    waiting = server.run("demo", {"input": {"seconds": 0.1}})
    page.goto(f"{server.url}/endpoints/demo")
    job_row = page.locator(f'tr[data-job="{waiting}"]')
    assert job_row.locator(".status").inner_text() == "IN_QUEUE"
    _shoot(page, shots, "endpoint", tmp_path)
    job_row.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{server.url}/endpoints/demo?notice=cancelled")
    assert job_row.locator(".status").inner_text() == "CANCELLED"
    assert server.status("demo", waiting)["status"] == "CANCELLED"

    # Purge the queue.
    purged = [server.run("demo", {"input": {"seconds": 0.1}}) for _ in range(2)]
    page.locator("#purge").click()
    page.wait_for_url(f"{server.url}/endpoints/demo?notice=purged")
    assert {server.status("demo", job)["status"] for job in purged} == {"CANCELLED"}
    assert page.locator(f'tr[data-job="{purged[0]}"] .status').inner_text() == "CANCELLED"

    # The running job can be cancelled too (its worker is told to stop).
    page.locator(f'tr[data-job="{long_job}"]').get_by_role("button", name="Cancel").click()
    page.wait_for_url("**/endpoints/demo?notice=cancelled")
    assert server.status("demo", long_job)["status"] == "CANCELLED"

    # Change max workers; a bad pair is refused with the reason on the page.
    page.fill('input[name="max_workers"]', "3")
    page.get_by_role("button", name="Change workers").click()
    page.wait_for_url("**/endpoints/demo?notice=scaled")
    assert page.locator('input[name="max_workers"]').input_value() == "3"
    [listed] = server.get("/admin/endpoints").json()
    assert (listed["active_workers"], listed["max_workers"]) == (0, 3)
    page.fill('input[name="active_workers"]', "5")
    page.get_by_role("button", name="Change workers").click()
    page.get_by_role("alert").wait_for()
    assert (
        "active workers (5) must not exceed max workers (3)"
        in page.get_by_role("alert").inner_text()
    )
    _shoot(page, shots, "endpoint-error", tmp_path)
