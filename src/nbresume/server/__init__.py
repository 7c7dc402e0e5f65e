"""The Jupyter server extension: the nbresume dashboard at ``/nbresume/``.

Enabled by ``jupyter-config/jupyter_server_config.d/nbresume.json``, which ``pip install`` puts in
``etc/jupyter/jupyter_server_config.d/`` (editable installs too). The page lists the checkpoint
stores under the server's root directory: each notebook folder's phases with status, progress of
running loops, ETA, last snapshot and size, refreshing itself while a loop runs, and a button to
clear a phase. Its JSON API lives under ``/nbresume/api/``.

This package is the only part of nbresume that imports jupyter_server, and only when the server
loads it.
"""

from __future__ import annotations

from typing import Any

from .. import __version__  # shown by `jupyter server extension list`

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbresume.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import setup_handlers

    url = setup_handlers(serverapp)
    serverapp.log.info("nbresume: checkpoint dashboard at %s", url)
