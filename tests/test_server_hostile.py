"""The dashboard API against hostile requests and hidden folders, in a real ``jupyter server``.

Jupyter's contents API hides hidden files and folders unless ``ContentsManager.allow_hidden``; the
dashboard follows the same rule for the folders that hold stores. Every API input is checked: a
body that is not a JSON object, or not JSON at all, is a 400 with a one-line message, never a 500.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_helpers import Client, JupyterServer, Response
from nbresume._store import Store, StoreReader

VISIBLE = "project/.nbresume"
HIDDEN = [".hidden/.nbresume", ".hidden/deeper/.nbresume", "project/.config/.nbresume"]
ALIAS = "alias/.nbresume"  # a symlink inside the root to the hidden folder


def make_store(path: Path, name: str) -> None:
    store = Store(path)
    try:
        store.put_json(f"phase:{name}", {"name": name, "status": "done", "versions": []})
    finally:
        store.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hidden-site")
    make_store(root / VISIBLE, "shown")
    for relative in HIDDEN:
        make_store(root / relative, "secret")
    (root / "alias").symlink_to(root / ".hidden", target_is_directory=True)
    return root


def start(site: Path, name: str, *args: str) -> Iterator[JupyterServer]:
    home = site.parent / f"{site.name}-{name}"
    home.mkdir()
    server = JupyterServer(site, home, args=args).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[JupyterServer]:
    yield from start(site, "default")


@pytest.fixture(scope="module")
def client(server: JupyterServer) -> Client:
    return server.client()


def listed(client: Client) -> list[str]:
    response = client.get("/nbresume/api/stores", token=True)
    assert response.status == 200, response
    return [s["store"] for s in response.json()["stores"]]


def get(client: Client, api: str, store: str) -> Response:
    return client.get(f"/nbresume/api/{api}?store={urllib.parse.quote(store)}", token=True)


def secret_kept(site: Path, relative: str) -> bool:
    with StoreReader(site / relative) as reader:
        return reader.get_json("phase:secret") is not None


# -- hidden folders -----------------------------------------------------------------------------


def test_stores_in_hidden_folders_are_not_listed(client: Client) -> None:
    assert listed(client) == [VISIBLE]


@pytest.mark.parametrize("store", [*HIDDEN, ALIAS])
def test_stores_in_hidden_folders_are_not_served_nor_cleared(
    client: Client, site: Path, store: str
) -> None:
    for api in ("phases", "progress"):
        response = get(client, api, store)
        assert response.status == 404, response  # as Jupyter's contents API answers
        assert b"secret" not in response.body
    response = client.post("/nbresume/api/clear", {"store": store, "name": "secret"}, token=True)
    assert response.status == 404, response
    assert secret_kept(site, store if store != ALIAS else HIDDEN[0])


def test_the_visible_store_is_still_served(client: Client) -> None:
    response = get(client, "phases", VISIBLE)
    assert response.status == 200, response
    assert [row["name"] for row in response.json()["phases"]] == ["shown"]


def test_with_allow_hidden_stores_in_hidden_folders_are_listed_and_served(site: Path) -> None:
    for server in start(site, "allow-hidden", "--ContentsManager.allow_hidden=True"):
        client = server.client()
        assert set(listed(client)) == {VISIBLE, *HIDDEN}
        for store in [*HIDDEN, ALIAS]:
            response = get(client, "phases", store)
            assert response.status == 200, response
            assert [row["name"] for row in response.json()["phases"]] == ["secret"]


# -- every input checked ------------------------------------------------------------------------


def post_raw(client: Client, data: bytes) -> Response:
    request = urllib.request.Request(
        client.server.url + "/nbresume/api/clear",
        data=data,
        headers={
            "Authorization": f"token {client.server.token}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, exc.headers, exc.read())


def one_line_message(response: Response) -> str:
    message = response.json()["message"]
    assert isinstance(message, str)
    assert message
    assert "\n" not in message
    assert "Traceback" not in message
    return message


@pytest.mark.parametrize(
    "body",
    [
        [VISIBLE, "shown"],
        ["store"],
        "store",
        3,
        True,
        {"store": VISIBLE, "name": "shown", "kind": ["phase"]},
        {"store": VISIBLE, "name": "shown", "kind": None},
        {"store": [VISIBLE], "name": "shown"},
        {"store": VISIBLE, "name": {"x": 1}},
        {"store": VISIBLE, "name": "shown", "extra": 1},
    ],
)
def test_clear_with_a_body_that_is_not_the_expected_object_is_a_400(
    client: Client, site: Path, body: Any
) -> None:
    response = client.post("/nbresume/api/clear", body, token=True)
    assert response.status == 400, response
    one_line_message(response)
    assert get(client, "phases", VISIBLE).json()["phases"]


@pytest.mark.parametrize("data", [b"{", b"[1,", b"\xff\xfe{}", b"not json", b'{"store": NaN}'])
def test_clear_with_a_body_that_is_not_json_is_a_400(client: Client, data: bytes) -> None:
    response = post_raw(client, data)
    assert response.status == 400, response
    one_line_message(response)


@pytest.mark.parametrize(
    "query",
    ["store=a%00b", "store=" + "a/" * 3000 + ".nbresume", "store=project/.nbresume&store=x"],
)
def test_odd_store_queries_are_answered_4xx(client: Client, query: str) -> None:
    response = client.get(f"/nbresume/api/phases?{query}", token=True)
    assert 400 <= response.status < 500, response
