"""The JupyterLab extension (labextension/) in a real JupyterLab and headless Chromium.

The cell view, the badges and the Checkpoints sidebar read the store through the server, so a
kernel killed in the middle of a loop shows as interrupted, with the right counts, without running
anything, and again after a page reload of the notebook saved while the loop ran.

Chromium comes from the system packages (/usr/bin/chromium, `make browser`); nothing here downloads
a browser. The extension must be built (`make labextension`); the tests skip otherwise. Screenshots
go to build/screenshots/ (untracked; copy them into docs/ on purpose).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_helpers import Client, JupyterServer
from kernel_helpers import Kernel, kernel_env, wait_until

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
BUILT = REPO / "labextension" / "dist"
INSTALLED = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "nbresume"
SCREENSHOTS = REPO / "build" / "screenshots"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KERNEL_VARS = ("IPYTHONDIR", "NBRESUME_KEY")
MS = 1000  # playwright counts in milliseconds
EXTENSION_URL = "/lab/extensions/nbresume/"  # where the page loads our scripts from


def _extension() -> Path | None:
    for path in (BUILT, INSTALLED):
        if (path / "package.json").is_file():
            return path
    return None


pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        _extension() is None,
        reason="the JupyterLab extension is not built: run `make labextension` (needs node/npm)",
    ),
]

NOTEBOOK = "analysis.ipynb"
TOTAL = 40
CELLS = [
    "%load_ext nbresume",
    "%%checkpoint prep\nx = 41 + 1\nprint(x)",
    "%%checkpoint bad\nraise ValueError('metric is NaN')",
    f"""%%checkpoint train --every 1
import time
results = []
for i in resumable(range({TOTAL}), desc="epochs"):
    time.sleep(0.3)
    results.append(i)
len(results)""",
]


def notebook_json(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[JupyterServer]:
    """JupyterLab with the extension over ``root/project/analysis.ipynb``, whose store already
    holds ``prep`` (done, from another kernel)."""
    root, home = tmp_path / "root", tmp_path / "home"
    project = root / "project"
    project.mkdir(parents=True)
    (project / NOTEBOOK).write_text(json.dumps(notebook_json(CELLS)))
    kernel = Kernel(project, home=home)
    try:
        kernel.start()
        kernel.run(CELLS[0])
        kernel.run(CELLS[1])
    finally:
        kernel.shutdown()

    server = JupyterServer(root, home, app="lab")
    server.env.update({k: v for k, v in kernel_env(home).items() if k in KERNEL_VARS})
    server.env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "lab-settings")
    server.env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "lab-workspaces")
    extension = _extension()
    assert extension is not None
    if extension == BUILT:  # the data dir comes first: this build, not an installed one
        target = Path(server.env["JUPYTER_DATA_DIR"]) / "labextensions" / "nbresume"
        target.parent.mkdir(parents=True)
        target.symlink_to(BUILT, target_is_directory=True)
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Console:
    """The page's console errors and uncaught exceptions; ``ours``: those from the extension."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.ours: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._pageerror)

    def _console(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        url = (message.location or {}).get("url", "")
        text = f"{message.type}: {message.text} ({url})"
        if message.type == "error":
            self.errors.append(text)
        if EXTENSION_URL in url or "nbresume" in message.text.lower():
            self.ours.append(text)

    def _pageerror(self, error: Any) -> None:
        text = f"{error}\n{getattr(error, 'stack', '')}"
        self.errors.append(text)
        if "nbresume" in text.lower():
            self.ours.append(text)


def api_row(client: Client, name: str) -> dict[str, Any]:
    path = "/nbresume/api/notebook?path=" + urllib.parse.quote(f"project/{NOTEBOOK}")
    response = client.get(path, token=True)
    assert response.status == 200, response
    rows = {row["name"]: row for row in response.json()["phases"]}
    return rows.get(name) or {}


def kernel_ready(server: JupyterServer) -> bool:
    response = server.client().get("/api/kernels", token=True)
    return response.status == 200 and any(
        k["execution_state"] == "idle" and k["connections"] > 0 for k in response.json()
    )


def open_notebook(page: Any, server: JupyterServer) -> None:
    page.goto(f"{server.url}/lab/tree/project/{NOTEBOOK}?token={server.token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    assert wait_until(lambda: kernel_ready(server), 120, 0.5), "no kernel connected"


WATCH_PROMPT = """i => {
    const prompt = document.querySelectorAll('.jp-Notebook .jp-Cell')[i]
        .querySelector('.jp-InputPrompt');
    window.__nbresumeRan = false;
    const seen = () => { if (prompt.innerText.includes('*')) window.__nbresumeRan = true; };
    new MutationObserver(seen).observe(prompt, {subtree: true, childList: true, characterData: true});
}"""
FINISHED = """i => window.__nbresumeRan && /\\[\\d+\\]/.test(
    document.querySelectorAll('.jp-Notebook .jp-Cell')[i].querySelector('.jp-InputPrompt').innerText)"""


def run_cells(page: Any, count: int) -> None:
    """Shift+Enter on the first ``count`` cells, each after the one before has finished (the
    kernel drops requests queued behind a failed cell), the last one left running."""
    page.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    for index in range(count):
        page.evaluate(WATCH_PROMPT, index)  # JupyterLab shows [*] as it sends the request
        page.keyboard.press("Shift+Enter")
        if index < count - 1:
            page.wait_for_function(FINISHED, arg=index)


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def badge(page: Any, name: str) -> Any:
    return page.locator(f'.jp-nbresume-badge[data-phase="{name}"]')


def shot(target: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    time.sleep(0.5)  # the bars' CSS transition
    target.screenshot(path=str(path))
    return path


def dismiss_dialogs(page: Any) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            dialog.first.locator("button.jp-mod-accept").first.click()
            return
        time.sleep(0.2)


def set_theme(server: JupyterServer, theme: str) -> None:
    settings = Path(server.env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))


@pytest.mark.timeout(600)
def test_a_killed_kernel_shows_interrupted_in_the_cell_badge_and_sidebar(
    lab: JupyterServer,
) -> None:
    from playwright.sync_api import sync_playwright

    client = lab.client()
    console = Console()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60 * MS)
            console.attach(page)
            open_notebook(page, lab)
            # before anything runs: the badges already know what the store has
            badge(page, "prep").wait_for()
            page.wait_for_function(
                "() => document.querySelector('.jp-nbresume-badge[data-phase=\"prep\"]')"
                "?.dataset.status === 'done'"
            )
            assert badge(page, "train").inner_text() == "not saved"

            run_cells(page, 4)
            view = cell(page, 3).locator('.jp-nbresume-cell[data-phase="train"]')
            view.wait_for()
            page.wait_for_selector('.jp-nbresume-cell[data-phase="train"][data-status="running"]')
            # the loop moves in the cell, read from the store (no widget involved)
            page.wait_for_function(
                "() => { const b = document.querySelector("
                "'.jp-nbresume-cell[data-phase=\"train\"] [role=progressbar]');"
                " return b && Number(b.getAttribute('aria-valuenow')) >= 8; }",
                timeout=60 * MS,
            )
            assert "/40" in view.inner_text()
            assert badge(page, "train").inner_text().startswith("running ")
            assert badge(page, "prep").inner_text() == "restored"
            assert badge(page, "bad").inner_text() == "failed"
            assert "metric is NaN" in cell(page, 2).inner_text()
            shot(cell(page, 3), "cell-running.png")

            # save the notebook while the loop runs: its saved output is the "running" bundle
            page.keyboard.press("Control+s")
            wait_until(lambda: "train" in (lab.root / "project" / NOTEBOOK).read_text(), 10)
            assert wait_until(
                lambda: "vnd.nbresume.phase" in (lab.root / "project" / NOTEBOOK).read_text(), 20
            ), "the saved notebook has no phase view"

            # SIGKILL the kernel (as the OOM killer would); nothing is executed after this
            os.kill(_writer_pid(lab.root / "project" / ".nbresume", "train"), signal.SIGKILL)
            expected = _interrupted_line(client)
            saved_before = api_row(client, "train")["saved"]
            page.wait_for_function(
                "(text) => document.querySelector("
                "'.jp-nbresume-cell[data-phase=\"train\"]')?.innerText.includes(text)",
                arg=expected,
                timeout=20 * MS,
            )
            assert badge(page, "train").inner_text().startswith("interrupted ")
            assert expected in badge(page, "train").get_attribute("title")
            shot(cell(page, 3), "cell-interrupted.png")

            dismiss_dialogs(page)  # "The kernel appears to have died. It will restart..."

            # the sidebar: every phase of the notebook with its status
            page.locator('.lm-TabBar-tab[title="Checkpoints"]').click()
            rows = page.locator("#jp-nbresume-checkpoints .jp-nbresume-row")
            page.wait_for_selector('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="train"]')
            statuses = {
                rows.nth(i).get_attribute("data-name"): rows.nth(i).get_attribute("data-status")
                for i in range(rows.count())
            }
            assert statuses == {"prep": "restored", "bad": "failed", "train": "interrupted"}
            train_row = page.locator('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="train"]')
            assert expected in train_row.inner_text()
            shot(page, "lab-interrupted.png")

            # reload, in the dark theme: the saved "running" output shows the store's truth
            set_theme(lab, "JupyterLab Dark")
            page.reload()
            page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            page.wait_for_function(
                "(text) => document.querySelector("
                "'.jp-nbresume-cell[data-phase=\"train\"]')?.innerText.includes(text)",
                arg=expected,
                timeout=20 * MS,
            )
            text = page.inner_text(".jp-Notebook")
            assert "Error displaying widget" not in text
            assert "model not found" not in text
            assert "Loading widget" not in text
            # the sidebar was open: it is open again, with the same rows
            page.wait_for_selector('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="bad"]')
            assert "interrupted" in page.inner_text(
                '#jp-nbresume-checkpoints .jp-nbresume-row[data-name="train"]'
            )
            dismiss_dialogs(page)
            shot(page, "lab-dark.png")

            # run the cells again in the restarted kernel: the loop resumes and finishes
            assert wait_until(lambda: kernel_ready(lab), 120, 0.5), "no kernel after the restart"
            run_cells(page, 4)
            page.wait_for_selector(
                '.jp-nbresume-cell[data-phase="train"][data-status="done"]', timeout=120 * MS
            )
            result = cell(page, 3).locator(".jp-OutputArea-executeResult")
            result.wait_for()
            assert result.inner_text().split()[-1] == str(TOTAL)  # after the "[4]:" prompt
            row = api_row(client, "train")
            assert row["status"] == "done"
            assert row["progress"]["skipped"] >= saved_before, row  # resumed, not restarted
            assert badge(page, "train").inner_text() == "done"

            # an edited checkpoint cell is stale until it runs again
            editor = cell(page, 1).locator(".jp-InputArea-editor")
            editor.click()
            page.keyboard.press("Control+End")
            page.keyboard.type("\ny = x * 2")
            page.wait_for_function(
                "() => document.querySelector('.jp-nbresume-badge[data-phase=\"prep\"]')"
                "?.dataset.status === 'stale'"
            )
            assert "changed since" in badge(page, "prep").get_attribute("title")

            # saved, closed and reopened: the views come from the store, no widget errors
            page.keyboard.press("Escape")
            page.keyboard.press("Control+s")
            time.sleep(1)
            page.goto(f"{lab.url}/lab/tree/project/{NOTEBOOK}?token={lab.token}")
            page.wait_for_selector('.jp-nbresume-cell[data-phase="train"][data-status="done"]')
            page.wait_for_selector('.jp-nbresume-badge[data-phase="bad"][data-status="failed"]')
            text = page.inner_text(".jp-Notebook")
            assert "Error displaying widget" not in text
            assert "model not found" not in text
        except BaseException:
            shot(page, "failure.png")  # what the page showed: for whoever reads the failure
            raise
        finally:
            browser.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # every console error, ours or not, to look at
    (SCREENSHOTS / "console.txt").write_text("\n".join(console.errors))
    assert not console.ours, "\n".join(console.ours)


def _writer_pid(store: Path, name: str) -> int:
    from nbresume._store import StoreReader

    with StoreReader(store) as reader:
        progress = reader.get_json(f"progress:{name}")
    assert isinstance(progress, dict), progress
    return int(progress["pid"])


def _interrupted_line(client: Client) -> str:
    """What the cell must say once the server sees the kernel dead (from the store's records)."""
    row: dict[str, Any] = {}

    def dead() -> bool:
        row.update(api_row(client, "train"))
        return row.get("status") == "interrupted"

    assert wait_until(dead, 20, 0.2), row
    done, saved = row["progress"]["done"], row["saved"]
    assert 8 <= done < TOTAL, row
    assert saved is not None, row
    assert 1 <= saved <= done, row
    return f"interrupted at {done}/{TOTAL} · {saved} items saved · re-run the cell to resume"
