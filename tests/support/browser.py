"""Browser-test harness: a headless Chromium driven by selenium, and a wait helper.

The fixture ``browser`` (registered in tests/conftest.py) yields a Chrome WebDriver on
Debian's Chromium and ChromeDriver, which scripts/browser/install.sh installs. Both paths
are given explicitly, so selenium never runs Selenium Manager, which would try to
download a browser or driver (nothing but package registries is reachable here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

from tests.support.needs import unavailable

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = ("install them as root with scripts/browser/install.sh (apt-get install "
                "chromium chromium-driver)")
# Headless as root, on a machine whose network is closed: without the
# background-networking flags Chromium keeps opening connections that are refused.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
# A page that never finishes loading must fail the test, not hold it for selenium's
# default of 300 s.
PAGE_LOAD_TIMEOUT = 30.0

T = TypeVar("T")


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} missing; {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed; install it with pip install -e '.[dev]'"
    return None


def _browser_missing(reason: str) -> NoReturn:
    unavailable("the test browser", reason, "install it")


def _end_leftovers(profile: str) -> None:
    """End Chromium processes of this profile that quit() left (a crashed driver).

    Every Chromium process but the crash handler carries the profile on its command
    line; the crash handler ends by itself once the browser is gone.
    """
    import psutil

    mark = f"--user-data-dir={profile}"
    leftovers = []
    for process in psutil.process_iter(["cmdline"]):
        if mark in (process.info["cmdline"] or []):
            leftovers.append(process)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    psutil.wait_procs(leftovers, timeout=5)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A fresh headless Chromium, quit after the test.

    Function-scoped: it starts in about 0.5 s, cheap enough for a clean browser per
    test, so that no page, cookie or timer of one test reaches the next.
    """
    problem = browser_problem()
    if problem:
        _browser_missing(problem)
    # Imported here: conftest imports this module, and the rest of the suite must run
    # where selenium is not installed.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # A new empty profile per browser: nothing carries over from another test.
    profile = tempfile.mkdtemp(prefix="gridmap-chromium-")
    try:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER),
                                  options=options)
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
            yield driver
        finally:
            driver.quit()
    finally:
        _end_leftovers(profile)
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 5.0,
               message: str = "") -> T:
    """The first truthy value of ``condition(driver)``, polled every 0.1 s.

    Raises selenium's TimeoutException with ``message`` after ``timeout`` seconds.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    result: T = WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)
    return result


def wait_for_text(driver: WebDriver, selector: str, expected: str,
                  timeout: float = 5.0) -> None:
    """Wait until the element at CSS ``selector`` shows exactly ``expected``.

    On timeout the assertion names the text last seen, which says more than a bare
    timeout (was the page stuck on an old value, or showing an error?).
    """
    from selenium.common.exceptions import NoSuchElementException, TimeoutException
    from selenium.webdriver.common.by import By

    seen: list[str] = []

    def shows_expected(page: WebDriver) -> bool:
        try:
            text: str = page.find_element(By.CSS_SELECTOR, selector).text
        except NoSuchElementException:
            text = "<no such element>"
        seen.append(text)
        return text == expected

    try:
        wait_until(driver, shows_expected, timeout)
    except TimeoutException:
        last = seen[-1] if seen else "<nothing>"
        raise AssertionError(f"{selector} did not show {expected!r} within {timeout} s; "
                             f"last seen: {last!r}") from None
