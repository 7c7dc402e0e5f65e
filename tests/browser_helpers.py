"""Browser test helpers shared by the JupyterLab (test_labextension.py) and Notebook 7
(test_notebook7.py) tests: the server with the built extension, the system Chromium, the page's
console, and the notebook the tests run (a checkpoint loop of 40 items).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

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


def built_extension() -> Path | None:
    for path in (BUILT, INSTALLED):
        if (path / "package.json").is_file():
            return path
    return None


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


def prepared_root(root: Path, home: Path) -> None:
    """``root/project/analysis.ipynb``, whose store already holds ``prep`` (done, from another
    kernel)."""
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


def extension_server(root: Path, home: Path, app: str) -> JupyterServer:
    """A ``jupyter lab`` or ``jupyter notebook`` (``app``) over ``root`` with this extension
    (this build first) and no news or update checks; not started."""
    server = JupyterServer(root, home, app=app)
    server.env.update({k: v for k, v in kernel_env(home).items() if k in KERNEL_VARS})
    server.env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "lab-settings")
    server.env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "lab-workspaces")
    extension = built_extension()
    assert extension is not None
    if extension == BUILT:  # the data dir comes first: this build, not an installed one
        # NB. jupyter_core puts a venv's own paths before the user's unless told otherwise: the
        # venv's linked build (of another checkout, say) would win over this one
        server.env["JUPYTER_PREFER_ENV_PATH"] = "0"
        target = Path(server.env["JUPYTER_DATA_DIR"]) / "labextensions" / "nbresume"
        target.parent.mkdir(parents=True)
        target.symlink_to(BUILT, target_is_directory=True)
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return server


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


def api_row(client: Client, name: str, notebook: str = f"project/{NOTEBOOK}") -> dict[str, Any]:
    path = "/nbresume/api/notebook?path=" + urllib.parse.quote(notebook)
    response = client.get(path, token=True)
    assert response.status == 200, response
    rows = {row["name"]: row for row in response.json()["phases"]}
    return rows.get(name) or {}


def stop_kernels(server: JupyterServer) -> None:
    """Shut down every kernel of the server (a module's server outlives each test's kernels)."""
    client = server.client()
    for kernel in client.get("/api/kernels", token=True).json():
        client.request("DELETE", f"/api/kernels/{kernel['id']}", token=True)


def kernel_ready(server: JupyterServer) -> bool:
    response = server.client().get("/api/kernels", token=True)
    return response.status == 200 and any(
        k["execution_state"] == "idle" and k["connections"] > 0 for k in response.json()
    )


def open_notebook(
    page: Any,
    server: JupyterServer,
    route: str = "lab/tree",
    notebook: str = NOTEBOOK,
    folder: str = "project",
) -> None:
    """Open ``FOLDER/NOTEBOOK`` (``route``: ``lab/tree`` in JupyterLab, ``notebooks`` in
    Notebook 7) and wait for its kernel."""
    page.goto(f"{server.url}/{route}/{folder}/{notebook}?token={server.token}")
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


def writer_pid(store: Path, name: str) -> int:
    from nbresume._store import StoreReader

    with StoreReader(store) as reader:
        progress = reader.get_json(f"progress:{name}")
    assert isinstance(progress, dict), progress
    return int(progress["pid"])


def interrupted_line(
    client: Client, name: str = "train", notebook: str = f"project/{NOTEBOOK}"
) -> str:
    """What the cell must say once the server sees the kernel dead (from the store's records)."""
    row: dict[str, Any] = {}

    def dead() -> bool:
        row.update(api_row(client, name, notebook))
        return row.get("status") == "interrupted"

    assert wait_until(dead, 20, 0.2), row
    done, saved = row["progress"]["done"], row["saved"]
    assert 8 <= done < TOTAL, row
    assert saved is not None, row
    assert 1 <= saved <= done, row
    return f"interrupted at {done}/{TOTAL} · {saved} items saved · re-run the cell to resume"


def fits(page: Any, selector: str) -> bool:
    """Every element matching ``selector`` lies inside the viewport and its own parent (not cut)."""
    return bool(
        page.evaluate(
            """sel => [...document.querySelectorAll(sel)].every(e => {
                const r = e.getBoundingClientRect(), p = e.parentElement.getBoundingClientRect();
                return r.width > 0 && r.right <= window.innerWidth + 0.5
                    && r.right <= p.right + 0.5 && r.left >= p.left - 0.5;
            })""",
            selector,
        )
    )
