"""The API the JupyterLab extension reads: ``/nbresume/api/notebook`` and ``/nbresume/api/mark``,
and what the kernel puts in the phase view's bundle for it (``application/vnd.nbresume.phase+json``).
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_helpers import JupyterServer
from nbresume._history import log_event
from nbresume._store import Store, StoreReader
from nbresume.server._dashboard import PathRefused, resolve_store
from nbresume.server._notebook import notebook_store, read_notebook
from nbresume.widget import PHASE_MIME, PhaseView, source_hash

NOTEBOOK = "project/analysis.ipynb"


def simulate(store_dir: Path, name: str, *, done: int, saved: list[int], pid: int) -> None:
    """A phase whose loop of 40 reached ``done`` (by its progress record), with snapshots of
    ``saved`` items logged, written by process ``pid``."""
    store = Store(store_dir)
    try:
        now = time.time()
        loop = {"desc": "epochs", "status": "running", "done": done, "total": 40}
        store.put_json(
            f"progress:{name}",
            {"name": name, "status": "running", "started": now - 5, "updated": now, "pid": pid,
             "done": done, "total": 40, "loops": [loop]},
        )  # fmt: skip
        store.put_json(f"phase:{name}", {"status": "pending", "versions": []})
        log_event(store, name, "started", "started: first run")
        for count in saved:
            log_event(store, name, "snapshot", f"snapshot saved: {count} items", done=count)
    finally:
        store.close()


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# -- which store a notebook uses --------------------------------------------------------------


def test_a_notebook_uses_the_store_next_to_it_or_the_one_its_kernel_named(tmp_path: Path) -> None:
    assert notebook_store(tmp_path, "a.ipynb", None) == ".nbresume"
    assert notebook_store(tmp_path, "x/y/a.ipynb", None) == "x/y/.nbresume"
    inside = tmp_path / "x" / "elsewhere"
    inside.mkdir(parents=True)
    assert notebook_store(tmp_path, "a.ipynb", str(inside)) == "x/elsewhere"


@pytest.mark.parametrize(
    ("notebook", "directory"),
    [
        ("a.ipynb", "/"),
        ("a.ipynb", "/tmp"),
        ("../a.ipynb", None),
        ("/etc/a.ipynb", None),
        ("a.ipynb", "x/../../out"),
        ("a.ipynb", "\x00"),
    ],
)
def test_stores_outside_the_root_are_refused(
    tmp_path: Path, notebook: str, directory: str | None
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PathRefused):
        _resolve(root, notebook, directory)


def _resolve(root: Path, notebook: str, directory: str | None) -> Path:
    # a relative dir is checked by resolve_store, as every other store path is
    return resolve_store(root, notebook_store(root, notebook, directory))


# -- what a killed loop reads as ---------------------------------------------------------------


def test_a_dead_writer_reads_interrupted_with_the_items_its_last_snapshot_saved(
    tmp_path: Path,
) -> None:
    simulate(tmp_path, "train", done=18, saved=[5, 12, 18], pid=dead_pid())
    row = next(r for r in read_notebook(tmp_path)["phases"] if r["name"] == "train")
    assert row["status"] == "interrupted"
    assert row["saved"] == 18
    assert row["progress"]["done"] == 18


def test_a_snapshot_newer_than_the_progress_record_raises_its_count(tmp_path: Path) -> None:
    # the record is rewritten once a second; a kill right after a snapshot leaves it behind
    simulate(tmp_path, "train", done=8, saved=[11], pid=dead_pid())
    row = next(r for r in read_notebook(tmp_path)["phases"] if r["name"] == "train")
    assert (row["saved"], row["progress"]["done"], row["progress"]["loops"][0]["done"]) == (
        11,
        11,
        11,
    )


def test_only_the_current_runs_snapshots_count(tmp_path: Path) -> None:
    simulate(tmp_path, "train", done=30, saved=[30], pid=dead_pid())
    store = Store(tmp_path)
    try:
        log_event(store, "train", "started", "started again: cleared")  # a run from scratch
    finally:
        store.close()
    row = next(r for r in read_notebook(tmp_path)["phases"] if r["name"] == "train")
    assert row["saved"] is None


def test_a_live_writer_reads_running(tmp_path: Path) -> None:
    simulate(tmp_path, "train", done=3, saved=[2], pid=os.getpid())
    row = next(r for r in read_notebook(tmp_path)["phases"] if r["name"] == "train")
    assert row["status"] == "running"
    assert row["saved"] == 2


# -- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("nbapi")
    (root / "project").mkdir()
    simulate(root / "project" / ".nbresume", "train", done=18, saved=[18], pid=dead_pid())
    server = JupyterServer(root, root.parent / f"{root.name}-jupyter").start()
    try:
        yield server
    finally:
        server.stop()


def notebook_path(notebook: str = NOTEBOOK, directory: str | None = None) -> str:
    query = {"path": notebook, **({"dir": directory} if directory else {})}
    return "/nbresume/api/notebook?" + urllib.parse.urlencode(query)


def test_the_notebook_endpoint_lists_the_phases_of_its_store(server: JupyterServer) -> None:
    response = server.client().get(notebook_path(), token=True)
    assert response.status == 200, response
    body = response.json()
    assert body["store"] == "project/.nbresume"
    assert body["exists"] is True
    (row,) = body["phases"]
    assert (row["name"], row["status"], row["saved"]) == ("train", "interrupted", 18)


def test_the_kernels_absolute_store_dir_is_accepted_inside_the_root(server: JupyterServer) -> None:
    directory = str(server.root / "project" / ".nbresume")
    response = server.client().get(notebook_path("elsewhere.ipynb", directory), token=True)
    assert response.status == 200, response
    assert response.json()["store"] == "project/.nbresume"


def test_a_notebook_without_a_store_yet_reads_as_empty(server: JupyterServer) -> None:
    response = server.client().get(notebook_path("new/a.ipynb"), token=True)
    assert response.status == 200, response
    assert response.json() == {**response.json(), "exists": False, "phases": []}


@pytest.mark.parametrize("directory", ["/tmp", "/"])
def test_a_store_outside_the_root_is_a_403(server: JupyterServer, directory: str) -> None:
    response = server.client().get(notebook_path(NOTEBOOK, directory), token=True)
    assert response.status == 403, response


def test_the_api_needs_credentials(server: JupyterServer) -> None:
    assert server.client().get(notebook_path()).status == 403
    body = {"store": "project/.nbresume", "name": "train", "mark": "pending"}
    assert server.client().post("/nbresume/api/mark", body).status == 403


def test_mark_by_cookie_needs_the_xsrf_token(server: JupyterServer) -> None:
    client = server.client().login()
    body = {"store": "project/.nbresume", "name": "train", "mark": "pending"}
    assert client.post("/nbresume/api/mark", body).status == 403
    xsrf = client.cookie("_xsrf") or ""
    response = client.post("/nbresume/api/mark", body, headers={"X-XSRFToken": xsrf})
    assert response.status == 200, response
    assert "marked 'train' pending" in response.json()["text"]
    with StoreReader(server.root / "project" / ".nbresume") as reader:
        assert reader.get_json("phase:train")["mark"] == "pending"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"store": "project/.nbresume", "name": "train", "mark": "gone"}, 400),
        ({"store": "project/.nbresume", "name": "", "mark": "done"}, 400),
        ({"store": "project/.nbresume", "name": "nope", "mark": "pending"}, 404),
        ({"store": "../x", "name": "train", "mark": "pending"}, 403),
        # done needs a saved version: this phase never completed one
        ({"store": "project/.nbresume", "name": "train", "mark": "done"}, 409),
    ],
)
def test_bad_marks_are_refused_with_a_reason(
    server: JupyterServer, body: dict[str, Any], status: int
) -> None:
    response = server.client().post("/nbresume/api/mark", body, token=True)
    assert response.status == status, response


# -- the kernel's side: the bundle -----------------------------------------------------------------


def test_source_hash_ignores_trailing_blanks_only() -> None:
    assert source_hash("x = 1\n") == source_hash("x = 1  \n\n")
    assert source_hash("x = 1") != source_hash("x = 2")
    # the same FNV-1a as labextension/src/format.ts (vector computed by it in node)
    assert source_hash("") == "811c9dc5"
    assert source_hash("a") == "e40c292c"
    assert source_hash("héllo ✓\r\nb  ") == "2d3ebe6f"


def test_every_phase_view_bundle_names_the_phase_and_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbresume._progress import PhaseProgress

    monkeypatch.setenv("NBRESUME_DIR", str(tmp_path / "store"))
    shown: list[dict[str, Any]] = []

    class Handle:
        def update(self, data: dict[str, Any], **kwargs: Any) -> None:
            shown.append(data)

    def fake_display(data: dict[str, Any], display_id: bool = False) -> Any:
        shown.append(data)
        return Handle()

    monkeypatch.setattr("nbresume.widget._display", fake_display)
    view = PhaseView(mode="html", source="x = 1\n", schedule=lambda d, f: lambda: None)
    phase = PhaseProgress("prep")
    view(phase, "start")
    phase.finish("done")
    view(phase, "end")
    view(PhaseProgress("prep"), "restored")
    assert len(shown) == 3
    for data in shown:
        ref = data[PHASE_MIME]
        assert ref["name"] == "prep"
        assert ref["dir"] == str(tmp_path / "store")
        assert {"text/plain", "text/html"} <= data.keys()
    assert [d[PHASE_MIME]["status"] for d in shown] == ["running", "done", "running"]
    assert shown[0][PHASE_MIME]["source"] == source_hash("x = 1")


@pytest.mark.parametrize(
    ("body", "status", "quoted"),
    [
        ({"store": "project/.nbresume", "name": "50%done", "mark": "pending"}, 404, "'50%done'"),
        ({"store": "project/.nbresume", "name": "5%%d", "mark": "pending"}, 404, "'5%%d'"),
        ({"store": "project/.nbresume", "name": "train", "mark": "sure%"}, 400, "'sure%'"),
    ],
)
def test_error_messages_keep_percent_signs_as_written(
    server: JupyterServer, body: dict[str, Any], status: int, quoted: str
) -> None:
    # NB. tornado doubles every % of a message given without arguments (it is a format string)
    response = server.client().post("/nbresume/api/mark", body, token=True)
    assert response.status == status, response
    message = response.json()["message"]
    assert quoted in message, message
    assert message.count("%") == quoted.count("%"), message


# -- marks ---------------------------------------------------------------------------------------


def _with_a_version(store_dir: Path, name: str) -> None:
    store = Store(store_dir)
    try:
        record = store.get_json(f"phase:{name}")
        version = {"key": f"cell:{name}:00", "source_hash": "s", "inputs": {}, "created": 1.0,
                   "duration": 2.0, "size": 0}  # fmt: skip
        store.put_json(f"phase:{name}", {**record, "versions": [version]})
    finally:
        store.close()


@pytest.mark.parametrize("mark", ["pending", "done"])
def test_a_mark_on_an_interrupted_phase_shows_until_it_runs_again(
    tmp_path: Path, mark: str
) -> None:
    from nbresume import checkpoint
    from nbresume._commands import phase_rows
    from nbresume.server._dashboard import read_store
    from nbresume.server._notebook import mark_group

    simulate(tmp_path, "train", done=18, saved=[18], pid=dead_pid())
    _with_a_version(tmp_path, "train")
    assert read_store(tmp_path)["phases"][0]["status"] == "interrupted"
    assert mark_group(tmp_path, "train", mark).startswith(f"marked 'train' {mark}")
    checkpoint.phases.clear()  # as in a new kernel, which has run nothing yet

    assert read_store(tmp_path)["phases"][0]["status"] == mark
    assert read_notebook(tmp_path)["phases"][0]["status"] == mark
    store = Store(tmp_path)
    try:
        assert [r["status"] for r in phase_rows(store)] == [mark]
    finally:
        store.close()
    # it runs again (in a kernel that dies too): interrupted again, the mark is gone
    simulate(tmp_path, "train", done=3, saved=[], pid=dead_pid())
    assert read_store(tmp_path)["phases"][0]["status"] == "interrupted"


def test_a_mark_does_not_hide_a_loop_running_in_a_live_kernel(tmp_path: Path) -> None:
    from nbresume.server._dashboard import read_store

    simulate(tmp_path, "train", done=3, saved=[2], pid=os.getpid())
    store = Store(tmp_path)
    try:
        record = store.get_json("phase:train")
        store.put_json("phase:train", {**record, "mark": "pending", "status": "pending"})
    finally:
        store.close()
    assert read_store(tmp_path)["phases"][0]["status"] == "running"


# -- the progress record keeps up with the snapshots ----------------------------------------------


def test_the_progress_record_is_written_with_every_snapshot(
    shell: Any, run_cell: Any, tmp_path: Path
) -> None:
    def probe() -> tuple[Any, Any]:
        """What a kill now would leave: the record's count, and the last snapshot's."""
        with StoreReader(tmp_path / ".nbresume") as reader:
            progress = reader.get_json("progress:lag") or {}
        (row,) = read_notebook(tmp_path / ".nbresume")["phases"]
        return progress.get("done"), row["saved"]

    shell.user_ns["probe"] = probe
    run = run_cell(
        "%%checkpoint lag --every 1\nseen = []\nfor i in resumable(range(6)):\n"
        "    seen.append(probe())\n"
    )
    assert run.error is None, run.error
    seen = shell.user_ns["seen"]
    assert seen[1:] == [(i, i) for i in range(1, 6)], seen


# -- history, for the sidebar -----------------------------------------------------------------


def test_each_phase_carries_its_history_as_percent_checkpoint_history_prints_it(
    shell: Any, run_cell: Any, tmp_path: Path
) -> None:
    from nbresume._progress import format_duration, format_size, format_when

    shell.user_ns["x"] = 1
    assert run_cell("%%checkpoint prep\ny = x * 2\n").error is None
    shell.user_ns["x"] = 2
    assert run_cell("%%checkpoint prep\ny = x * 2\n").error is None
    printed = run_cell("%checkpoint history prep").notes[0].data["text/plain"]
    (row,) = read_notebook(tmp_path / ".nbresume")["phases"]
    history = row["history"]
    assert [v["number"] for v in history] == [1, 2]
    assert [v["reason"] for v in history] == ["input 'x' changed", "first run"]
    assert [v["rollback"] for v in history] == [None, "%checkpoint rollback prep 2"]
    assert [v["current"] for v in history] == [True, False]
    lines = printed.splitlines()[1:]
    for version, line in zip(history, lines, strict=True):
        assert line.split()[0] == f"#{version['number']}"
        assert format_when(version["created"]) in line
        assert f"ran {format_duration(version['duration'])}" in line
        assert format_size(version["size"]) in line
        assert line.endswith(version["reason"])
    assert run_cell(history[1]["rollback"]).error is None  # the command works as given
    assert shell.user_ns["y"] == 2


def test_the_notebook_endpoint_gives_each_phase_its_history(server: JupyterServer) -> None:
    response = server.client().get(notebook_path(), token=True)
    (row,) = response.json()["phases"]
    assert row["history"] == []  # interrupted before any version completed
