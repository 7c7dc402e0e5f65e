"""A real JupyterLab in headless Chromium runs notebooks/quickstart.ipynb: the progress widget renders.

Chromium comes from the system packages (/usr/bin/chromium); nothing here downloads a browser
(``playwright install`` is never run). A screenshot of the running widget is saved to
build/screenshots/widget.png (untracked; docs/widget.png in the README is a copy of one).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser_helpers import BROWSER_ARGS, CHROMIUM, KERNEL_VARS, MS, REPO, SCREENSHOTS
from jupyter_helpers import JupyterServer
from kernel_helpers import kernel_env, wait_until

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
# NB. never a tracked file: `make test` must leave `git status` clean; copy it to docs/ by hand
SCREENSHOT = SCREENSHOTS / "widget.png"

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM}"),
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[JupyterServer]:
    """JupyterLab serving a directory that holds a copy of the quickstart notebook."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    server = JupyterServer(root, home, app="lab")
    # kernels as in the kernel tests: their own IPYTHONDIR and signing key
    server.env.update({k: v for k, v in kernel_env(home).items() if k in KERNEL_VARS})
    server.env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "lab-settings")
    server.env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "lab-workspaces")
    # no "Would you like to get notified about official Jupyter news?" toast over the picture
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # this test is about the ipywidgets view (VS Code, Colab, a JupyterLab without our extension):
    # with the extension, its own renderer of the same bundle would take the widget's place
    labconfig = Path(server.env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"nbresume": True}})
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kernel_connected(server: JupyterServer) -> bool:
    """The notebook's kernel is up, idle, and the page is connected to it."""
    response = server.client().get("/api/kernels", token=True)
    return response.status == 200 and any(
        k["execution_state"] == "idle" and k["connections"] > 0 for k in response.json()
    )


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, again if the notebook was not ready to run the first time."""
    started = (  # some prompt shows [*] or an execution count
        "() => [...document.querySelectorAll('.jp-InputPrompt')]"
        ".some(p => /\\[[*0-9]/.test(p.innerText))"
    )
    for _ in range(5):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=15 * MS)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    pytest.fail("the notebook never started running its cells")


@pytest.mark.timeout(600)
def test_quickstart_shows_the_progress_widget_in_jupyterlab(lab: JupyterServer) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(120 * MS)
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            assert wait_until(lambda: kernel_connected(lab), 120, 0.5), "no kernel connected"
            run_all_cells(page)

            widget = page.locator(".nbresume-progress")
            bar = widget.locator(".widget-hprogress .progress-bar")
            bar.first.wait_for(state="visible")
            # let a few items finish, so the picture shows a moving bar with its numbers
            page.wait_for_function(
                "() => /[3-9]\\/20|1[0-9]\\/20/.test("
                "document.querySelector('.nbresume-progress')?.innerText ?? '')"
            )
            assert "Error displaying widget" not in page.inner_text(".jp-Notebook")
            text = widget.first.inner_text()
            assert "sweep" in text
            assert "running" in text
            assert "/20" in text
            assert "it/s" in text or "s/it" in text
            cell = page.locator(".jp-Cell").filter(has=page.locator(".nbresume-progress"))
            cell.first.scroll_into_view_if_needed()
            time.sleep(0.5)  # let the bar's CSS transition settle before the picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            cell.first.screenshot(path=str(SCREENSHOT))

            # at the end the widget gives way to its final HTML form: what a saved notebook shows
            done = page.locator(".nbresume-phase", has_text="20/20")
            done.first.wait_for(state="visible", timeout=180 * MS)
            page.wait_for_selector("text=/best: lr=/", timeout=180 * MS)
            assert page.locator(".nbresume-progress").count() == 0
            notebook = page.inner_text(".jp-Notebook")
            assert "Error displaying widget" not in notebook
            assert "sweep: done" in notebook or "done" in done.first.inner_text()
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 5_000
