"""A headless Chromium driven over the Chrome DevTools protocol, to render the Snakemake report as a
reader sees it (tests/test_iterations.py) and to take its screenshot for the docs:

    python -m bicross.browser report.html docs/report.png --category Training --view loss-cross.png

The protocol runs over a pipe (``--remote-debugging-pipe``: commands on the browser's fd 3, answers and
events on its fd 4, each message JSON ended by a NUL byte), so no websocket library is needed.

    with Browser() as browser:
        page = browser.open(Path("report.html").resolve().as_uri())
        page.evaluate("document.title")
        page.screenshot("report.png")
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's package installs `chromium`), or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium process; `open` a page in it."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 900, timeout: float = 60):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)})")
        self.size = (width, height)
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="bicross-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def pipes_at_3_and_4():  # in the child: the protocol's fixed descriptors
            # via copies above 4 first: either end may itself be 3 or 4 (dup2 onto itself would neither
            # move it nor make it inheritable)
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            while min(read_end, write_end) <= 4:
                read_end, write_end = os.dup(read_end), os.dup(write_end)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        cmd = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "--no-first-run",
               "--hide-scrollbars", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, close_fds=False, preexec_fn=pipes_at_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- the protocol ---------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its answer (events that come first are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                raise BrowserError(f"Chromium closed the protocol pipe (exit {self.process.poll()}): {stderr}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> Page:
        """A new tab showing `url`, once its document has loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False})
        page.send("Page.navigate", {"url": url})
        page.wait_for("document.readyState === 'complete'")
        return page


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); a thrown error raises."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]!r}: {detail.get('exception', {}).get('description', detail)}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float | None = None) -> Any:
        """Poll a JavaScript condition until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        while True:
            value = self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {condition!r}")
            time.sleep(0.1)

    def texts(self) -> list[str]:
        """Every text node of the rendered page, frames included (an iframe's document is another origin
        for the page's own scripts, not for the protocol)."""
        root = self.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
        found, stack = [], [root]
        while stack:
            node = stack.pop()
            if node.get("nodeType") == 3 and node.get("nodeValue", "").strip():
                found.append(node["nodeValue"].strip())
            stack.extend(reversed(node.get("children", [])))
            if "contentDocument" in node:
                stack.append(node["contentDocument"])
            stack.extend(node.get("shadowRoots", []))
        return found

    def wait_for_texts(self, done, timeout: float | None = None) -> list[str]:
        """Poll `texts` until ``done(texts)`` holds (content rendered by scripts, a frame loading)."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        while True:
            found = self.texts()
            if done(found):
                return found
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for the page's text; it shows {found[:40]}")
            time.sleep(0.2)

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


class SnakemakeReport:
    """Snakemake 9's HTML report (a React app) clicked through as a reader would: the menu's result
    categories, a category's table of results, a result's view button (its "eye")."""

    _CLICK_MENU = """(() => {{ const a = [...document.querySelectorAll('nav a')]
        .find(a => a.innerText.trim() === {0}); if (!a) return false; a.click(); return true; }})()"""
    _HOME = "(() => { const home = document.querySelector('nav ol li a'); if (home) home.click(); return true; })()"
    _ROWS = "[...document.querySelectorAll('tbody tr')].map(r => r.cells[0].innerText.trim())"
    _VIEW = """(() => {{ const row = [...document.querySelectorAll('tbody tr')]
        .find(r => r.cells[0].innerText.trim().endsWith({0}));
        const eye = row && row.querySelector('a[iconname="eye"]'); if (!eye) return false; eye.click(); return true; }})()"""
    _IMAGE = """(() => {{ const img = [...document.querySelectorAll('img')].find(i => i.src.includes({0}));
        return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null; }})()"""
    _FRAME = "(() => { const f = document.querySelector('iframe'); return !!f && f.src.startsWith('data:text/html'); })()"

    def __init__(self, browser: Browser, report: str | os.PathLike):
        if not Path(report).is_file():
            raise BrowserError(f"{report}: no such report (snakemake --report {report} builds it)")
        self.page = browser.open(Path(report).resolve().as_uri())
        self.page.wait_for("document.querySelector('nav a') !== null")

    def open_category(self, name: str) -> list[str]:
        """Show a result category (from wherever the reader is); the results it lists."""
        self.page.evaluate(self._HOME)  # the breadcrumbs' home: back to the menu
        self.page.wait_for(self._CLICK_MENU.format(json.dumps(name)))
        return self.page.wait_for(f"{self._ROWS}.length && {self._ROWS}")

    def view(self, name: str) -> None:
        """Press the view button of the listed result whose path ends with `name`."""
        if not self.page.evaluate(self._VIEW.format(json.dumps(name))):
            raise BrowserError(f"no result {name!r} with a view button in {self.page.evaluate(self._ROWS)}")

    def shown_image(self, name: str) -> tuple[int, int]:
        """The decoded size of the shown image `name` (a PNG result), once it has loaded."""
        return tuple(self.page.wait_for(self._IMAGE.format(json.dumps(f"filename={name}"))))

    def shown_texts(self, expected: str) -> list[str]:
        """The page's texts once an HTML result is shown in its frame and holds `expected`."""
        self.page.wait_for(self._FRAME)
        return self.page.wait_for_texts(lambda found: expected in found)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bicross.browser", description="screenshot a Snakemake report")
    parser.add_argument("report", help="the report's HTML file (snakemake --report report.html)")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--category", help="a result category to open (as the report's menu names it)")
    parser.add_argument("--view", help="a result of that category to show (the end of its path)")
    parser.add_argument("--size", default="1400x900", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with Browser(width=width, height=height) as browser:
        report = SnakemakeReport(browser, args.report)
        if args.category:
            report.open_category(args.category)
        if args.view:
            report.view(args.view)
            if args.view.endswith((".png", ".svg", ".jpg")):
                report.shown_image(args.view)
        time.sleep(0.5)  # the last layout and paint
        report.page.screenshot(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
