"""The dashboard's API on a server run with its token disabled (``--IdentityProvider.token=''``,
as some users do on a trusted machine): a page of another site must still not clear a store.

The browser of the user sends no token and, cross-site, no ``_xsrf`` value: Jupyter's XSRF check
is what stands between that page and the Clear endpoint, as for Jupyter's own API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_helpers import JupyterServer
from nbresume._store import Store, StoreReader

STORE = "project/.nbresume"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    site = tmp_path_factory.mktemp("site")
    home = site.parent / f"{site.name}-jupyter"
    home.mkdir()
    server = JupyterServer(site, home)
    server.token = ""  # NB. the helper passes --ServerApp.token=: empty disables it
    server.start()
    try:
        yield server
    finally:
        server.stop()


def phase_keys(store_dir: Path) -> list[str]:
    with StoreReader(store_dir) as reader:
        return [r.key for r in reader.rows()]


def test_a_cross_site_clear_without_the_xsrf_value_is_refused_with_no_token(
    server: JupyterServer,
) -> None:
    store_dir = server.root / STORE
    store = Store(store_dir)
    try:
        store.put_json("phase:scratch", {"name": "scratch", "status": "done", "versions": []})
    finally:
        store.close()
    client = server.client()
    listing = client.get("/nbresume/api/stores")  # no token: the server asks for none
    assert listing.status == 200, listing
    body = {"store": STORE, "name": "scratch"}
    cross_site = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}
    ours = client.post("/nbresume/api/clear", body, headers=cross_site)
    theirs = client.post("/api/contents", {"type": "notebook"}, headers=cross_site)
    # NB. Jupyter answers a cross-origin API request 404 (its origin check), its own API alike
    assert ours.status == theirs.status, (ours, theirs)
    assert ours.status in (403, 404), ours
    same_site = client.post("/nbresume/api/clear", body)  # no cookie, no _xsrf value
    assert same_site.status == 403, same_site
    assert "phase:scratch" in phase_keys(store_dir)
