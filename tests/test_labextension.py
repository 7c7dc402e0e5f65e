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
from collections.abc import Iterator

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
    fits,
    interrupted_line,
    kernel_ready,
    notebook_json,
    open_notebook,
    prepared_root,
    run_cells,
    set_theme,
    shot,
    stop_kernels,
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab with the extension over ``root/project/analysis.ipynb``, whose store already
    holds ``prep`` (done, from another kernel); one for the module."""
    base = tmp_path_factory.mktemp("lab")
    root, home = base / "root", base / "home"
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

            # History: each kept version (when, how long, why) and its exact rollback command
            prep_row = page.locator('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="prep"]')
            prep_row.locator(".jp-nbresume-action-history").click()
            history = prep_row.locator(".jp-nbresume-row-history")
            history.wait_for()
            versions = api_row(client, "prep").get("history")
            if versions is None:  # the API lists no versions (yet): the count and the commands
                assert "1 saved version; %checkpoint history prep" in history.inner_text()
            else:
                assert history.locator(".jp-nbresume-version").count() == len(versions)
                assert "first run" in history.inner_text(), versions
            assert "%checkpoint rollback prep N" in history.inner_text()
            shot(page.locator("#jp-nbresume-checkpoints"), "lab-sidebar-history.png")
            # the sidebar redraws its rows at each poll: the open history stays open
            page.evaluate(
                "() => { document.querySelector('#jp-nbresume-checkpoints .jp-nbresume-rows')"
                ".dataset.old = '1'; }"
            )
            page.wait_for_selector("#jp-nbresume-checkpoints .jp-nbresume-rows:not([data-old])")
            assert history.is_visible()
            assert page.evaluate(  # and the button clicked keeps the keyboard focus
                "() => document.activeElement.matches("
                "'.jp-nbresume-row[data-name=\"prep\"] .jp-nbresume-action-history')"
            )

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
            if "resumes" in row:  # the API's count, said as such (never summed here)
                assert row["resumes"] == 1, row
                assert "(resumed once)" in badge(page, "train").get_attribute("title")

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
            saved = lab.root / "project" / NOTEBOOK
            assert wait_until(lambda: "y = x * 2" in saved.read_text(), 20), "not saved"
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


RESTART_FOLDER, RESTART_NOTEBOOK = "other", "restart.ipynb"
RESTART_CELLS = [
    "%load_ext nbresume",
    f"""%%checkpoint longrun --every 1
import time
out = []
for i in resumable(range({TOTAL}), desc="items"):
    time.sleep(0.3)
    out.append(i)
len(out)""",
]


@pytest.mark.timeout(600)
def test_a_restart_from_the_kernel_menu_shows_interrupted_without_console_errors(
    lab: JupyterServer,
) -> None:
    from playwright.sync_api import sync_playwright

    folder = lab.root / RESTART_FOLDER
    folder.mkdir()
    (folder / RESTART_NOTEBOOK).write_text(json.dumps(notebook_json(RESTART_CELLS)))
    notebook = f"{RESTART_FOLDER}/{RESTART_NOTEBOOK}"
    stop_kernels(lab)  # kernel_ready() must see this notebook's kernel
    client = lab.client()
    console = Console()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60 * MS)
            console.attach(page)
            # a workspace of its own: the module's other notebook is not opened again
            open_notebook(
                page,
                lab,
                route="lab/workspaces/restart/tree",
                notebook=RESTART_NOTEBOOK,
                folder=RESTART_FOLDER,
            )
            run_cells(page, 2)
            page.wait_for_function(
                "() => { const b = document.querySelector("
                "'.jp-nbresume-cell[data-phase=\"longrun\"] [role=progressbar]');"
                " return b && Number(b.getAttribute('aria-valuenow')) >= 8; }",
                timeout=60 * MS,
            )

            # Kernel > Restart Kernel…, as a user does it (not a SIGKILL)
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
            page.locator(".jp-Dialog button.jp-mod-accept").click()
            expected = interrupted_line(client, "longrun", notebook)
            page.wait_for_function(
                "(text) => document.querySelector("
                "'.jp-nbresume-cell[data-phase=\"longrun\"]')?.innerText.includes(text)",
                arg=expected,
                timeout=20 * MS,
            )
            assert badge(page, "longrun").get_attribute("data-status") == "interrupted"
            assert wait_until(lambda: kernel_ready(lab), 120, 0.5), "no kernel after the restart"

            # 700 px wide with the sidebar open: nothing cut off
            page.set_viewport_size({"width": 700, "height": 900})
            page.locator('.lm-TabBar-tab[title="Checkpoints"]').click()
            row = page.locator('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="longrun"]')
            row.wait_for()
            assert fits(page, "#jp-nbresume-checkpoints .jp-nbresume-row-actions button")
            view = '.jp-nbresume-cell[data-phase="longrun"]'
            assert fits(page, f"{view} .jp-nbresume-loop-stats"), "the loop's counts are cut off"
            assert page.evaluate(  # the note wraps rather than hiding what to do
                "s => { const e = document.querySelector(s); return e.scrollWidth <= e.clientWidth; }",
                f"{view} .jp-nbresume-cell-note",
            )
            # the loop stopped with its phase: its bar says interrupted too, never failed-red
            assert "jp-nbresume-status-interrupted" in page.locator(
                f"{view} .jp-nbresume-loop .jp-nbresume-bar"
            ).get_attribute("class")
            shot(page, "lab-700.png")

            # mark pending from the sidebar: the views say what the store says now
            row.locator(".jp-nbresume-action-pending").click()
            assert wait_until(
                lambda: api_row(client, "longrun", notebook)["status"] != "interrupted", 10
            )
            status = api_row(client, "longrun", notebook)["status"]
            page.wait_for_selector(
                f'.jp-nbresume-badge[data-phase="longrun"][data-status="{status}"]',
                timeout=10 * MS,
            )
            page.wait_for_selector(
                f'#jp-nbresume-checkpoints .jp-nbresume-row[data-name="longrun"][data-status="{status}"]',
                timeout=10 * MS,
            )
            assert status == "pending", status
            page.wait_for_selector('.jp-nbresume-cell[data-phase="longrun"][data-status="pending"]')
            assert "marked to run again" in page.inner_text(
                '.jp-nbresume-cell[data-phase="longrun"] .jp-nbresume-cell-note'
            )
            shot(page, "lab-pending.png")
        except BaseException:
            shot(page, "restart-failure.png")
            raise
        finally:
            browser.close()
    assert not console.ours, "\n".join(console.ours)
    comm = [e for e in console.errors if "Comm not found" in e]
    # NB. the kernel closes its widgets at a phase's end, but not once it answered a shutdown
    assert not comm, f"{len(comm)} 'Comm not found' console errors after a restart: {comm[0]}"
