"""``nbresume install`` / ``uninstall``: every IPython kernel of this environment loads nbresume."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from ._cli_common import EXIT_OK, CliError
from ._run import EXTENSION

KERNEL_CONFIG = "ipython_kernel_config.json"  # read by every IPython kernel; no .d directory exists
CREATED_MARKER = ".nbresume-created"  # next to a config file that `install` created


# -- install / uninstall ------------------------------------------------------------------------


def _config_path(args: argparse.Namespace) -> Path:
    if args.prefix:
        return Path(args.prefix).absolute() / "etc" / "ipython" / KERNEL_CONFIG
    if args.user:
        from IPython.paths import get_ipython_dir

        return Path(get_ipython_dir()) / "profile_default" / KERNEL_CONFIG
    return Path(sys.prefix) / "etc" / "ipython" / KERNEL_CONFIG


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CliError(f"{str(path)!r} is not valid JSON ({exc}); fix or remove it first") from exc
    if not isinstance(config, dict):
        raise CliError(f"{str(path)!r} does not hold a JSON object; fix or remove it first")
    return config


def _extensions(config: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The ``InteractiveShellApp`` section and its ``extra_extensions`` list (created if absent)."""
    section = config.setdefault("InteractiveShellApp", {})
    if not isinstance(section, dict):
        raise CliError(f"InteractiveShellApp in {str(path)!r} is not an object; fix it first")
    extra = section.setdefault("extra_extensions", [])
    if not isinstance(extra, list):
        raise CliError(
            f"InteractiveShellApp.extra_extensions in {str(path)!r} is not a list; fix it first"
        )
    return section, extra


def _write_config(path: Path, config: dict[str, Any], *, user: bool) -> None:
    """Replace the file atomically: a kernel starting meanwhile reads the old or the new one."""
    from ._files import replacing

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
    except OSError as exc:
        hint = "" if user else "; try --user to change only your own profile"
        raise CliError(f"cannot write {str(path)!r}: {exc.strerror or exc}{hint}") from exc


def cmd_install(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _read_config(path)
    section, extra = _extensions(config, path)
    if EXTENSION in section.get("extensions", []):
        print(f"nbresume is already loaded by InteractiveShellApp.extensions in {path}")
        return EXIT_OK
    if EXTENSION in extra:
        print(f"nbresume is already installed in {path}")
        return EXIT_OK
    created = not path.exists()
    extra.append(EXTENSION)
    _write_config(path, config, user=args.user)
    if created:
        with contextlib.suppress(OSError):
            (path.parent / CREATED_MARKER).write_text(path.name + "\n")
    print(
        f"added nbresume to InteractiveShellApp.extra_extensions in {path}: new IPython kernels "
        "load it (restart running ones); undo with nbresume uninstall"
        + (" --user" if args.user else "")
    )
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _read_config(path)
    section = config.get("InteractiveShellApp")
    extra = section.get("extra_extensions") if isinstance(section, dict) else None
    if not isinstance(extra, list) or EXTENSION not in extra:
        print(f"nbresume is not installed in {path}; nothing to do")
        return EXIT_OK
    assert isinstance(section, dict)
    extra[:] = [name for name in extra if name != EXTENSION]
    if not extra:
        del section["extra_extensions"]
    if not section:
        del config["InteractiveShellApp"]
    marker = path.parent / CREATED_MARKER
    try:
        if not config and marker.is_file():  # the file is ours and holds nothing else
            path.unlink()
            print(f"removed {path} (nbresume had created it)")
        else:
            _write_config(path, config, user=args.user)
            print(f"removed nbresume from InteractiveShellApp.extra_extensions in {path}")
        marker.unlink(missing_ok=True)
    except OSError as exc:
        raise CliError(f"cannot change {str(path)!r}: {exc.strerror or exc}") from exc
    return EXIT_OK
