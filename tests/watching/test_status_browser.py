"""The status page in a real headless Chromium while a map runs: rows change state
live, a job's page shows its error, log and charts, and no token means no page."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import wait_for_text, wait_until
from tests.support.watched import HeldMap

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


def _state(driver: WebDriver, index: int) -> str | None:
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        state: str | None = driver.find_element(By.ID, f"job-{index}").get_attribute(
            "data-state")
    except NoSuchElementException:
        return None
    return state


def _states(driver: WebDriver, count: int) -> list[str | None]:
    return [_state(driver, index) for index in range(count)]


def test_job_rows_change_state_live_and_a_job_page_shows_why_it_failed(
        browser: WebDriver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with HeldMap(tmp_path, count=3, processes=2, fail=1) as held:
        browser.get(held.url)
        wait_until(browser, lambda d: _states(d, 3) == ["running", "running", "submitted"],
                   10, "the first two jobs never showed as running")
        wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#job-0 td.memory").text,
                   10, "no memory from a heartbeat")
        row = browser.find_element(By.ID, "job-0")
        assert row.find_element(By.CSS_SELECTOR, "td.host").text == socket.gethostname()
        assert row.find_element(By.CSS_SELECTOR, "td.id").text.startswith("local.")
        assert "3 jobs: 1 queued, 2 running" in browser.find_element(By.ID, "summary").text
        assert browser.find_element(By.ID, "connection").text == "live"
        # The page is updated in place, not reloaded: this mark must survive.
        browser.execute_script("window.stillTheSamePage = true")

        held.release(0)
        wait_until(browser, lambda d: _states(d, 3) == ["done", "running", "running"], 10,
                   "the released job did not end, or the queued one did not start")
        held.release(1)
        wait_until(browser, lambda d: _state(d, 1) == "failed", 10, "job 1 never failed")
        assert browser.execute_script("return window.stillTheSamePage") is True
        assert "1 done" in browser.find_element(By.ID, "summary").text

        browser.find_element(By.CSS_SELECTOR, "#job-1 td.name a").click()
        wait_for_text(browser, "#state", "failed", 10)
        assert browser.find_element(By.ID, "name").text == "held"
        assert browser.find_element(By.ID, "error").text == "ValueError: job 1 was told to fail"
        assert "job 1 is waiting" in browser.find_element(By.ID, "log").text
        assert "raise ValueError" in browser.find_element(By.ID, "traceback").text
        for chart in ("cpu-chart", "memory-chart"):
            wait_until(browser, _loaded(chart), 10, f"{chart} did not load")

        browser.find_element(By.ID, "back").click()
        wait_until(browser, lambda d: _state(d, 1) == "failed", 10, "back to the table")
        held.release(2)
        wait_until(browser, lambda d: _state(d, 2) == "done", 10, "job 2 never ended")
    # The map is over and its process stopped serving: the page says so.
    wait_until(browser, lambda d: d.find_element(By.ID, "connection").text.startswith(
        "disconnected"), 10, "the page did not notice the server had gone")


def test_without_the_right_token_the_browser_gets_no_page(browser: WebDriver,
                                                          tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with HeldMap(tmp_path, count=1, processes=1) as held:
        for url in (f"{held.base}/", f"{held.base}/?token=wrong", f"{held.base}/job/0",
                    f"{held.base}/api/jobs?token={held.token[:-2]}"):
            browser.get(url)
            body = browser.find_element(By.TAG_NAME, "body").text
            assert body.startswith("403 refused"), (url, body)
            assert "held" not in body
        browser.get(held.url)  # and with it, the page
        wait_until(browser, lambda d: _state(d, 0) == "running", 10, "no row with the token")


def _loaded(image_id: str) -> Callable[[WebDriver], bool]:
    """Whether the image ``image_id`` has loaded a 640-pixel-wide chart."""
    def loaded(driver: WebDriver) -> bool:
        width = driver.execute_script(
            f"return document.getElementById('{image_id}').naturalWidth")
        return bool(width == 640)
    return loaded


def _shown(driver: WebDriver, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).is_displayed()


def test_a_job_page_shows_only_what_the_job_has(browser: WebDriver, tmp_path: Path) -> None:
    """A job that returned shows no Traceback box and no error; a resubmitted job shows
    no cause of death while it lives again, and lists the death of its first attempt."""
    from selenium.webdriver.common.by import By

    with HeldMap(tmp_path, count=2, processes=2, fail=1, die=0) as held:
        browser.get(f"{held.base}/job/0?token={held.token}")
        wait_for_text(browser, "#resubmits", "1", 20)
        wait_for_text(browser, "#state", "running", 10)
        history = browser.find_element(By.ID, "history").text
        assert history.startswith("attempt 1 died: ") and "killed" in history, history
        assert not _shown(browser, "cause") and not _shown(browser, "error")
        held.release(0)
        wait_for_text(browser, "#state", "done", 10)
        assert not _shown(browser, "traceback-box") and not _shown(browser, "error")
        assert _shown(browser, "history")

        browser.get(f"{held.base}/job/1?token={held.token}")
        held.release(1)
        wait_for_text(browser, "#state", "failed", 10)
        wait_until(browser, lambda d: _shown(d, "traceback-box"), 10, "no traceback box")
        assert "raise ValueError" in browser.find_element(By.ID, "traceback").text
        assert _shown(browser, "error") and not _shown(browser, "history")


def test_a_queued_job_shows_why_it_waits_and_one_heartbeat_is_a_dot(
        browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By

    from tests.watching.test_status_page import NOTE, _queued_with_a_note

    _queued_with_a_note(monkeypatch)
    # Heartbeats every 30 s: each job sends one, at its end, with its last log lines.
    with HeldMap(tmp_path, count=2, processes=1, HEARTBEAT_FREQUENCY=30) as held:
        browser.get(held.url)
        wait_until(browser, lambda d: _state(d, 1) == "submitted" and d.find_element(
            By.CSS_SELECTOR, "#job-1 td.note").text == NOTE, 20, "no note on the queued job")
        assert browser.find_element(By.CSS_SELECTOR, "#job-0 td.note").text == ""
        browser.set_window_size(1400, 600)
        browser.save_screenshot(str(tmp_path / "queued.png"))
        held.release(0)
        wait_until(browser, lambda d: _state(d, 0) == "done", 20, "job 0 did not end")
        wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#job-1 td.note").text
                   == "", 20, "the note stayed on a job that no longer waits")

        browser.get(f"{held.base}/job/0?token={held.token}")
        wait_for_text(browser, "#state", "done", 10)
        assert not _shown(browser, "waiting")
        assert browser.find_element(By.ID, "log").text.splitlines()[-1] == "job 0 ends"
        wait_until(browser, _loaded("cpu-chart"), 10, "the chart did not load")
        browser.save_screenshot(str(tmp_path / "one-heartbeat.png"))
        status, svg = held.get("/api/job/0/memory.svg")
        assert status == 200 and b"<circle" in svg and b"1 heartbeat" in svg
