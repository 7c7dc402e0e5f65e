"""The extension (labextension/) in Notebook 7 (``jupyter notebook``) and headless Chromium.

One Notebook 7 server for the module. The same extension as in JupyterLab: the phase view in the
cell, the badges and the Checkpoints sidebar (in Notebook 7's left side panel, reached from the
View menu) read the store through the server, so a killed kernel shows as interrupted without
running anything, and again after a reload. A notebook from the internet can carry a crafted phase
bundle: it renders as text and acts on nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from browser_helpers import (
    BROWSER_ARGS,
    CHROMIUM,
    MS,
    NOTEBOOK,
    SCREENSHOTS,
    TOTAL,
    Console,
    badge,
    built_extension,
    cell,
    dismiss_dialogs,
    extension_server,
    fits,
    interrupted_line,
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

HOSTILE = "hostile.ipynb"
EVIL = '<img src=x onerror="window.__pwned=1">../../etc'  # a phase name from a stranger
PHASE_MIME = "application/vnd.nbresume.phase+json"


def hostile_notebook() -> dict[str, Any]:
    """A notebook whose saved outputs were crafted: a phase bundle naming an HTML phase in a store
    outside the root, a huge progress number, and a text form that is HTML too."""
    notebook = notebook_json([f"%%checkpoint {EVIL}\nx = 1", "%%checkpoint other\ny = 2"])
    notebook["cells"][0]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                PHASE_MIME: {
                    "name": EVIL,
                    "dir": "../../../etc",
                    "status": '<b onmouseover="window.__pwned=2">running</b>',
                    "source": "<script>window.__pwned=3</script>",
                    "done": 10**300,
                    "total": -1,
                },
                "text/plain": '<img src=x onerror="window.__pwned=4">',
            },
        }
    ]
    notebook["cells"][1]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                # the notebook's own store, named relative to the root: the last named wins
                PHASE_MIME: {"name": EVIL, "status": "done", "dir": "project/.nbresume"},
                "text/plain": "other",
            },
        }
    ]
    return notebook


FLOOD = "flood.ipynb"
FLOOD_CELLS = 40
MAX_STORES = 8  # labextension/src/watcher.ts


def flood_notebook() -> dict[str, Any]:
    """40 phase views, each naming a store directory of its own."""
    notebook = notebook_json([f"%%checkpoint p{i}\nx = {i}" for i in range(FLOOD_CELLS)])
    for i, cell_json in enumerate(notebook["cells"]):
        cell_json["outputs"] = [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {
                    PHASE_MIME: {"name": f"p{i}", "dir": f"project/store{i}"},
                    "text/plain": f"kernel text {i}",
                },
            }
        ]
    return notebook


@pytest.fixture(scope="module")
def nb7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter notebook`` with the extension over ``root/project``: analysis.ipynb (whose store
    holds ``prep``, done) and hostile.ipynb."""
    base = tmp_path_factory.mktemp("nb7")
    root, home = base / "root", base / "home"
    prepared_root(root, home)
    (root / "project" / HOSTILE).write_text(json.dumps(hostile_notebook()))
    (root / "project" / FLOOD).write_text(json.dumps(flood_notebook()))
    server = extension_server(root, home, app="notebook")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser: Any, console: Console, width: int = 1200) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(60 * MS)
    console.attach(page)
    return page


def open_sidebar(page: Any) -> Any:
    """View > Left Sidebar > Show Checkpoints, as a user finds it; -> the panel."""
    panel = page.locator("#jp-nbresume-checkpoints")
    if panel.is_visible():
        return panel
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(
        ".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text="Left Sidebar")
    ).hover()
    page.locator(".lm-Menu-itemLabel", has_text="Show Checkpoints").click()
    panel.wait_for(state="visible")
    return panel


def wait_text(page: Any, selector: str, text: str, timeout: float = 20) -> None:
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel)?.innerText.includes(text)",
        arg=[selector, text],
        timeout=timeout * MS,
    )


def test_the_tree_page_loads_the_extension_quietly(nb7: JupyterServer, browser: Any) -> None:
    console = Console()
    page = new_page(browser, console)
    loaded: list[str] = []
    page.on("request", lambda r: loaded.append(r.url) if "nbresume" in r.url else None)
    page.goto(f"{nb7.url}/tree/project?token={nb7.token}")
    page.get_by_text(NOTEBOOK).first.wait_for()
    assert any("/extensions/nbresume/" in url for url in loaded), loaded
    assert not page.locator("#jp-nbresume-checkpoints").is_visible()  # no notebook, no panel
    page.close()
    assert not console.ours, "\n".join(console.ours)


@pytest.mark.timeout(600)
def test_a_killed_kernel_shows_interrupted_in_notebook7(nb7: JupyterServer, browser: Any) -> None:
    client = nb7.client()
    console = Console()
    page = new_page(browser, console)
    try:
        stop_kernels(nb7)  # kernel_ready() must see this notebook's kernel, not another test's
        open_notebook(page, nb7, route="notebooks")
        page.wait_for_selector('.jp-nbresume-badge[data-phase="prep"][data-status="done"]')
        assert badge(page, "train").inner_text() == "not saved"

        run_cells(page, 4)
        page.wait_for_selector('.jp-nbresume-cell[data-phase="train"][data-status="running"]')
        page.wait_for_function(
            "() => { const b = document.querySelector("
            "'.jp-nbresume-cell[data-phase=\"train\"] [role=progressbar]');"
            " return b && Number(b.getAttribute('aria-valuenow')) >= 8; }",
            timeout=60 * MS,
        )
        assert badge(page, "train").inner_text().startswith("running ")
        assert badge(page, "bad").inner_text() == "failed"
        panel = open_sidebar(page)  # the sidebar while the loop runs
        panel.locator('.jp-nbresume-row[data-name="train"][data-status="running"]').wait_for()
        shot(page, "nb7-running.png")
        cell(page, 3).locator(".jp-InputPrompt").click()  # back to the notebook (command mode)
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")  # saved while the loop runs: a "running" bundle

        saved = nb7.root / "project" / NOTEBOOK
        os.kill(writer_pid(nb7.root / "project" / ".nbresume", "train"), signal.SIGKILL)
        expected = interrupted_line(client)
        assert wait_until(lambda: "vnd.nbresume.phase" in saved.read_text(), 20), "not saved"
        wait_text(page, '.jp-nbresume-cell[data-phase="train"]', expected)
        assert badge(page, "train").inner_text().startswith("interrupted ")
        assert expected in badge(page, "train").get_attribute("title")
        dismiss_dialogs(page)

        panel = open_sidebar(page)
        row = panel.locator('.jp-nbresume-row[data-name="train"]')
        row.wait_for()
        wait_text(page, '#jp-nbresume-checkpoints .jp-nbresume-row[data-name="train"]', expected)
        statuses = {
            r.get_attribute("data-name"): r.get_attribute("data-status")
            for r in panel.locator(".jp-nbresume-row").all()
        }
        assert statuses == {"prep": "restored", "bad": "failed", "train": "interrupted"}
        shot(page, "nb7-interrupted.png")

        # reload (the saved notebook holds the "running" bundle): the store's truth again
        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        wait_text(page, '.jp-nbresume-cell[data-phase="train"]', expected)
        text = page.inner_text(".jp-Notebook")
        assert "Error displaying widget" not in text
        assert "model not found" not in text
        dismiss_dialogs(page)
        open_sidebar(page)
        wait_text(page, '#jp-nbresume-checkpoints .jp-nbresume-row[data-name="train"]', expected)

        # dark theme, 700 px wide: the sidebar and the cell view still read
        set_theme(nb7, "JupyterLab Dark")
        page.set_viewport_size({"width": 700, "height": 900})
        page.reload()
        wait_text(page, '.jp-nbresume-cell[data-phase="train"]', expected)
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        dismiss_dialogs(page)
        open_sidebar(page)
        assert fits(page, "#jp-nbresume-checkpoints .jp-nbresume-row-actions button")
        shot(page, "nb7-dark-700.png")
        shot(cell(page, 3), "nb7-cell-interrupted-dark.png")
    except BaseException:
        shot(page, "nb7-failure.png")
        raise
    finally:
        set_theme(nb7, "JupyterLab Light")
        page.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "nb7-console.txt").write_text("\n".join(console.errors))
    assert not console.ours, "\n".join(console.ours)


HOSTILE_VIEW = {
    "now": 2e9,
    "store": "project/.nbresume",
    "exists": True,
    "running": 0,
    "size": 10**30,
    "phases": [
        {
            "kind": "phase",
            "name": EVIL,
            "notebook": '<img src=x onerror="window.__pwned=5">',
            "status": '<img src=x onerror="window.__pwned=6"> x',
            "running": False,
            "resumable": True,
            "updated": 1e9,
            "duration": 1e308,
            "versions": 10**20,
            "size": -5,
            "last_snapshot": None,
            "snapshot_size": None,
            "saved": 10**300,
            "progress": {
                "done": 10**300,
                "total": 40,
                "skipped": "<b>many</b>",
                "rate": None,
                "eta": None,
                "elapsed": None,
                "last_snapshot": None,
                "updated": None,
                "started": None,
                "loops": [
                    {
                        "desc": '<img src=x onerror="window.__pwned=7">',
                        "status": "interrupted",
                        "done": 10**300,
                        "total": 40,
                        "skipped": None,
                        "rate": None,
                        "eta": None,
                        "elapsed": None,
                        "last_snapshot": None,
                    }
                ],
            },
            "history": [
                {
                    "number": 1,
                    "created": 1e9,
                    "duration": 3.5,
                    "size": 100,
                    "reason": '<img src=x onerror="window.__pwned=8">',
                },
                {
                    "number": 2,
                    "created": 9e8,
                    "duration": 7200,
                    "size": 2048,
                    "reason": "first run",
                    "current": False,
                    "resumes": 1,
                    "rollback": f"%checkpoint rollback {shlex.quote(EVIL)} 2",
                },
            ],
        },
        {  # a plain status word the UI has no style for (a newer server's): shown as is
            "kind": "phase",
            "name": "other",
            "notebook": None,
            "status": "archived",
            "running": False,
            "resumable": False,
            "updated": 1e9,
            "duration": None,
            "versions": 1,
            "size": 10,
            "last_snapshot": None,
            "snapshot_size": None,
            "progress": None,
        },
    ],
}


@pytest.mark.timeout(300)
def test_a_crafted_phase_bundle_renders_as_text_and_acts_on_nothing(
    nb7: JupyterServer, browser: Any
) -> None:
    console = Console()
    page = new_page(browser, console)
    posts: list[str] = []
    api: list[str] = []

    def seen(request: Any) -> None:
        if "/nbresume/api/" in request.url:
            api.append(request.url)
            if request.method != "GET":
                posts.append(request.url)

    page.on("request", seen)
    # the store is as hostile as the notebook: a stranger's .nbresume folder came with it
    page.route(
        "**/nbresume/api/notebook?*",
        lambda route: (
            route.fulfill(
                status=200, content_type="application/json", body=json.dumps(HOSTILE_VIEW)
            )
            if "hostile" in route.request.url and "etc" not in route.request.url
            else route.continue_()
        ),
    )
    page.on("dialog", lambda dialog: posts.append(f"dialog: {dialog.message}"))
    try:
        open_notebook(page, nb7, route="notebooks", notebook=HOSTILE)
        views = page.locator(".jp-nbresume-cell")
        page.wait_for_function("() => document.querySelectorAll('.jp-nbresume-cell').length == 2")
        # the crafted store directory is refused by the server: the kernel's text, as text
        wait_text(page, ".jp-Notebook .jp-Cell:nth-child(1) .jp-OutputArea", "<img src=x")
        wait_text(page, ".jp-Notebook", EVIL)
        page.wait_for_selector(".jp-nbresume-badge")
        panel = open_sidebar(page)
        # (the crafted phase is not one of the notebook's by its lines, which the kernel reads:
        # shlex cuts cell 1's name at its first space; it is listed after the notebook's own)
        evil_row = panel.locator('.jp-nbresume-row[data-status="unknown"]')
        evil_row.wait_for()
        evil_row.locator(".jp-nbresume-action-history").click()
        wait_text(page, "#jp-nbresume-checkpoints", f"%checkpoint rollback {shlex.quote(EVIL)} 2")
        versions = panel.locator(".jp-nbresume-version")
        assert versions.count() == 2
        assert "current" in versions.nth(0).inner_text()
        assert "ran 2h00m (resumed once)" in versions.nth(1).inner_text()
        assert "first run" in versions.nth(1).inner_text()
        page.mouse.move(10, 10)
        page.locator(".jp-nbresume-badge").first.hover()
        shot(page, "nb7-hostile.png")

        # Clear asks first, naming the phase as text; cancelled, nothing is sent
        evil_row.locator(".jp-nbresume-action-clear").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        assert EVIL in dialog.inner_text()
        assert not dialog.locator("img").count()
        dialog.locator("button.jp-mod-reject").click()
        dialog.wait_for(state="detached")

        assert page.evaluate("() => window.__pwned") is None
        assert not page.locator(".jp-Notebook img, #jp-nbresume-checkpoints img").count()
        assert not page.locator(".jp-Notebook script, .jp-Notebook b").count()
        assert EVIL in views.nth(1).inner_text() or EVIL in views.nth(0).inner_text()
        assert EVIL in panel.inner_text()
        rows = panel.locator(".jp-nbresume-row")
        assert [r.get_attribute("data-status") for r in rows.all()] == ["archived", "unknown"]
        assert rows.nth(0).locator(".jp-nbresume-pill").inner_text() == "archived"
        assert not posts, posts  # no clear, no mark, no dialog: a bundle does not act
        for url in api:  # what goes into an API URL is encoded, never a raw path
            assert not any(c in url for c in ("<", '"', "/../")), url
        widths = page.evaluate(
            "() => [...document.querySelectorAll('.jp-nbresume-cell, .jp-nbresume-row')]"
            ".map(e => e.scrollWidth - e.clientWidth)"
        )
        assert all(w <= 1 for w in widths), widths  # a huge number does not widen the page
    except BaseException:
        shot(page, "nb7-hostile-failure.png")
        raise
    finally:
        page.close()
    assert not console.ours, "\n".join(console.ours)


@pytest.mark.timeout(300)
def test_a_notebook_naming_many_stores_watches_a_few(nb7: JupyterServer, browser: Any) -> None:
    console = Console()
    page = new_page(browser, console)
    dirs: set[str] = set()
    requests: list[str] = []

    def seen(request: Any) -> None:
        if "/nbresume/api/notebook" in request.url:
            requests.append(request.url)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
            dirs.add(query.get("dir", [""])[0])

    page.on("request", seen)
    try:
        open_notebook(page, nb7, route="notebooks", notebook=FLOOD)
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-nbresume-cell').length >= n", arg=FLOOD_CELLS
        )
        page.wait_for_function(  # every watcher has asked at least twice
            "n => window.performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/nbresume/api/notebook')).length >= n",
            arg=3 * MAX_STORES,
        )
        fallbacks = page.locator(".jp-nbresume-cell .jp-nbresume-fallback")
        assert fallbacks.count() >= FLOOD_CELLS - MAX_STORES
        assert "kernel text" in (fallbacks.last.text_content() or "")  # (off screen)
    finally:
        page.close()
    assert len(dirs) <= MAX_STORES + 1, sorted(dirs)  # (+1: the badges' own, maybe none)
    assert not console.ours, "\n".join(console.ours)


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


@pytest.mark.timeout(300)
def test_a_restart_from_the_kernel_menu_shows_interrupted_in_notebook7(
    nb7: JupyterServer, browser: Any
) -> None:
    folder = nb7.root / "other"
    folder.mkdir()
    (folder / "restart.ipynb").write_text(json.dumps(notebook_json(RESTART_CELLS)))
    stop_kernels(nb7)
    console = Console()
    page = new_page(browser, console)
    view = '.jp-nbresume-cell[data-phase="longrun"]'
    try:
        open_notebook(page, nb7, route="notebooks", notebook="restart.ipynb", folder="other")
        run_cells(page, 2)
        page.wait_for_function(
            "v => Number(document.querySelector(v + ' [role=progressbar]')"
            "?.getAttribute('aria-valuenow')) >= 8",
            arg=view,
        )
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        expected = interrupted_line(nb7.client(), "longrun", "other/restart.ipynb")
        wait_text(page, view, expected)
        assert badge(page, "longrun").get_attribute("data-status") == "interrupted"
    except BaseException:
        shot(page, "nb7-restart-failure.png")
        raise
    finally:
        page.close()
    assert not console.ours, "\n".join(console.ours)
    comm = [e for e in console.errors if "Comm not found" in e]
    # NB. the kernel closes its widgets at a phase's end, but not once it answered a shutdown
    assert not comm, f"{len(comm)} 'Comm not found' console errors after a restart: {comm[0]}"
