"""Whether a store lives somewhere a reboot empties: a temporary directory or a tmpfs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["temporary_reason", "temporary_warning"]

TEMPORARY_FS = ("tmpfs", "ramfs")  # file systems in memory: emptied by a reboot


def temporary_reason(path: Path) -> str | None:
    """Why a store at ``path`` will not survive a reboot, or None."""
    real = os.path.realpath(path)
    for base in dict.fromkeys((tempfile.gettempdir(), "/tmp", "/dev/shm")):
        resolved = os.path.realpath(base)
        if real == resolved or real.startswith(resolved.rstrip("/") + "/"):
            return f"it is in the temporary directory {base}"
    fstype = _mount_type(real)
    if fstype in TEMPORARY_FS:
        return f"it is on a {fstype} file system, in memory"
    return None


def _mount_type(path: str) -> str | None:
    """The file system type of the mount holding ``path`` (Linux's /proc/mounts), if known."""
    try:
        text = Path("/proc/mounts").read_text()
    except OSError:
        return None
    best, fstype = "", None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, parts[2]
    return fstype


def temporary_warning(path: Path) -> str:
    """One line for a store that a reboot empties (``""`` for any other)."""
    why = temporary_reason(path)
    if why is None:
        return ""
    return f"NB. {why}: it will not survive a reboot; %checkpoint dir PATH moves it"
