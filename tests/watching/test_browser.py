"""The browser harness works: a page on localhost polls JSON and shows changes live."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast

import pytest

from tests.support.browser import wait_for_text

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

# The page polls ?src= (default /state) every 200 ms: the value goes into #value, a
# refusal's status into #status.
PAGE = b"""<!doctype html>
<title>harness</title>
<table><tr><td id="value"></td><td id="status"></td></tr></table>
<script>
const source = new URLSearchParams(location.search).get("src") || "/state";
async function poll() {
  try {
    const response = await fetch(source, {cache: "no-store"});
    if (response.ok) {
      document.getElementById("value").textContent = (await response.json()).value;
    } else {
      document.getElementById("status").textContent =
        `${response.status} ${response.statusText}`;
    }
  } catch (error) {
    document.getElementById("status").textContent = String(error);
  }
  setTimeout(poll, 200);
}
poll();
</script>
"""


class StatusServer(ThreadingHTTPServer):
    """Serves PAGE, the JSON ``{"value": value}`` at /state, and 403 at /forbidden."""

    daemon_threads = True  # a poll in flight must not hold up the shutdown
    value = "queued"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(PAGE, "text/html")
        elif path == "/state":
            value = cast(StatusServer, self.server).value
            self._reply(json.dumps({"value": value}).encode(), "application/json")
        else:
            self.send_error(403)

    def _reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # five requests a second would flood the test output


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    server = StatusServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_page_shows_a_changed_value_live(browser: WebDriver,
                                         status_server: StatusServer) -> None:
    browser.get(status_server.url + "/")
    wait_for_text(browser, "#value", "queued")
    status_server.value = "running"
    wait_for_text(browser, "#value", "running", timeout=3)


def test_page_sees_a_refused_request(browser: WebDriver,
                                     status_server: StatusServer) -> None:
    browser.get(status_server.url + "/?src=/forbidden")
    wait_for_text(browser, "#status", "403 Forbidden")
    # "css selector" is By.CSS_SELECTOR: selenium is imported only by the fixture, so
    # this module is collected (and skipped) where selenium is missing.
    assert browser.find_element("css selector", "#value").text == ""
