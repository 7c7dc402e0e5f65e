"""The dashboard server extension, served by a real ``jupyter server`` over stores of real kernels.

The server runs as a subprocess with isolated per-user Jupyter directories; it finds the extension
through the enablement file that the editable install put in the environment's config directory,
as it would for a user. Requests go through urllib, with the token, with a login's cookies only,
or with nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_helpers import JUPYTER, Client, JupyterServer, jupyter_env, strip_ansi, wait_for
from kernel_helpers import TEST_KEY, Kernel
from nbresume._store import Store, StoreReader
from nbresume.server._dashboard import (
    MAX_DEPTH,
    NotAStore,
    PathRefused,
    StoreIndex,
    find_stores,
    owner,
    read_store,
    resolve_store,
)

STORE = "project/.nbresume"
PREP = """\
%%checkpoint prep
x = 41 + 1
print(x)
"""
LOOP = """\
%%checkpoint train --every 1
import time
results = []
for i in resumable(range(40), desc="epochs"):
    time.sleep(0.1)
    results.append(i)
"""


def phases_path(store: str = STORE) -> str:
    return "/nbresume/api/phases?store=" + urllib.parse.quote(store)


def rows(client: Client, store: str = STORE) -> dict[str, dict[str, Any]]:
    response = client.get(phases_path(store), token=True)
    assert response.status == 200, response
    return {row["name"]: row for row in response.json()["phases"]}


def simulate_phase(store_dir: Path, name: str, *, running: bool, pid: int | None = None) -> None:
    """Records as the engine writes them for a phase whose loop is at item 3 of 10."""
    store = Store(store_dir)
    try:
        now = time.time()
        store.put_json(
            f"progress:{name}",
            {
                "name": name,
                "status": "running" if running else "interrupted",
                "started": now - 5,
                "finished": None,
                "updated": now,
                "pid": os.getpid() if pid is None else pid,
                "done": 3,
                "total": 10,
                "skipped": 0,
                "rate": 0.6,
                "eta": 11.7,
                "last_snapshot": now - 1,
                "loops": [],
            },
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server root with ``project/.nbresume`` made by a real kernel's ``%%checkpoint prep``."""
    root = tmp_path_factory.mktemp("site")
    kernel = Kernel(root / "project", home=root.parent / f"{root.name}-home")
    try:
        kernel.start()
        kernel.run("%load_ext nbresume")
        kernel.run(PREP)
    finally:
        kernel.shutdown()
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[JupyterServer]:
    home = site.parent / f"{site.name}-jupyter"
    home.mkdir()
    server = JupyterServer(site, home).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(server: JupyterServer) -> Client:
    return server.client()


# -- installation ---------------------------------------------------------------------------------


def test_jupyter_lists_the_extension_enabled_from_the_installed_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(JUPYTER), "server", "extension", "list"],
        env=jupyter_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = strip_ansi(result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert "nbresume.server enabled" in output, output
    assert "nbresume.server 0." in output, output  # the version, after validation
    assert "OK" in output, output


def test_the_server_loads_the_extension(server: JupyterServer) -> None:
    log = server.log()
    assert "nbresume.server | extension was successfully loaded" in log, log
    assert "JupyterServerAuthWarning" not in log, log  # every handler is authenticated


def test_only_the_server_package_imports_jupyter_server() -> None:
    code = "import sys, nbresume, nbresume.checkpoint, nbresume._magics, nbresume._commands\n"
    code += "print(sorted(m for m in sys.modules if m.startswith(('jupyter_server', 'tornado'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- the API --------------------------------------------------------------------------------------


def test_the_api_lists_the_store_and_the_phase_a_real_kernel_saved(client: Client) -> None:
    listing = client.get("/nbresume/api/stores", token=True)
    assert listing.status == 200, listing
    stores = {s["store"]: s for s in listing.json()["stores"]}
    assert STORE in stores, stores
    assert stores[STORE]["dir"] == "project"
    assert stores[STORE]["size"] > 0

    prep = rows(client)["prep"]
    assert prep["kind"] == "phase"
    assert prep["status"] == "done"
    assert prep["versions"] == 1
    assert prep["size"] > 0
    assert prep["duration"] is not None
    assert abs(prep["updated"] - time.time()) < 600
    assert not prep["running"]


def test_the_page_loads_its_script_and_style(client: Client) -> None:
    page = client.get("/nbresume/", token=True)
    assert page.status == 200, page
    assert '<meta name="nbresume-base" content="/nbresume/">' in page.text
    for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
        response = client.get(f"/nbresume/static/{asset}", token=True)
        assert response.status == 200, response
        assert kind in response.headers["Content-Type"]
    assert client.get("/nbresume/static/other.js", token=True).status == 404


def test_a_running_loop_reports_progress_and_then_done(
    server: JupyterServer, client: Client, tmp_path: Path
) -> None:
    kernel = Kernel(server.root / "project", home=tmp_path / "home").start()
    try:
        kernel.run("%load_ext nbresume")
        request = kernel.submit(LOOP)
        first = wait_for(
            lambda: (
                (r := rows(client).get("train")) and r["running"] and r["progress"]["done"] and r
            ),
            30,
        )
        assert first, rows(client)
        assert first["status"] == "running"
        assert first["progress"]["total"] == 40
        assert first["progress"]["rate"] > 0
        assert first["progress"]["eta"] is not None
        later = wait_for(
            lambda: (
                (r := rows(client)["train"])["progress"]["done"] > first["progress"]["done"] and r
            ),
            10,
        )
        assert later, "the progress record did not move"
        assert later["last_snapshot"] is not None
        reply = kernel.kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == request
        assert reply["content"]["status"] == "ok"
        done = wait_for(lambda: (r := rows(client)["train"])["status"] == "done" and r, 10)
        assert done, rows(client)["train"]
        assert done["progress"]["done"] == 40
        assert done["versions"] == 1
    finally:
        kernel.shutdown()


def test_a_killed_kernel_leaves_its_phase_interrupted_and_resumable(
    server: JupyterServer, client: Client, tmp_path: Path
) -> None:
    workdir = server.root / "killed"
    kernel = Kernel(workdir, home=tmp_path / "home").start()
    store = "killed/.nbresume"
    try:
        kernel.run("%load_ext nbresume")
        kernel.submit(LOOP)
        running = wait_for(
            lambda: (
                # NB. the kernel makes the folder, then diskcache its database: a store then
                (workdir / ".nbresume" / "cache.db").is_file()
                and (r := rows(client, store).get("train"))
                and r["running"]
                and r["last_snapshot"]
                and r
            ),
            30,
        )
        assert running, "the loop never showed as running with a snapshot"
        kernel.kill()
        row = rows(client, store)["train"]
        assert row["status"] == "interrupted"
        assert not row["running"]
        assert row["resumable"]
        assert row["last_snapshot"] is not None
    finally:
        kernel.shutdown()


# -- authentication, XSRF and paths ----------------------------------------------------------------

API = [
    "/nbresume/api/stores",
    f"/nbresume/api/phases?store={STORE}",
    f"/nbresume/api/progress?store={STORE}",
]


@pytest.mark.parametrize("path", API)
@pytest.mark.parametrize("token", [False, "wrong-token"])
def test_api_requests_without_valid_credentials_get_403(
    client: Client, path: str, token: bool | str
) -> None:
    response = client.get(path, token=token)
    assert response.status == 403, response
    assert b"prep" not in response.body


def test_the_page_without_credentials_redirects_to_the_login(client: Client) -> None:
    for path in ("/nbresume/", "/nbresume/static/dashboard.js"):
        response = client.get(path)
        assert response.status == 302, response
        assert response.headers["Location"].startswith("/login?next="), response.headers


def test_clear_without_credentials_is_refused(server: JupyterServer, client: Client) -> None:
    response = client.post("/nbresume/api/clear", {"store": STORE, "name": "prep"})
    assert response.status == 403, response
    assert "prep" in rows(client)


def test_clear_by_cookie_needs_the_xsrf_token_exactly_like_jupyters_own_api(
    server: JupyterServer, client: Client
) -> None:
    store_dir = server.root / STORE
    simulate_phase(store_dir, "scratch", running=False)
    browser = server.client().login()

    # without X-XSRFToken: refused, by our endpoint and by Jupyter's own alike
    ours = browser.post("/nbresume/api/clear", {"store": STORE, "name": "scratch"})
    theirs = browser.post("/api/contents", {"type": "notebook"})
    assert (ours.status, theirs.status) == (403, 403), (ours, theirs)
    assert "scratch" in rows(client)
    wrong = browser.post(
        "/nbresume/api/clear",
        {"store": STORE, "name": "scratch"},
        headers={"X-XSRFToken": "2|00000000|00000000000000000000000000000000|1"},
    )
    assert wrong.status == 403, wrong

    xsrf = {"X-XSRFToken": browser.cookie("_xsrf") or ""}
    cleared = browser.post("/nbresume/api/clear", {"store": STORE, "name": "scratch"}, headers=xsrf)
    assert cleared.status == 200, cleared
    assert cleared.json()["cleared"] == 1
    assert "scratch" not in rows(client)
    with StoreReader(store_dir) as reader:
        assert not [r.key for r in reader.rows() if owner(r.key) == ("phase", "scratch")]
    gone = browser.post("/nbresume/api/clear", {"store": STORE, "name": "scratch"}, headers=xsrf)
    assert gone.status == 404, gone


def test_clear_refuses_a_phase_whose_loop_runs_in_a_live_kernel(
    server: JupyterServer, client: Client
) -> None:
    simulate_phase(server.root / STORE, "busy", running=True)  # pid: this live process
    response = client.post("/nbresume/api/clear", {"store": STORE, "name": "busy"}, token=True)
    assert response.status == 409, response
    assert "interrupt it first" in response.json()["message"]
    assert rows(client)["busy"]["status"] == "running"

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    simulate_phase(server.root / STORE, "busy", running=True, pid=int(dead.stdout))
    assert rows(client)["busy"]["status"] == "interrupted"  # its process is gone
    response = client.post("/nbresume/api/clear", {"store": STORE, "name": "busy"}, token=True)
    assert response.status == 200, response


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"store": STORE},
        {"name": "prep"},
        {"store": STORE, "name": 3},
        {"store": STORE, "name": "prep", "kind": "x"},
    ],
)
def test_clear_with_a_malformed_body_is_a_400(client: Client, body: dict[str, Any]) -> None:
    response = client.post("/nbresume/api/clear", body, token=True)
    assert response.status == 400, response
    assert "prep" in rows(client)


@pytest.fixture(scope="module")
def outside(site: Path) -> Path:
    """A real store outside the server root, and a symbolic link to it from inside."""
    other = site.parent / f"{site.name}-outside"
    store = Store(other / ".nbresume")
    store.put_json("phase:secret", {"name": "secret", "status": "done", "versions": []})
    store.close()
    (site / "link").symlink_to(other, target_is_directory=True)
    return other


@pytest.mark.parametrize(
    "store",
    [
        "..",
        "../..",
        "project/../..",
        "project/../../{outside}/.nbresume",
        "{abs_outside}/.nbresume",
        "/etc",
        "link/.nbresume",
        "~/.nbresume",
    ],
)
def test_store_paths_outside_the_root_are_refused(
    client: Client, outside: Path, store: str
) -> None:
    store = store.format(outside=outside.name, abs_outside=outside)
    for path in (
        f"/nbresume/api/phases?store={urllib.parse.quote(store)}",
        f"/nbresume/api/progress?store={urllib.parse.quote(store)}",
    ):
        response = client.get(path, token=True)
        assert response.status == 403, response
        assert b"secret" not in response.body
    response = client.post("/nbresume/api/clear", {"store": store, "name": "secret"}, token=True)
    assert response.status == 403, response
    with StoreReader(outside / ".nbresume") as reader:
        assert reader.get_json("phase:secret") is not None


def test_stores_behind_symbolic_links_are_not_listed(client: Client, outside: Path) -> None:
    listed = [s["store"] for s in client.get("/nbresume/api/stores", token=True).json()["stores"]]
    assert listed
    assert "link/.nbresume" not in listed
    assert all(not s.startswith("..") for s in listed)


@pytest.mark.parametrize("store", ["", "nothing/.nbresume", "project"])
def test_a_path_inside_the_root_without_a_store_is_a_404(client: Client, store: str) -> None:
    response = client.get(phases_path(store), token=True)
    assert response.status == 404, response


# -- reading is safe for a running loop ---------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from nbresume._serialize import dumps
    from nbresume._store import open_store
    store = open_store(sys.argv[1])
    worst, count, end = 0.0, 0, time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        start = time.perf_counter()
        with store.transact():
            store.put("snap:hot:0123abcd", dumps({"count": count, "pad": bytes(200_000)}))
            store.put_json("progress:hot", {"name": "hot", "status": "running", "done": count,
                                            "total": 10**9, "updated": time.time(), "pid": 0})
        worst = max(worst, time.perf_counter() - start)
        count += 1
    print(json.dumps({"count": count, "worst": worst}))
    """
)


def test_reading_a_store_never_blocks_or_corrupts_a_loop_writing_it(
    server: JupyterServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBRESUME_KEY", TEST_KEY)  # to verify the entries; never a user's key file
    store_dir = server.root / "hot" / ".nbresume"
    Store(store_dir).close()
    env = {**os.environ, "NBRESUME_KEY": TEST_KEY}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store_dir), "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reads = 0
    failures: list[Any] = []
    seen: set[int] = set()
    try:
        while writer.poll() is None:
            response = client.get(phases_path("hot/.nbresume"), token=True)
            if response.status != 200:
                failures.append(response)
            reads += 1
            if response.status == 200:
                for row in response.json()["phases"]:
                    if row["name"] == "hot" and row["progress"]:
                        seen.add(row["progress"]["done"])
            client.get("/nbresume/api/stores", token=True)
        out, err = writer.communicate(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err
    assert not failures, f"reads failed while the loop wrote: {failures[:3]}"
    result = json.loads(out)
    assert reads > 10, (reads, result)
    assert result["count"] > 10, (reads, result)
    assert len(seen) > 3, "the dashboard did not see the loop move"
    # NB. a writer blocked by a reader would wait for diskcache's 60 s sqlite timeout
    assert result["worst"] < 5.0, f"a write waited {result['worst']:.2f}s for the readers"

    store = Store(store_dir)
    try:
        assert store.get("snap:hot:0123abcd")["count"] == result["count"] - 1
        assert store.get_json("progress:hot")["done"] == result["count"] - 1
    finally:
        store.close()
    # NB. sqlite3's own `with` ends a transaction, it does not close: Python 3.13 warns then
    with contextlib.closing(
        sqlite3.connect(f"file:{store_dir / 'cache.db'}?mode=ro", uri=True)
    ) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _digest(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return hashlib.sha256(data).hexdigest() if data else None


def test_reading_a_store_writes_nothing_to_it(server: JupyterServer, client: Client) -> None:
    store_dir = server.root / STORE
    files = [store_dir / "cache.db", store_dir / "cache.db-wal"]
    before = [_digest(f) for f in files]
    for _ in range(5):
        assert client.get("/nbresume/api/stores", token=True).status == 200
        assert client.get(phases_path(), token=True).status == 200
        assert client.get(f"/nbresume/api/progress?store={STORE}", token=True).status == 200
    assert [_digest(f) for f in files] == before


# -- finding stores (no server) ---------------------------------------------------------------------


def _make_store(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "cache.db").write_bytes(b"")


def test_find_stores_skips_hidden_dirs_node_modules_links_and_deep_trees(tmp_path: Path) -> None:
    _make_store(tmp_path / ".nbresume")
    _make_store(tmp_path / "a" / ".nbresume")
    _make_store(tmp_path / "a" / "b" / ".nbresume")
    _make_store(tmp_path / ".hidden" / ".nbresume")
    _make_store(tmp_path / "node_modules" / "pkg" / ".nbresume")
    (tmp_path / "empty" / ".nbresume").mkdir(parents=True)  # no database: not a store
    deep = tmp_path.joinpath(*["d"] * (MAX_DEPTH + 1))
    _make_store(deep / ".nbresume")
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)
    assert find_stores(tmp_path) == [".nbresume", "a/.nbresume", "a/b/.nbresume"]
    assert find_stores(tmp_path, max_dirs=1) == [".nbresume"]


def test_a_store_being_created_reads_as_empty(tmp_path: Path) -> None:
    _make_store(tmp_path / ".nbresume")  # diskcache has not created its tables yet
    view = read_store(tmp_path / ".nbresume")
    assert (view["phases"], view["size"], view["running"]) == ([], 0, 0)


def test_resolve_store_refuses_escapes(tmp_path: Path) -> None:
    _make_store(tmp_path / "root" / "p" / ".nbresume")
    _make_store(tmp_path / "out" / ".nbresume")
    (tmp_path / "root" / "l").symlink_to(tmp_path / "out")
    root = tmp_path / "root"
    assert resolve_store(root, "p/.nbresume") == (root / "p" / ".nbresume").resolve()
    for escape in ("..", "../out/.nbresume", str(tmp_path / "out" / ".nbresume"), "l/.nbresume"):
        with pytest.raises(PathRefused):
            resolve_store(root, escape)
    for missing in ("", "p", "q/.nbresume"):
        with pytest.raises(NotAStore):
            resolve_store(root, missing)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("phase:train", ("phase", "train")),
        ("progress:train", ("phase", "train")),
        ("cell:train:0123abcd", ("phase", "train")),
        ("snap:cell-1a2b3c4d:0123abcd", ("phase", "cell-1a2b3c4d")),
        ("map:cell:train:0123abcd:fit:ff:ee:00000001", ("phase", "train")),
        ("loop:<module>:3@ab12cd34", ("loop", "<module>:3@ab12cd34")),
        ("map::download:ff:ee:00000002", ("map", ":download:ff:ee")),
        ("phase:", None),
        ("cell:nohash", None),
        ("other", None),
    ],
)
def test_every_key_belongs_to_one_row(key: str, expected: tuple[str, str] | None) -> None:
    assert owner(key) == expected


# -- a new store shows within 2 s ---------------------------------------------------------------


class FrozenClock:
    """A clock that never moves: the index may not wait for any time to pass."""

    def __call__(self) -> float:
        return 1000.0


def test_a_new_store_is_listed_at_the_next_request_without_waiting(tmp_path: Path) -> None:
    index = StoreIndex(tmp_path, clock=FrozenClock())
    _make_store(tmp_path / "a" / ".nbresume")
    assert index.stores() == ["a/.nbresume"]
    _make_store(tmp_path / "b" / ".nbresume")  # a new notebook folder and its first checkpoint
    assert index.stores() == ["a/.nbresume", "b/.nbresume"]
    (tmp_path / "a" / "deep" / "er").mkdir(parents=True)
    assert index.stores() == ["a/.nbresume", "b/.nbresume"]
    _make_store(tmp_path / "a" / "deep" / "er" / ".nbresume")  # in a folder made since
    assert "a/deep/er/.nbresume" in index.stores()


def test_a_store_folder_gets_its_database_later_and_is_listed_then(tmp_path: Path) -> None:
    index = StoreIndex(tmp_path, clock=FrozenClock())
    (tmp_path / "a" / ".nbresume").mkdir(parents=True)  # diskcache makes the folder first
    assert index.stores() == []
    (tmp_path / "a" / ".nbresume" / "cache.db").write_bytes(b"")
    assert index.stores() == ["a/.nbresume"]
    (tmp_path / "a" / ".nbresume" / "cache.db").unlink()  # cleared by hand
    assert index.stores() == []


def test_an_unchanged_tree_is_not_searched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbresume.server import _dashboard

    _make_store(tmp_path / "a" / ".nbresume")
    index = StoreIndex(tmp_path, clock=FrozenClock())
    searches = []
    search = _dashboard._search
    monkeypatch.setattr(
        _dashboard, "_search", lambda *a, **k: searches.append(1) or search(*a, **k)
    )
    for _ in range(5):
        assert index.stores() == ["a/.nbresume"]
    assert len(searches) == 1


def test_the_page_polls_the_api_often_enough_to_show_a_new_run_within_2_s() -> None:
    import re

    script = (Path(_dashboard_static()) / "dashboard.js").read_text()
    intervals = {
        name: int(value) for name, value in re.findall(r"const (FAST|SLOW) = (\d+);", script)
    }
    assert intervals.keys() == {"FAST", "SLOW"}, intervals
    assert max(intervals.values()) <= 1500, intervals  # + one request: within 2 s


def _dashboard_static() -> Path:
    from nbresume.server import handlers

    return handlers.STATIC


def test_the_api_lists_a_store_created_after_the_last_request(
    server: JupyterServer, client: Client
) -> None:
    def listed() -> list[str]:
        response = client.get("/nbresume/api/stores", token=True)
        assert response.status == 200, response
        return [s["store"] for s in response.json()["stores"]]

    assert "later/.nbresume" not in listed()
    store = Store(server.root / "later" / ".nbresume")  # as a kernel's first checkpoint makes it
    try:
        store.put_json("phase:late", {"name": "late", "status": "done", "versions": []})
    finally:
        store.close()
    assert "later/.nbresume" in listed()
