"""What a JupyterLab user does to checkpoint cells, and what their badges must say then.

The badge of a checkpoint cell reads its phase from the store, and which phase from the cell: the
``%%checkpoint`` line as the kernel reads it (after leading blank lines; options with values before
the name), and the phase view the kernel left in its outputs. Editing the name after a run, two
cells with one name (a copy-paste), clearing the outputs, cutting and undoing: the badge never shows
another phase's status as this cell's.

One JupyterLab for the module; the notebook's outputs are written as the kernel writes them (the
store was filled by a real kernel), so nothing has to run in the browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_helpers import (
    BROWSER_ARGS,
    CHROMIUM,
    MS,
    SCREENSHOTS,
    Console,
    api_row,
    built_extension,
    cell,
    extension_server,
    fits,
    kernel_ready,
    notebook_json,
    open_notebook,
    shot,
    stop_kernels,
)
from jupyter_helpers import JupyterServer
from kernel_helpers import Kernel, wait_until

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        built_extension() is None,
        reason="the JupyterLab extension is not built: run `make labextension` (needs node/npm)",
    ),
]

PHASE_MIME = "application/vnd.nbresume.phase+json"
NOTEBOOK = "cells.ipynb"
TWIN = "twin.ipynb"
PREP = "%%checkpoint prep\nx = 1"
FIT = "%%checkpoint fit --every 1\ny = 2"
LONG = "a_" + "very_long_phase_name_" * 6
SOURCES = [
    "%load_ext nbresume",
    PREP,  # 1
    "\n\n" + FIT,  # 2: the kernel skips leading blank lines: still a checkpoint cell
    "%%checkpoint --every 1 later\nz = 3",  # 3: an option's value is not the name
    "%%checkpoint prep\nx = 1",  # 4: markdown, see below: no badge
    "# a comment first\n%%checkpoint prep\nx = 1",  # 5: not a cell magic for the kernel
    PREP,  # 6: cell 1 copied and pasted: two cells, one phase
    f"%%checkpoint {LONG}\nw = 4",  # 7
    "    %%checkpoint indented\n    v = 5",  # 8: IPython dedents the whole cell first
]


def phase_output(name: str, body: str, store: str) -> dict[str, Any]:
    from nbresume.widget import source_hash

    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {
            PHASE_MIME: {"name": name, "dir": store, "status": "done", "source": source_hash(body)},
            "text/plain": f"{name}: done",
        },
    }


FOLDER = "sub dir"
ODD = "data #1 % ü.ipynb"  # a name a URL must encode
MOVED = [
    "%load_ext nbresume",
    "%%checkpoint early\na = 1",
    "%checkpoint dir moved",
    "%%checkpoint late\nb = 2",
]


def moved_store(folder: Path, home: Path) -> None:
    """``FOLDER/ODD``: ``early`` saved in the store next to it, ``late`` in ``FOLDER/moved``
    (``%checkpoint dir`` moved the store between the two), each cell's view naming its store."""
    folder.mkdir(parents=True)
    kernel = Kernel(folder, home=home)
    try:
        kernel.start()
        for source in MOVED:
            kernel.run(source)
    finally:
        kernel.shutdown()
    notebook = notebook_json(MOVED)
    for index, name, store in ((1, "early", ".nbresume"), (3, "late", "moved")):
        body = MOVED[index].partition("\n")[2]
        notebook["cells"][index]["outputs"] = [phase_output(name, body, str(folder / store))]
    (folder / ODD).write_text(json.dumps(notebook))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    base = tmp_path_factory.mktemp("labcells")
    root, home = base / "root", base / "home"
    project = root / "project"
    project.mkdir(parents=True)
    kernel = Kernel(project, home=home)
    # as jupyter_server starts a notebook's kernel: the phases record which notebook ran them
    os.environ["JPY_SESSION_NAME"] = str(project / NOTEBOOK)
    try:
        kernel.start()
    finally:
        del os.environ["JPY_SESSION_NAME"]
    try:
        for source in (SOURCES[0], PREP, FIT, SOURCES[7], SOURCES[8]):
            kernel.run(source)
    finally:
        kernel.shutdown()
    store = str(project / ".nbresume")
    # a notebook next to it, with a cell of the same NAME: one store, so one phase `prep`
    (project / TWIN).write_text(
        json.dumps(notebook_json([SOURCES[0], PREP, "%%checkpoint own\nv = 0"]))
    )
    notebook = notebook_json(SOURCES)
    cells = notebook["cells"]
    cells[4] = {"cell_type": "markdown", "id": "cell-4", "metadata": {}, "source": SOURCES[4]}
    for index, name in ((1, "prep"), (2, "fit"), (6, "prep"), (7, LONG), (8, "indented")):
        body = textwrap.dedent(SOURCES[index].lstrip("\n")).partition("\n")[2]
        cells[index]["outputs"] = [phase_output(name, body, store)]
    (project / NOTEBOOK).write_text(json.dumps(notebook))
    moved_store(root / FOLDER, home)
    server = extension_server(root, home, app="lab")
    server.start()
    try:
        yield server
    finally:
        server.stop()


STATE = """i => { const b = document.querySelectorAll('.jp-Notebook .jp-Cell')[i]
    ?.querySelector('.jp-nbresume-badge');
    return b ? [b.dataset.phase, b.dataset.status, b.textContent, b.title] : null; }"""


def state(page: Any, index: int) -> list[str] | None:
    value = page.evaluate(STATE, index)
    return list(value) if value else None


def wait_state(page: Any, index: int, phase: str, status: str, timeout: float = 20) -> list[str]:
    page.wait_for_function(
        f"([i, p, s]) => {{ const v = ({STATE})(i); return v && v[0] === p && v[1] === s; }}",
        arg=[index, phase, status],
        timeout=timeout * MS,
    )
    value = state(page, index)
    assert value is not None
    return value


def edit_first_line(page: Any, index: int, text: str) -> None:
    """Type ``text`` at the end of the cell's first line."""
    cell(page, index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Home")
    page.keyboard.press("End")
    page.keyboard.type(text)
    page.keyboard.press("Escape")


def edit_last_line(page: Any, index: int, text: str) -> None:
    cell(page, index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)
    page.keyboard.press("Escape")


@contextlib.contextmanager
def lab_page(console: Console, failure: str) -> Iterator[Any]:
    """A page of the system Chromium (1200 x 900, 60 s waits) whose errors ``console`` collects;
    a failure inside saves the screenshot ``failure``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(60 * MS)
        console.attach(page)
        try:
            yield page
        except BaseException:
            shot(page, failure)
            raise
        finally:
            browser.close()


@pytest.mark.timeout(400)
def test_badges_follow_what_the_user_does_to_checkpoint_cells(lab: JupyterServer) -> None:

    console = Console()
    with lab_page(console, "lab-cells-failure.png") as page:
        open_notebook(page, lab, notebook=NOTEBOOK)
        # leading blank lines: the kernel runs it as a checkpoint cell, so it has a badge
        wait_state(page, 2, "fit", "done")
        # `--every 1 later`: the phase is `later` (not `1`), not saved yet
        assert wait_state(page, 3, "later", "none")[2] == "not saved"
        assert state(page, 4) is None  # markdown
        assert state(page, 5) is None  # a comment first: no cell magic for the kernel
        # an indented cell: the kernel ran it dedented, so it is not "stale"
        wait_state(page, 8, "indented", "done")
        # a copied cell: both name `prep`, and each says so, not "done" twice
        first = wait_state(page, 1, "prep", "duplicate")
        copy = wait_state(page, 6, "prep", "duplicate")
        assert "cells 2 and 7" in first[3], first
        assert first[3] == copy[3]
        # the badge says its state in words, to a screen reader too (not colour alone)
        label = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-nbresume-badge")
        assert label.get_attribute("aria-label") == "checkpoint fit: done", label
        # a long name: the badge's phase is readable in full from its tooltip
        long = wait_state(page, 7, LONG, "done")
        assert long[3].startswith(LONG), long
        shot(page, "lab-cells.png")

        # the name edited after the run: its output is another phase's; stale, not "done"
        edit_first_line(page, 1, "_v2")
        renamed = wait_state(page, 1, "prep_v2", "stale")
        assert "renamed from prep since it ran" in renamed[3], renamed
        assert wait_state(page, 6, "prep", "done")[2] == "done"  # no duplicate now

        # Edit > Clear Outputs of All Cells: the badges still tell the store's truth ...
        page.locator(".lm-MenuBar-itemLabel", has_text="Edit").click()
        page.locator(".lm-Menu-itemLabel", has_text="Clear Outputs of All Cells").click()
        page.wait_for_function("() => !document.querySelector('.jp-nbresume-cell')")
        wait_state(page, 2, "fit", "done")
        wait_state(page, 6, "prep", "done")
        # ... and an edit after that still turns the cell stale
        edit_last_line(page, 6, "\nx += 1")
        assert "changed since" in wait_state(page, 6, "prep", "stale")[3]
        # the renamed cell stays stale: its run was prep's
        assert state(page, 1)[:2] == ["prep_v2", "stale"]  # type: ignore[index]

        # cut the `fit` cell and undo: its badge is back, with the same truth
        cell(page, 2).locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        page.keyboard.press("x")
        page.wait_for_function(
            "() => !document.querySelector('.jp-nbresume-badge[data-phase=\"fit\"]')"
        )
        page.keyboard.press("z")
        wait_state(page, 2, "fit", "done")
        shot(page, "lab-cells-edited.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert not console.ours, "\n".join(console.ours)


@pytest.mark.timeout(400)
def test_an_odd_name_a_moved_store_a_rename_and_a_failing_api(lab: JupyterServer) -> None:

    stop_kernels(lab)  # kernel_ready() must see this notebook's kernel
    console = Console()
    with lab_page(console, "lab-odd-failure.png") as page:
        path = urllib.parse.quote(f"{FOLDER}/{ODD}")
        page.goto(f"{lab.url}/lab/workspaces/odd/tree/{path}?token={lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        assert wait_until(lambda: kernel_ready(lab), 120, 0.5), "no kernel connected"
        # each cell reads the store its run used: `early` before `%checkpoint dir`, `late` after
        wait_state(page, 3, "late", "done")
        wait_state(page, 1, "early", "done")
        page.wait_for_selector('.jp-nbresume-cell[data-phase="early"][data-status="done"]')
        page.wait_for_selector('.jp-nbresume-cell[data-phase="late"][data-status="done"]')

        # renamed from the File menu while open: the views follow the new path
        page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
        page.locator(".lm-Menu-itemLabel", has_text="Rename Notebook…").click()
        field = page.locator(".jp-Dialog input")
        field.fill("renamed ü #2.ipynb")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        assert wait_until((lab.root / FOLDER / "renamed ü #2.ipynb").exists, 20)
        page.locator('.lm-TabBar-tab[title="Checkpoints"]').click()
        sidebar = page.locator("#jp-nbresume-checkpoints")
        sidebar.locator('.jp-nbresume-row[data-name="late"][data-status="done"]').wait_for()
        # and the phase saved before the store moved, said to be in the old store
        early = sidebar.locator('.jp-nbresume-row[data-name="early"][data-status="done"]')
        early.wait_for()
        assert f"in {FOLDER}/.nbresume" in early.inner_text()
        # the badges, now read under the new path, still say the same
        page.evaluate(
            "() => document.querySelectorAll('.jp-nbresume-badge')"
            ".forEach(b => { b.dataset.status = 'old'; })"
        )
        wait_state(page, 3, "late", "done")
        wait_state(page, 1, "early", "done")

        # the API fails: the badges and the sidebar say so, in words, and nothing breaks
        page.route(
            "**/nbresume/api/notebook?*",
            lambda route: route.fulfill(
                status=500,
                content_type="application/json",
                body=json.dumps({"message": "the disk is on fire", "reason": None}),
            ),
        )
        wait_state(page, 3, "late", "unknown")
        page.wait_for_function(  # (what it read last, said as such)
            f"() => ({STATE})(3)[3].includes('; last known: late: done')"
        )
        failed = state(page, 3)
        assert failed is not None
        assert failed[2] == "?", failed
        assert "could not read the checkpoint store: 500: the disk is on fire" in failed[3]
        assert wait_state(page, 1, "early", "unknown")[2] == "?"
        # the cell view keeps the last state it read, saying it may be out of date
        page.wait_for_function(
            "() => document.querySelector('.jp-nbresume-cell[data-phase=\"late\"]')"
            "?.innerText.includes('could not refresh (500: the disk is on fire)')"
        )
        page.wait_for_function(
            "() => document.querySelector('#jp-nbresume-checkpoints')"
            "?.innerText.includes('the disk is on fire')",
            timeout=30 * MS,
        )
        shot(page, "lab-api-down.png")
        # back up: within one slow poll, the truth again
        page.unroute("**/nbresume/api/notebook?*")
        wait_state(page, 3, "late", "done", timeout=40)
        wait_state(page, 1, "early", "done", timeout=40)
        page.wait_for_function(
            "() => !document.querySelector('#jp-nbresume-checkpoints')"
            "?.innerText.includes('the disk is on fire')",
            timeout=40 * MS,
        )
        page.wait_for_function(
            "() => !document.querySelector('.jp-nbresume-cell[data-error]')", timeout=40 * MS
        )
    assert not console.ours, "\n".join(console.ours)


BASE = "/jh/user/"


@pytest.fixture(scope="module")
def hub_lab(lab: JupyterServer) -> Iterator[JupyterServer]:
    """A second JupyterLab over the same root, below ``/jh/user/`` as under JupyterHub."""
    folder = lab.root / "hub"
    folder.mkdir()
    body = FIT.partition("\n")[2]
    notebook = notebook_json([SOURCES[0], FIT])
    notebook["cells"][1]["outputs"] = [
        phase_output("fit", body, str(lab.root / "project" / ".nbresume"))
    ]
    (folder / NOTEBOOK).write_text(json.dumps(notebook))
    server = extension_server(lab.root, lab.home.parent / "hub-home", app="lab")
    server.args.append(f"--ServerApp.base_url={BASE}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(300)
def test_a_server_below_a_base_url(hub_lab: JupyterServer) -> None:

    assert hub_lab.url.endswith(BASE.rstrip("/"))
    console = Console()
    asked: list[str] = []
    with lab_page(console, "lab-base-url-failure.png") as page:
        page.on("request", lambda r: asked.append(r.url) if "nbresume/api" in r.url else None)
        page.goto(f"{hub_lab.url}/lab/tree/hub/{NOTEBOOK}?token={hub_lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        wait_state(page, 1, "fit", "done")
        page.wait_for_selector('.jp-nbresume-cell[data-phase="fit"][data-status="done"]')
        page.locator('.lm-TabBar-tab[title="Checkpoints"]').click()
        page.locator('#jp-nbresume-checkpoints .jp-nbresume-row[data-name="fit"]').wait_for()
    assert asked, "the extension asked nothing"
    wrong = [url for url in asked if f"{BASE}nbresume/api/" not in url]
    assert not wrong, wrong
    assert not console.ours, "\n".join(console.ours)


def open_palette(page: Any) -> None:
    """View > Activate Command Palette (tried again if the palette closed as it opened)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
        page.locator(".lm-Menu-itemLabel", has_text="Activate Command Palette").click()
        try:
            page.locator(".lm-CommandPalette-input").wait_for(state="visible", timeout=5 * MS)
        except PlaywrightTimeout:
            continue
        return
    raise AssertionError("the command palette did not open")


@pytest.mark.timeout(300)
def test_two_notebooks_sharing_a_store_and_a_name(lab: JupyterServer) -> None:

    console = Console()
    with lab_page(console, "lab-twin-failure.png") as page:
        page.goto(f"{lab.url}/lab/workspaces/twin/tree/project/{TWIN}?token={lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        # `prep` was run by cells.ipynb: this notebook's cell says whose run it shows
        twin = wait_state(page, 1, "prep", "done")
        assert twin[2] == f"done · {NOTEBOOK}", twin
        assert f"last run from {NOTEBOOK}, not this notebook" in twin[3], twin
        assert wait_state(page, 2, "own", "none")[2] == "not saved"

        # the sidebar from the keyboard: the command palette, then Tab to a button
        cell(page, 1).locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        # (headless Chromium keeps Ctrl+Shift+C, its inspector's key: the palette's menu item)
        open_palette(page)
        page.keyboard.type("Show Checkpoints")
        page.locator(
            ".lm-CommandPalette-item.lm-mod-active", has_text="Show Checkpoints"
        ).wait_for()
        page.keyboard.press("Enter")
        sidebar = page.locator("#jp-nbresume-checkpoints")
        sidebar.wait_for(state="visible")
        assert page.evaluate(
            "() => document.getElementById('jp-nbresume-checkpoints')"
            ".contains(document.activeElement)"
        )
        row = sidebar.locator(f'.jp-nbresume-row[data-name="{LONG}"]')
        row.wait_for()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.matches('.jp-nbresume-action')")
        # a long name is cut with an ellipsis, whole in its tooltip; its status stays seen
        name = row.locator(".jp-nbresume-cell-name")
        assert name.get_attribute("title") == LONG
        assert page.evaluate(
            "n => { const e = document.querySelector("
            "`#jp-nbresume-checkpoints .jp-nbresume-row[data-name='${n}'] .jp-nbresume-cell-name`);"
            " return e.scrollWidth > e.clientWidth; }",
            LONG,
        ), "the long name is not cut"
        assert fits(page, "#jp-nbresume-checkpoints .jp-nbresume-pill")
        prep = sidebar.locator('.jp-nbresume-row[data-name="prep"]')
        assert f"last run from {NOTEBOOK}" in prep.inner_text()
        shot(page, "lab-twin.png")
    assert not console.ours, "\n".join(console.ours)


RUN_ALL = "runall.ipynb"
RUN_ALL_CELLS = [
    "%load_ext nbresume",
    "%%checkpoint first\nx = 1",
    "%%checkpoint loop --every 1\nimport time\nfor i in resumable(range(5)):\n    time.sleep(0.1)",
    "%%checkpoint last\ny = x + 1\ny",
]


def run_all(page: Any) -> None:
    """Kernel > Restart Kernel and Run All Cells…, confirmed."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells…").click()
    page.locator(".jp-Dialog button.jp-mod-accept").click()


@pytest.mark.timeout(400)
def test_restart_and_run_all_twice(lab: JupyterServer) -> None:

    (lab.root / "project" / RUN_ALL).write_text(json.dumps(notebook_json(RUN_ALL_CELLS)))
    stop_kernels(lab)
    client = lab.client()
    notebook = f"project/{RUN_ALL}"
    console = Console()
    with lab_page(console, "lab-run-all-failure.png") as page:
        page.goto(f"{lab.url}/lab/workspaces/runall/tree/{notebook}?token={lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        assert wait_until(lambda: kernel_ready(lab), 120, 0.5), "no kernel connected"
        for index, name in ((1, "first"), (2, "loop"), (3, "last")):
            assert wait_state(page, index, name, "none")[2] == "not saved"
        run_all(page)  # the first time: each phase runs
        for index, name in ((1, "first"), (2, "loop"), (3, "last")):
            wait_state(page, index, name, "done", timeout=120)
            page.wait_for_selector(f'.jp-nbresume-cell[data-phase="{name}"]')
        assert api_row(client, "loop", notebook)["versions"] == 1
        run_all(page)  # again, in a new kernel: each phase is restored, none runs
        for index, name in ((1, "first"), (2, "loop"), (3, "last")):
            wait_state(page, index, name, "restored", timeout=120)
        page.wait_for_function(
            "() => document.querySelectorAll("
            "'.jp-nbresume-cell[data-status=\"restored\"]').length === 3"
        )
        assert cell(page, 3).locator(".jp-OutputArea-executeResult").inner_text().split()[-1] == "2"
        for name in ("first", "loop", "last"):
            assert api_row(client, name, notebook)["versions"] == 1, name
        shot(page, "lab-run-all.png")
    assert not console.ours, "\n".join(console.ours)


MANY = 100


def many_view() -> dict[str, Any]:
    """The API's answer for a notebook of ``MANY`` phases, one of them running (so the views
    poll every second)."""
    rows = []
    for i in range(MANY):
        running = i == MANY - 1
        rows.append(
            {
                "kind": "phase",
                "name": f"p{i}",
                "notebook": None,
                "status": "running" if running else "done",
                "running": running,
                "resumable": False,
                "updated": 2e9 - 60,
                "duration": 1.5,
                "versions": 1,
                "size": 1000 + i,
                "last_snapshot": None,
                "snapshot_size": None,
                "progress": None,
            }
        )
    return {
        "now": 2e9,
        "store": "project/.nbresume",
        "exists": True,
        "running": 1,
        "size": 10**6,
        "phases": rows,
    }


@pytest.mark.timeout(300)
def test_a_hundred_phases_in_the_sidebar(lab: JupyterServer) -> None:

    sources = [f"%%checkpoint p{i}\nx = {i}" for i in range(MANY)]
    (lab.root / "project" / "many.ipynb").write_text(json.dumps(notebook_json(sources)))
    console = Console()
    asked: list[str] = []
    with lab_page(console, "lab-many-failure.png") as page:
        body = json.dumps(many_view())
        page.route(
            "**/nbresume/api/notebook?*",
            lambda route: (
                asked.append(route.request.url),
                route.fulfill(status=200, content_type="application/json", body=body),
            ),
        )
        page.goto(f"{lab.url}/lab/workspaces/many/tree/project/many.ipynb?token={lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        page.locator('.lm-TabBar-tab[title="Checkpoints"]').click()
        sidebar = page.locator("#jp-nbresume-checkpoints")
        page.wait_for_function(
            "n => document.querySelectorAll('#jp-nbresume-checkpoints .jp-nbresume-row')"
            ".length === n",
            arg=MANY,
        )
        # scrolled to the last rows, with a button focused: the polls keep both
        page.evaluate(
            "() => { const s = document.getElementById('jp-nbresume-checkpoints');"
            " s.scrollTop = s.scrollHeight; }"
        )
        last = sidebar.locator(f'.jp-nbresume-row[data-name="p{MANY - 2}"]')
        last.locator(".jp-nbresume-action-history").focus()
        top = page.evaluate("() => document.getElementById('jp-nbresume-checkpoints').scrollTop")
        assert top > 1000, top
        seen = len(asked)
        page.wait_for_function(  # three more polls (one a second while a phase runs)
            "n => window.performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/nbresume/api/notebook')).length >= n",
            arg=seen + 3,
        )
        after = page.evaluate("() => document.getElementById('jp-nbresume-checkpoints').scrollTop")
        assert abs(after - top) <= 1, (top, after)
        assert page.evaluate(
            "n => document.activeElement.closest('.jp-nbresume-row')?.dataset.name === n",
            f"p{MANY - 2}",
        )
        shot(page, "lab-many.png")
    assert not console.ours, "\n".join(console.ours)


@pytest.mark.timeout(300)
def test_a_notebook_opened_with_no_kernel(lab: JupyterServer) -> None:

    notebook = notebook_json([FIT])
    del notebook["metadata"]["kernelspec"]  # JupyterLab asks which kernel: the user says none
    body = FIT.partition("\n")[2]
    notebook["cells"][0]["outputs"] = [
        phase_output("fit", body, str(lab.root / "project" / ".nbresume"))
    ]
    (lab.root / "project" / "nokernel.ipynb").write_text(json.dumps(notebook))
    stop_kernels(lab)
    console = Console()
    with lab_page(console, "lab-nokernel-failure.png") as page:
        page.goto(
            f"{lab.url}/lab/workspaces/nokernel/tree/project/nokernel.ipynb?token={lab.token}"
        )
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        page.locator(".jp-Dialog button", has_text="No Kernel").click()
        page.locator(".jp-Dialog").wait_for(state="detached")
        wait_state(page, 0, "fit", "done")
        page.wait_for_selector('.jp-nbresume-cell[data-phase="fit"][data-status="done"]')
        kernels = lab.client().get("/api/kernels", token=True).json()
        assert kernels == [], kernels  # all of it from the server, nothing from a kernel
    assert not console.ours, "\n".join(console.ours)
