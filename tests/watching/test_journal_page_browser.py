"""``gridmap watch``'s page in a real headless Chromium: a finished map's counts and
failures, a failed job's page, paging, figures that follow a journal being written,
and no page without the token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gridmap_core import grid_map
from gridmap_core.journal.store import Journal
from gridmap_core.model.job import JobException
from gridmap_core.watching.journal_page import JournalPage
from gridmap_core.wire.messages import encode_value
from tests.support.browser import wait_for_text, wait_until
from tests.watching.test_journal_page import synthetic_map

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


def unlucky(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"input {x} is unlucky")
    return 2 * x


def _text(driver: WebDriver, selector: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.CSS_SELECTOR, selector).text
    return text


def _chart_loaded(driver: WebDriver) -> bool:
    width = driver.execute_script("return document.getElementById('throughput').naturalWidth")
    return bool(width == 640)


def _rows(driver: WebDriver) -> Callable[[WebDriver], list[str]]:
    from selenium.webdriver.common.by import By

    def rows(page: WebDriver) -> list[str]:
        return [str(row.get_attribute("id")) for row in page.find_elements(
            By.CSS_SELECTOR, "#jobs tbody tr")]
    return rows


def test_a_finished_map_shows_its_counts_and_its_failures(
        browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By

    config = tmp_path / "gridmap.toml"
    config.write_text('map_keep_time = 3600\n[backends.local]\nmode = "runner"\n')
    monkeypatch.setenv("GRIDMAP_CONFIG", str(config))
    with pytest.raises(JobException):
        grid_map(unlucky, range(20), backend="local", max_processes=2, name="unlucky",
                 temp_dir=str(tmp_path))
    [directory] = tmp_path.glob("gridmap-*")

    with JournalPage(directory) as page:
        browser.get(page.url)
        assert browser.title == "gridmap: unlucky"
        assert _text(browser, "#state") == "failed"
        assert _text(browser, "#backend") == "local"
        assert _text(browser, "#seconds-label") == "Wall time"
        assert _text(browser, "#monitor") == "none: the map ended"
        assert _text(browser, "#counts h2") == "20 of 20 jobs ended"
        assert _text(browser, "#count-succeeded") == "17"
        assert _text(browser, "#count-failed") == "3"
        assert _text(browser, "#count-queued") == "0"
        assert _text(browser, "#failures h2") == "Failures (3)"
        failures = [item.text for item in browser.find_elements(By.CSS_SELECTOR,
                                                                  "#failures li")]
        assert len(failures) == 3
        for item, index in zip(failures, (3, 10, 17), strict=True):
            assert item.startswith(f"unlucky{index} #{index} failed")
            assert item.endswith(f"ValueError: input {index} is unlucky")
        assert len(_rows(browser)(browser)) == 20
        wait_until(browser, _chart_loaded, 10, "the throughput chart did not load")
        # The script's refresh goes through: the page says it is live.
        wait_for_text(browser, "#connection", "live", 10)

        browser.find_element(By.CSS_SELECTOR, "#failure-10 a").click()
        wait_for_text(browser, "#job-state", "failed", 10)
        assert _text(browser, "#error") == "ValueError: input 10 is unlucky"
        assert "raise ValueError" in _text(browser, "#traceback")
        browser.find_element(By.ID, "back").click()
        wait_for_text(browser, "#count-failed", "3", 10)


def test_paging_and_figures_that_follow_the_journal(browser: WebDriver,
                                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 250, running=10, queued=40,
                              failed=frozenset({120}), state="running")
    with JournalPage(directory) as page:
        browser.get(page.url)
        assert _text(browser, "#page") == "page 1 of 3"
        rows = _rows(browser)
        assert rows(browser) == [f"job-{index}" for index in range(100)]
        browser.find_element(By.ID, "next").click()
        wait_for_text(browser, "#page", "page 2 of 3", 10)
        assert rows(browser) == [f"job-{index}" for index in range(100, 200)]
        assert _text(browser, "#job-120 td.state") == "failed"
        assert _text(browser, "#count-succeeded") == "199"
        browser.execute_script("window.stillTheSamePage = true")

        # The map's monitor writes on: the figures follow without a reload.
        journal = Journal.open(directory, readonly=False)
        try:
            for index in range(200, 210):
                journal.store_result(index, 0, encode_value(index, "node-b"), ok=True,
                                     host="node-b")
        finally:
            journal.close()
        wait_for_text(browser, "#count-succeeded", "209", 10)
        assert _text(browser, "#count-running") == "0"
        assert _text(browser, "#done") == "210"
        assert browser.execute_script("return window.stillTheSamePage") is True


def test_without_the_token_the_browser_gets_no_page(browser: WebDriver,
                                                    tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3, name="secretive")
    with JournalPage(directory) as page:
        for path in ("/", "/?token=wrong", "/job/0", f"/api/summary?token={page.token[:-2]}"):
            browser.get(f"{page.base}{path}")
            body = browser.find_element(By.TAG_NAME, "body").text
            assert body.startswith("403 refused"), (path, body)
            assert "secretive" not in body
        browser.get(page.url)
        assert _text(browser, "#title") == "secretive"
