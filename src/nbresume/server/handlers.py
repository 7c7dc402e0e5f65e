"""HTTP handlers of the dashboard: the page, its two assets and the JSON API under ``/nbresume/``.

Every handler is a Jupyter handler with ``@tornado.web.authenticated`` and ``@authorized``, so it
takes the server's own identity provider, authorizer, origin checks and XSRF protection: an API
request without credentials gets 403, the page redirects to the login page, and a POST
authenticated by cookie needs the ``_xsrf`` cookie's value in ``X-XSRFToken`` (a POST with the
token in its Authorization header is exempt, as everywhere in Jupyter).

Store work is blocking sqlite and directory walks, so it runs in the default thread pool, never on
the server's event loop.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable
from http.client import responses
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from .. import __version__
from ..errors import CheckpointError, StoreError
from ._dashboard import (
    KINDS,
    NotAStore,
    PathRefused,
    PhaseRunning,
    StoreIndex,
    clear_group,
    read_store,
    resolve_store,
)
from ._notebook import mark_group, notebook_store, read_notebook

__all__ = ["setup_handlers"]

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
AUTH_RESOURCE = "nbresume"  # what a custom Authorizer sees; GET is "read", POST "write"

T = TypeVar("T")


class _Handler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, index: StoreIndex) -> None:
        self.index = index

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await IOLoop.current().run_in_executor(None, fn, *args)

    def _store_path(self, relative: str) -> Path:
        try:
            path = resolve_store(self.index.root, relative)
        except PathRefused as exc:
            raise tornado.web.HTTPError(403, str(exc)) from None
        except NotAStore as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        if not self.index.hidden and _hidden(self.index.root, relative, path):
            # NB. as Jupyter's contents API answers for a hidden path: it is not there
            raise tornado.web.HTTPError(404, f"no checkpoint store at {relative!r}")
        return path

    def _json_object(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The request's body: a JSON object with no other keys than ``keys`` (else a 400)."""
        expected = "send a JSON object with " + ", ".join(repr(k) for k in keys)
        try:
            body = json.loads(self.request.body.decode("utf-8"), parse_constant=_no_constant)
        except ValueError as exc:  # NB. UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise tornado.web.HTTPError(400, f"the body is not JSON ({exc}); {expected}") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, f"{expected}; got a {type(body).__name__}")
        unknown = sorted(set(body) - set(keys))
        if unknown:
            raise tornado.web.HTTPError(400, f"{expected}; unknown key {unknown[0]!r}")
        return body

    async def _read(self, relative: str) -> dict[str, Any]:
        path = self._store_path(relative)
        try:
            view = await self._run(read_store, path)
        except StoreError as exc:
            raise tornado.web.HTTPError(503, str(exc)) from None
        return {"store": relative, "dir": _notebook_dir(relative), **view}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """As `APIHandler`'s, with the message as written: tornado's ``log_message`` doubles
        each ``%`` of a message raised without arguments (``%%%%checkpoint``)."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if not isinstance(exc, tornado.web.HTTPError):
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        message = exc.get_message() or responses.get(status_code, "Unknown HTTP Error")
        self.log.warning("wrote error: %r", message)
        self.finish(json.dumps({"message": message, "reason": exc.reason}))

    def _reply(self, body: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"now": time.time(), **body}))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _hidden(root: Path, relative: str, store: Path) -> bool:
    """Whether the folder holding a store is hidden by Jupyter's rule (a name starting with a dot,
    or a hidden flag), as named in the request or as it resolves (a symlink to a hidden folder)."""
    from jupyter_core.paths import is_hidden

    real_root = root.resolve()
    named = Path(os.path.normpath(root.absolute() / relative)).parent
    try:
        return any(
            folder != top and is_hidden(str(folder), str(top))
            for folder, top in ((named, root.absolute()), (store.parent, real_root))
        )
    except (OSError, ValueError):  # cannot tell: as hidden
        return True


def _notebook_dir(relative: str) -> str:
    """Where the notebooks of a store are: its parent directory, ``""`` for the root."""
    return relative.rpartition("/")[0]


class StoresHandler(_Handler):
    """``GET /nbresume/api/stores``: every store under the root, with a summary."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        stores = []
        for relative in await self._run(self.index.stores):
            try:
                view = await self._read(relative)
            except tornado.web.HTTPError as exc:  # vanished or unreadable since the search
                stores.append(
                    {"store": relative, "dir": _notebook_dir(relative), "error": exc.get_message()}
                )
                continue
            view["phases"] = len(view["phases"])
            stores.append(view)
        self._reply({"stores": stores})


class PhasesHandler(_Handler):
    """``GET /nbresume/api/phases?store=REL``: the rows of one store.

    ``{"store", "dir", "size", "running", "updated", "phases": [ROW, ...]}``; each ROW (times
    are epoch seconds, sizes bytes, durations seconds):

    - ``kind`` phase | loop | map, ``name``, ``notebook``, ``status``, ``running``, ``resumable``,
      ``updated``, ``last_snapshot``, ``snapshot_size``, ``versions``;
    - ``size``: every entry the row owns (`nbresume._sizes`), as ``%checkpoint status`` and
      ``nbresume status`` print it;
    - ``duration``: how long the current version ran, over every kernel that ran it; ``resumes``:
      how often that run was resumed from a snapshot in a new kernel (0: never);
    - ``progress``: the latest run's loop figures (``done``, ``total``, ``skipped``, ``rate``,
      ``eta``, ``elapsed`` over every kernel, ``resumes``, ``started``, ``updated``, ``loops``),
      kept for a restored phase; None if no loop ran;
    - ``history``: the kept versions as ``%checkpoint history NAME`` lists them, #1 current:
      ``{"number", "current", "created", "duration", "size", "reason", "resumes", "rollback"}``,
      ``rollback`` being the command that makes it current again (None for #1).
    """

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self._reply(await self._read(self.get_query_argument("store")))


class ProgressHandler(_Handler):
    """``GET /nbresume/api/progress?store=REL``: the progress records of one store's phases."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        view = await self._read(self.get_query_argument("store"))
        progress = [
            {"name": row["name"], "status": row["status"], **row["progress"]}
            for row in view["phases"]
            if row["progress"] is not None
        ]
        self._reply({"store": view["store"], "running": view["running"], "progress": progress})


class ClearHandler(_Handler):
    """``POST /nbresume/api/clear`` with ``{"store": REL, "name": NAME, "kind": "phase"}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self._json_object(("store", "name", "kind"))
        relative, name, kind = body.get("store"), body.get("name"), body.get("kind", "phase")
        if not isinstance(relative, str) or not isinstance(name, str) or not name:
            raise tornado.web.HTTPError(400, 'send {"store": PATH, "name": NAME}')
        if not isinstance(kind, str) or kind not in KINDS:
            raise tornado.web.HTTPError(400, f"kind must be one of {KINDS}; got {kind!r}")
        path = self._store_path(relative)
        try:
            count = await self._run(clear_group, path, kind, name)
        except NotAStore as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        except PhaseRunning as exc:
            raise tornado.web.HTTPError(409, str(exc)) from None
        except StoreError as exc:
            raise tornado.web.HTTPError(503, str(exc)) from None
        self.index.invalidate()
        self.log.info("nbresume: cleared %s %r in %s (%d entries)", kind, name, relative, count)
        self._reply({"store": relative, "name": name, "kind": kind, "cleared": count})


class NotebookHandler(_Handler):
    """``GET /nbresume/api/notebook?path=NB[&dir=ABS]``: the phases of a notebook's store (the
    JupyterLab extension's cell view, badges and sidebar); no store yet is an empty list.

    Rows as `PhasesHandler`'s, with ``saved`` for running, interrupted and failed phases: the
    items in the last snapshot (what a re-run resumes from), None when unknown.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        notebook = self.get_query_argument("path", "")
        directory = self.get_query_argument("dir", "") or None
        try:
            relative = notebook_store(self.index.root, notebook, directory)
        except PathRefused as exc:
            raise tornado.web.HTTPError(403, str(exc)) from None
        try:
            path = self._store_path(relative)
        except tornado.web.HTTPError as exc:
            if exc.status_code != 404:
                raise
            self._reply({"store": relative, "exists": False, "phases": [], "running": 0})
            return
        try:
            view = await self._run(read_notebook, path)
        except StoreError as exc:
            raise tornado.web.HTTPError(503, str(exc)) from None
        self._reply({"store": relative, "exists": True, **view})


class MarkHandler(_Handler):
    """``POST /nbresume/api/mark`` with ``{"store": REL, "name": NAME, "mark": "pending"|"done"}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        relative, name, mark = body.get("store"), body.get("name"), body.get("mark")
        if not isinstance(relative, str) or not isinstance(name, str) or not name:
            raise tornado.web.HTTPError(400, 'send {"store": PATH, "name": NAME, "mark": MARK}')
        if mark not in ("pending", "done"):
            raise tornado.web.HTTPError(400, f"mark must be pending or done; got {mark!r}")
        path = self._store_path(relative)
        try:
            text = await self._run(mark_group, path, name, mark)
        except NotAStore as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        except (PhaseRunning, CheckpointError) as exc:
            raise tornado.web.HTTPError(409, str(exc)) from None
        except StoreError as exc:
            raise tornado.web.HTTPError(503, str(exc)) from None
        self.log.info("nbresume: %s in %s", text, relative)
        self._reply({"store": relative, "name": name, "mark": mark, "text": text})


class PageHandler(JupyterHandler):
    """``GET /nbresume/``: the dashboard page (its script calls the API above)."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.xsrf_token  # noqa: B018  NB. sets the _xsrf cookie the page's POST sends back
        page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
        base = url_path_join(self.base_url, "nbresume") + "/"
        page = page.replace("{{base}}", html.escape(base)).replace("{{version}}", __version__)
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


class AssetHandler(JupyterHandler):
    """``GET /nbresume/static/NAME``: the page's script and style sheet."""

    auth_resource = AUTH_RESOURCE

    @tornado.web.authenticated
    @authorized
    def get(self, name: str) -> None:
        if name not in ASSETS:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", ASSETS[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish((STATIC / name).read_bytes())


def setup_handlers(serverapp: ServerApp) -> str:
    """Add the dashboard's handlers to the server; returns the page's URL path."""
    root = getattr(serverapp.contents_manager, "root_dir", None) or serverapp.root_dir
    # NB. Jupyter's contents API hides hidden folders unless allow_hidden: so does the dashboard
    index = StoreIndex(
        Path(root), hidden=bool(getattr(serverapp.contents_manager, "allow_hidden", False))
    )
    base = url_path_join(serverapp.web_app.settings["base_url"], "nbresume")
    api = {"index": index}
    # NB. ServerWebApplication overrides tornado's add_handlers without annotations
    serverapp.web_app.add_handlers(  # type: ignore[no-untyped-call]
        ".*$",
        [
            (url_path_join(base, "api", "stores"), StoresHandler, api),
            (url_path_join(base, "api", "phases"), PhasesHandler, api),
            (url_path_join(base, "api", "progress"), ProgressHandler, api),
            (url_path_join(base, "api", "clear"), ClearHandler, api),
            (url_path_join(base, "api", "notebook"), NotebookHandler, api),
            (url_path_join(base, "api", "mark"), MarkHandler, api),
            (url_path_join(base, "static", "([a-z.]+)"), AssetHandler),
            (base + "/?", PageHandler),
        ],
    )
    return base + "/"
