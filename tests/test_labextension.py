"""The JupyterLab extension (labextension/) in a real JupyterLab and headless Chromium.

The cell view, the badges and the Checkpoints sidebar read the store through the server, so a
kernel killed in the middle of a loop shows as interrupted, with the right counts, without running
anything, and again after a page reload of the notebook saved while the loop ran.

Chromium comes from the system packages (/usr/bin/chromium, `make browser`); nothing here downloads
a browser. The extension must be built (`make labextension`); the tests skip otherwise. Screenshots
go to build/screenshots/ (untracked; copy them into docs/ on purpose).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_helpers import (
    BROWSER_ARGS,
    CHROMIUM,
    MS,
    NOTEBOOK,
    SCREENSHOTS,
    TOTAL,
    Console,
    api_row,
    badge,
    built_extension,
    cell,
    dismiss_dialogs,
    extension_server,
    interrupted_line,
    kernel_ready,
    open_notebook,
    prepared_root,
    run_cells,
    set_theme,
    shot,
    writer_pid,
)
from jupyter_helpers import JupyterServer
from kernel_helpers import wait_until

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        built_extension() is None,
        reason="the JupyterLab extension is not built: run `make labextension` (needs node/npm)",
    ),
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[JupyterServer]:
    """JupyterLab with the extension over ``root/project/analysis.ipynb``, whose store already
    holds ``prep`` (done, from another kernel)."""
    root, home = tmp_path / "root", tmp_path / "home"
    prepared_root(root, home)
    server = extension_server(root, home, app="lab")
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
            os.kill(writer_pid(lab.root / "project" / ".nbresume", "train"), signal.SIGKILL)
            expected = interrupted_line(client)
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
