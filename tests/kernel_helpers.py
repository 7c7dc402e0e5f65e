"""Real IPython kernels for tests: start, execute, SIGKILL, restart — isolated from the user's setup.

Each kernel runs in its own working directory with its own ``IPYTHONDIR`` (no user profile or
extensions), a fixed ``NBRESUME_KEY`` and ``XDG_CONFIG_HOME`` (no user key file is read or created)
and history disabled. ``PYTEST_CURRENT_TEST`` is stripped: inherited, it turns off ipykernel's
file-descriptor capture.

Outputs are collected as nbformat-like dicts, the way a frontend's output area would hold them
(``clear_output`` and ``update_display_data`` applied), so they compare directly with nbclient's.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager

__all__ = [
    "KERNEL_ARGS",
    "NOTE_KEY",
    "TEST_KEY",
    "Kernel",
    "KernelPool",
    "kernel_env",
    "merge_streams",
    "note_kinds",
    "notes",
    "own_outputs",
    "read_runs",
    "stdout_of",
    "wait_until",
]

TEST_KEY = "nbresume-test-key"  # signing key of every test kernel; never a user's key file
NOTE_KEY = "nbresume"  # metadata key of nbresume's own notes (never part of a cell's output)
KERNEL_ARGS = ["--HistoryManager.enabled=False"]
READY_TIMEOUT = 60.0  # kernels start in ~1 s, but in several on a loaded 2-core CI machine


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true (-> True) or ``timeout`` seconds passed (-> False)."""
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def kernel_env(home: Path, key: str = TEST_KEY) -> dict[str, str]:
    """The environment of a test kernel: ours, isolated under ``home``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.pop("NBRESUME_DIR", None)  # the store is ./.nbresume in the kernel's working directory
    env.pop("MPLBACKEND", None)  # kernels use matplotlib's inline backend, as in JupyterLab
    env.update(
        IPYTHONDIR=str(home / ".ipython"),
        NBRESUME_KEY=key,
        XDG_CONFIG_HOME=str(home),
    )
    return env


def read_runs(path: Path) -> list[int]:
    """The item indices a loop body appended to ``path``, one per line (a partial line is ignored)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


# -- outputs --------------------------------------------------------------------------------------


class _OutputArea:
    """Turns IOPub messages into outputs as a frontend would (the rules of nbclient's client)."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self._clear_pending = False
        self._by_display_id: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        display_id = (content.get("transient") or {}).get("display_id")
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
            return
        if kind == "update_display_data":
            for output in self._by_display_id.get(display_id or "", []):
                output["data"] = copy.deepcopy(content["data"])
                output["metadata"] = copy.deepcopy(content.get("metadata") or {})
            return
        if kind == "stream":
            output = {"output_type": "stream", "name": content["name"], "text": content["text"]}
        elif kind in ("display_data", "execute_result"):
            output = {
                "output_type": kind,
                "data": copy.deepcopy(content["data"]),
                "metadata": copy.deepcopy(content.get("metadata") or {}),
            }
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
        elif kind == "error":
            output = {
                "output_type": "error",
                "ename": content["ename"],
                "evalue": content["evalue"],
                "traceback": list(content["traceback"]),
            }
        else:  # status, execute_input, comm_*: not outputs
            return
        if self._clear_pending:
            self.outputs.clear()
            self._clear_pending = False
        if display_id:
            self._by_display_id.setdefault(display_id, []).append(output)
        self.outputs.append(output)


def merge_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive writes to one stream as one output (how they arrive in messages is timing)."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and output["output_type"] == "stream"
            and last["output_type"] == "stream"
            and last["name"] == output["name"]
        ):
            merged[-1] = {**last, "text": last["text"] + output["text"]}
        else:
            merged.append(dict(output))
    return merged


def _is_note(output: dict[str, Any]) -> bool:
    return NOTE_KEY in (output.get("metadata") or {})


def own_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A cell's own outputs: nbresume's notes dropped, streams merged."""
    return merge_streams([o for o in outputs if not _is_note(o)])


def notes(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """nbresume's notes (display_data whose metadata has the ``nbresume`` key)."""
    return [o for o in outputs if _is_note(o)]


def note_kinds(outputs: list[dict[str, Any]]) -> list[str]:
    """The kinds of nbresume's one-line notes (restored, resuming, running...), in order.

    nbresume's progress view is marked with the same metadata key but has no kind.
    """
    kinds = (o["metadata"][NOTE_KEY].get("kind") for o in notes(outputs))
    return [kind for kind in kinds if kind is not None]


def stdout_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(
        o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stdout"
    )


# -- kernels --------------------------------------------------------------------------------------


class Kernel:
    """One real IPython kernel (jupyter_client) in ``workdir``, plus a blocking client."""

    def __init__(self, workdir: Path, home: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home = Path(home) if home is not None else self.workdir.parent / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.km = KernelManager(kernel_name="python3")
        self.kc: Any = None

    def start(self, wait: bool = True) -> Kernel:
        self.km.start_kernel(
            cwd=str(self.workdir), env=kernel_env(self.home), extra_arguments=list(KERNEL_ARGS)
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        self.kc.wait_for_ready(timeout=READY_TIMEOUT)

    # -- executing ----------------------------------------------------------------------------

    def execute(
        self, code: str, timeout: float = 60.0, user_expressions: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run ``code``; -> (the execute_reply's content, the outputs it produced)."""
        area = _OutputArea()
        reply = self.kc.execute_interactive(
            code,
            timeout=timeout,
            output_hook=area,
            user_expressions=user_expressions or {},
            stop_on_error=False,
        )
        return reply["content"], area.outputs

    def run(self, code: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """`execute`, asserting the cell succeeded; -> its outputs."""
        reply, outputs = self.execute(code, timeout)
        assert reply["status"] == "ok", _describe_error(reply, outputs)
        return outputs

    def submit(self, code: str) -> str:
        """Start running ``code`` and return at once (the msg_id of the request)."""
        # NB. with the default stop_on_error=True, a request sent right after an interrupted one
        # is answered "aborted" (ipykernel drops the queue after an error), at random
        return str(self.kc.execute(code, stop_on_error=False))

    def wait_reply(self, msg_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The execute_reply's content of a `submit`-ted request (its outputs are not kept)."""
        end = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.0, end - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return dict(msg["content"])

    def eval(self, expr: str) -> str:
        """``repr(expr)`` evaluated in the kernel's namespace (not pretty-printed)."""
        reply, _ = self.execute("", user_expressions={"value": f"repr(({expr}))"})
        value = reply["user_expressions"]["value"]
        assert value["status"] == "ok", f"{expr!r} failed in the kernel: {value}"
        return str(ast.literal_eval(value["data"]["text/plain"]))

    # -- breaking -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)

    def kill(self) -> None:
        """SIGKILL the kernel process (an OOM kill): nothing in it gets to run."""
        os.kill(self.pid, signal.SIGKILL)
        assert wait_until(lambda: not self.km.is_alive(), 10), "the kernel survived SIGKILL"

    def restart(self, now: bool = True) -> None:
        """Restart in place (same ports, cwd and env; the client reconnects).

        ``now=False`` is JupyterLab's restart: SIGINT, shutdown_request, SIGTERM, then SIGKILL.
        """
        self.km.restart_kernel(now=now)
        self.wait_ready()

    def shutdown(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        finally:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)


class KernelPool:
    """Starts kernels for one test and shuts every one of them down at the end."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.kernels: list[Kernel] = []

    def start(self, name: str = "work", wait: bool = True) -> Kernel:
        kernel = Kernel(self.root / name, home=self.root / "home")
        self.kernels.append(kernel)
        return kernel.start(wait=wait)

    def start_many(self, *names: str) -> list[Kernel]:
        """Start several kernels at once (their start-up times overlap)."""
        kernels = [self.start(name, wait=False) for name in names]
        for kernel in kernels:
            kernel.wait_ready()
        return kernels

    def shutdown(self) -> None:
        errors = []
        for kernel in self.kernels:
            try:
                kernel.shutdown()
            except Exception as exc:  # one kernel's failure must not leak the others
                errors.append(exc)
        self.kernels.clear()
        if errors:
            raise errors[0]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _describe_error(reply: dict[str, Any], outputs: list[dict[str, Any]]) -> str:
    lines = [f"cell {reply.get('status')}: {reply.get('ename')}: {reply.get('evalue')}"]
    for output in outputs:
        if output["output_type"] == "stream":
            lines.append(f"[{output['name']}] {output['text']}")
        elif output["output_type"] == "error":
            lines.append(_ANSI.sub("", "\n".join(output["traceback"])))
    return "\n".join(lines)
