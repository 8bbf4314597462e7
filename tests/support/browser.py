"""Debian's headless Chromium driven by selenium, with a test double for ``navigator.getGamepads``.

The browser is the system one (``/usr/bin/chromium``) and so is its driver
(``/usr/bin/chromedriver``): selenium is given both paths, so Selenium Manager
never runs and nothing is downloaded. Each :class:`Browser` has a fresh
profile directory and the flags in :data:`FLAGS` (no network of its own: no
component updates, sync, QUIC or background requests).

The one boundary that cannot be real here is the gamepad. :data:`GAMEPAD_DOUBLE`
is installed in every new document before the page's scripts
(``Page.addScriptToEvaluateOnNewDocument``); it replaces ``getGamepads`` with
one pad the test drives through ``window.__pad`` (``set``, ``plug``, ``unplug``),
whose ``vibrationActuator`` records every effect the page plays, and which
stamps each change (``performance.timeOrigin + performance.now()``, ms) for the
benchmark.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSECURE_HOST = "coplay-insecure.test"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--window-size=520,900",
    # a name that is not localhost, for the page's "not a secure context" sentence
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
)

# Standard mapping: 17 buttons (6 and 7 are the analog triggers), 4 axes.
GAMEPAD_DOUBLE = (Path(__file__).parent / "gamepad_double.js").read_text()


def have_chromium() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@dataclass
class Tab:
    """One page in the browser, opened with the gamepad double installed."""

    browser: Browser
    handle: str

    def js(self, script: str, *args: Any) -> Any:
        self.browser.focus(self)
        return self.browser.driver.execute_script(script, *args)

    def status(self) -> dict[str, Any]:
        found = self.js("return window.coplayStatus ? window.coplayStatus() : null")
        return found or {}

    def text(self, element_id: str) -> str:
        return str(self.js("return document.getElementById(arguments[0]).textContent", element_id))

    def wait(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0, what: str = ""
    ) -> dict[str, Any]:
        """Poll the page's status snapshot until ``predicate`` holds (the page has no event
        a test process can block on; each poll is one round trip to the browser)."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while not predicate(status):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never got {what or 'there'}: {status}")
            time.sleep(0.02)
            status = self.status()
        return status

    def pad(
        self, pressed: tuple[int, ...] = (), axes: list[float] | None = None, **values: float
    ) -> None:
        """Set the pad double: standard button indices held, axes, analog buttons (``b7=1.0``)."""
        self.js(
            "window.__pad.set(arguments[0], arguments[1], arguments[2])",
            list(pressed),
            axes or [0, 0, 0, 0],
            {k.lstrip("b"): v for k, v in values.items()},
        )

    def cdp(self, command: str, params: dict[str, Any] | None = None) -> Any:
        self.browser.focus(self)
        return self.browser.driver.execute_cdp_cmd(command, params or {})

    def screenshot(self, path: Path) -> None:
        self.browser.focus(self)
        shot = self.browser.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.browser.close_tab(self)


class Browser:
    """One headless Chromium with a fresh profile; ``tab(url)`` opens pages in it."""

    def __init__(self, workdir: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        profile = workdir / "profile"
        shutil.rmtree(profile, ignore_errors=True)
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(  # SEVERE only: its INFO lines echo every URL, join links included
            executable_path=str(CHROMEDRIVER),
            service_args=["--log-level=SEVERE"],
            log_output=str(workdir / "chromedriver.log"),
        )
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_script_timeout(10)
        self.home = self.driver.current_window_handle
        self._current = self.home

    def focus(self, tab: Tab) -> None:
        if self._current != tab.handle:
            self.driver.switch_to.window(tab.handle)
            self._current = tab.handle

    def tab(self, url: str, before: str = "") -> Tab:
        """A new tab with the gamepad double (and ``before``, a script run first) at ``url``."""
        self.driver.switch_to.new_window("tab")
        tab = Tab(self, self.driver.current_window_handle)
        self._current = tab.handle
        self.driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": GAMEPAD_DOUBLE + before}
        )
        self.driver.get(url)
        return tab

    def close_tab(self, tab: Tab) -> None:
        if tab.handle in self.driver.window_handles:
            self.focus(tab)
            self.driver.close()
        self.driver.switch_to.window(self.home)
        self._current = self.home

    def console(self) -> list[str]:
        """The browser's console messages since the last call (for failure reports)."""
        return [json.dumps(x) for x in self.driver.get_log("browser")]

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="module", name="browser")
def browser_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for the test module (a tab per test keeps them apart)."""
    if not have_chromium():
        pytest.fail("needs Debian's chromium and chromium-driver: tests/ensure-system-deps test")
    made = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield made
    finally:
        made.quit()
