"""A real ``jupyter server`` for tests, and a small urllib client that speaks to it like a browser.

The server runs as a subprocess on a free port (``--port=0``; the port is read from its runtime
file) with its own config, data and runtime directories, so no user setting applies, while the
environment's own config directory (``<venv>/etc/jupyter``, where ``pip install`` put the
extension's enablement file) is still read, as it would be for a user.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernel_helpers import TEST_KEY, wait_until

__all__ = ["JUPYTER", "Client", "JupyterServer", "Response", "jupyter_env"]

JUPYTER = Path(sys.executable).parent / "jupyter"
START_TIMEOUT = 60.0  # a cold start imports jupyterlab's extensions; slow on a loaded CI machine


def jupyter_env(home: Path) -> dict[str, str]:
    """Our environment with Jupyter's per-user directories under ``home``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        JUPYTER_PLATFORM_DIRS="1",  # silences jupyter_core's migration warning in the server log
        XDG_CONFIG_HOME=str(home),
    )
    env.setdefault("NBRESUME_KEY", TEST_KEY)  # the key the kernels sign with: records verify
    env.pop("NBRESUME_DIR", None)
    return env


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:300]!r}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """HTTP to the server: with the token (``token=True``) or with the cookies of a login."""

    def __init__(self, server: JupyterServer) -> None:
        self.server = server
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def login(self) -> Client:
        """Log in as a browser does (``?token=`` once): later requests carry only cookies."""
        response = self.request("GET", "/nbresume/", token=True)
        assert response.status == 200, response
        assert self.cookie("_xsrf"), "the page set no _xsrf cookie"
        return self

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: bool | str = False,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        url = self.server.url + path
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"token {self.server.token if token is True else token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("POST", path, body=body, **kwargs)


class JupyterServer:
    """``jupyter server`` serving ``root``; ``stop()`` ends it (and only it)."""

    def __init__(
        self, root: Path, home: Path, app: str = "server", args: Sequence[str] = ()
    ) -> None:
        self.root = Path(root)
        self.home = Path(home)
        self.app = app
        self.args = list(args)  # more options, e.g. --ContentsManager.allow_hidden=True
        self.token = secrets.token_hex(16)
        self.env = jupyter_env(self.home)
        self.log_path = self.home / "jupyter-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> JupyterServer:
        runtime = Path(self.env["JUPYTER_RUNTIME_DIR"])
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(JUPYTER),
                    self.app,
                    "--no-browser",
                    "--allow-root",
                    "--ip=127.0.0.1",
                    "--port=0",
                    f"--ServerApp.token={self.token}",
                    f"--ServerApp.root_dir={self.root}",
                    "--ServerApp.open_browser=False",
                    *self.args,
                ],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            info: dict[str, Any] = {}

            def started() -> bool:
                assert self.process is not None
                assert self.process.poll() is None, f"jupyter server exited:\n{self.log()}"
                for path in runtime.glob("jpserver-*.json"):
                    try:
                        info.update(json.loads(path.read_text()))
                    except ValueError:  # being written
                        return False
                    return True
                return False

            assert wait_until(started, START_TIMEOUT, 0.1), f"no runtime file:\n{self.log()}"
            # (with --ServerApp.base_url=/jh/user/, as under JupyterHub, every path is below it)
            base = str(info.get("base_url") or "/").rstrip("/")
            self.url = f"http://127.0.0.1:{info['port']}{base}"
            client = Client(self)

            def answers() -> bool:
                try:
                    return client.get("/api/status", token=True).status == 200
                except urllib.error.URLError:  # the runtime file can precede the listening socket
                    return False

            assert wait_until(answers, START_TIMEOUT, 0.1), f"no /api/status:\n{self.log()}"
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> Client:
        return Client(self)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (-> it) or fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            return value
        time.sleep(interval)
