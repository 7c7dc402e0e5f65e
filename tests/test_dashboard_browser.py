"""The dashboard in a real headless Chromium: rows, live progress of a kernel's loop, clear.

Uses Debian's Chromium (``apt-get install chromium``; ``make browser`` does it as root) through
playwright with ``executable_path``: nothing here downloads a browser. Saves
build/screenshots/dashboard.png (untracked; docs/dashboard.png, on the docs page of the dashboard,
is a copy of one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_helpers import BROWSER_ARGS, CHROMIUM, SCREENSHOTS
from jupyter_helpers import JupyterServer
from kernel_helpers import Kernel
from nbresume._store import StoreReader
from nbresume.server._dashboard import owner

SCREENSHOT = SCREENSHOTS / "dashboard.png"

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
        "(`make browser`); these tests never download a browser",
    ),
]

PHASES = {
    "load": "%%checkpoint load\ndata = list(range(1000))\nprint(len(data))",
    "features": "%%checkpoint features\nfeats = [d * 2 for d in data]",
    "evaluate": "%%checkpoint evaluate\nraise ValueError('metric is NaN')",
    "diverge": (
        "%%checkpoint diverge\nfor step in resumable(range(10), desc='steps'):\n"
        "    if step == 4:\n        raise FloatingPointError('loss is NaN')"
    ),
}
REPORT = "%%checkpoint summary\nsummary = sum(data)"
TRAIN = """\
%%checkpoint train --every 2s
import time
losses = []
for epoch in resumable(range(60), desc="epochs"):
    time.sleep(0.25)
    losses.append(1 / (epoch + 1))
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[JupyterServer, Kernel]]:
    """A server over two notebook folders; a kernel in ``project/`` running TRAIN."""
    root = tmp_path / "work"
    kernel = Kernel(root / "project", home=tmp_path / "home")
    server = JupyterServer(root, tmp_path / "jupyter")
    try:
        kernel.start()
        kernel.run("%load_ext nbresume")
        for code in PHASES.values():
            kernel.execute(code)
        kernel.run(PHASES["load"] + "  # edited")  # a second version of 'load'
        kernel.run(f"%checkpoint dir {root / 'reports' / '.nbresume'}")
        kernel.run(REPORT)
        kernel.run(f"%checkpoint dir {root / 'project' / '.nbresume'}")
        server.start()
        yield server, kernel
    finally:
        try:
            kernel.shutdown()
        finally:
            server.stop()


@pytest.fixture
def errors() -> list[str]:
    """Uncaught exceptions and console errors of the page; a test ends asserting there are none."""
    return []


@pytest.fixture
def page(lab: tuple[JupyterServer, Kernel], errors: list[str]) -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 560})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: _console(msg, errors))
            yield page
        finally:
            browser.close()


def _console(message: Any, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def row(name: str) -> str:
    return f'tr[data-store="project/.nbresume"][data-name="{name}"]'


def test_the_dashboard_shows_live_progress_and_clears_a_phase(
    lab: tuple[JupyterServer, Kernel], page: Any, errors: list[str]
) -> None:
    server, kernel = lab
    request = kernel.submit(TRAIN)
    page.goto(f"{server.url}/nbresume/?token={server.token}")

    # every phase of both notebook folders, with its status
    page.wait_for_selector(row("load"), timeout=15_000)
    assert page.text_content(f"{row('load')} .status") == "done"
    assert page.text_content(f"{row('evaluate')} .status") == "failed"
    summary = 'tr[data-store="reports/.nbresume"][data-name="summary"] .status'
    assert page.text_content(summary) == "done"

    # the running loop: its bar moves without a reload
    bar = f"{row('train')} [role=progressbar]"
    page.wait_for_selector(f"{row('train')}.running [role=progressbar]", timeout=20_000)
    first = int(page.get_attribute(bar, "aria-valuenow"))
    page.wait_for_function(
        "([sel, n]) => Number(document.querySelector(sel).getAttribute('aria-valuenow')) > n",
        arg=[bar, first],
        timeout=10_000,
    )
    assert page.get_attribute(bar, "aria-valuemax") == "60"
    text = page.text_content(f"{row('train')} .progress-text")
    assert "/60" in text
    assert "ETA" in text
    assert page.is_disabled(f"{row('train')} button.clear")  # running: interrupt it first
    page.wait_for_function(
        "sel => document.querySelector(sel).textContent.endsWith('ago')",
        arg=f"{row('train')} td.snapshot",
        timeout=10_000,
    )
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # clear asks first: dismissed, nothing happens; accepted, the row goes
    dialogs: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click(f"{row('features')} button.clear")
    page.click("#refresh")
    page.wait_for_timeout(500)
    assert page.is_visible(row("features"))
    page.once("dialog", lambda d: answer(d, True))
    page.click(f"{row('features')} button.clear")
    page.wait_for_selector(row("features"), state="detached", timeout=10_000)
    assert len(dialogs) == 2
    assert "features" in dialogs[0]
    with StoreReader(server.root / "project" / ".nbresume") as reader:
        assert not [r.key for r in reader.rows() if owner(r.key) == ("phase", "features")]
        assert reader.get_json("phase:load") is not None

    # the loop finishes: the page says so by itself
    reply = kernel.kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == request
    assert reply["content"]["status"] == "ok"
    page.wait_for_selector(f"{row('train')}.done", timeout=10_000)
    assert page.text_content(f"{row('train')} .progress-text").startswith("60/60")
    assert errors == []


def test_the_dashboard_without_a_login_goes_to_jupyters_login_page(
    lab: tuple[JupyterServer, Kernel], page: Any, errors: list[str]
) -> None:
    server, _ = lab
    page.goto(f"{server.url}/nbresume/")
    assert "/login" in page.url
    page.fill("input[name=password]", server.token)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector(row("load"), timeout=15_000)
    assert page.url.endswith("/nbresume/")
    assert errors == []


def test_the_dashboard_fits_700_px_and_follows_a_dark_color_scheme(
    lab: tuple[JupyterServer, Kernel], page: Any, errors: list[str]
) -> None:
    server, _ = lab
    page.set_viewport_size({"width": 700, "height": 700})
    page.emulate_media(color_scheme="dark")
    page.goto(f"{server.url}/nbresume/?token={server.token}")
    page.wait_for_selector(row("evaluate"), timeout=15_000)
    # every Clear button is inside the window, and no column header overflows into the next
    for box in [b.bounding_box() for b in page.query_selector_all("button.clear")]:
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 700, box
    overflowing = page.evaluate(
        "() => [...document.querySelectorAll('th')].filter(th => th.offsetParent"
        " && th.scrollWidth > th.clientWidth + 1).map(th => th.textContent)"
    )
    assert overflowing == []
    background = page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
    assert sum(channels) < 150, background  # dark
    bad = page.evaluate(
        f"() => getComputedStyle(document.querySelector('{row('evaluate')} .status')).color"
    )
    red, green, blue = (int(c) for c in bad[bad.index("(") + 1 : -1].split(",")[:3])
    assert red > 200, bad  # failed is red
    assert max(green, blue) < 120, bad
    # a loop that failed: its bar is red too, as in the notebook
    fill = page.evaluate(
        f"() => getComputedStyle(document.querySelector('{row('diverge')} .bar > div'))"
        ".backgroundColor"
    )
    assert fill == bad, (fill, bad)
    assert page.text_content(f"{row('diverge')} .progress-text").startswith("4/10")
    # the kept versions of a phase, each with the command that brings it back, stay open
    history = f"{row('load')} details.history"
    assert page.text_content(f"{history} summary") == "2 versions"
    assert page.query_selector(f"{row('features')} details.history") is None  # one version
    page.click(f"{history} summary")
    current, older = page.query_selector_all(f"{history} li")
    assert "#1 current" in current.text_content()
    assert "source changed" in current.text_content()
    assert current.query_selector("code") is None
    assert older.text_content().startswith("#2 · ")
    assert older.text_content().endswith("%checkpoint rollback load 2")
    shown = page.query_selector(history)
    page.wait_for_function("node => !node.isConnected", arg=shown, timeout=10_000)  # refreshed
    assert page.evaluate(f"() => document.querySelector('{history}').open")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-700-dark.png"), full_page=True)
    assert errors == []
