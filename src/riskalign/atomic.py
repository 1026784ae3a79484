"""Write a folder or a small text file so that readers see either the old or the new one.

Work in progress lives next to its target as a hidden ``.<name>.<random>.partial`` entry; a
process killed mid-write leaves one behind, and ``remove_partials`` (called when a run starts or
resumes) deletes them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

SUFFIX = ".partial"


def write_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmpdir)`` then rename tmpdir to ``target``; nothing half-written on failure.
    An existing ``target`` is moved aside first and removed only once the new one is in place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=SUFFIX, dir=target.parent))
    old = None
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=SUFFIX,
                                        dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return target


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_partials(folder: Path, legacy: tuple[str, ...] = ()) -> int:
    """Delete the temp entries that interrupted writes left in ``folder``: every hidden
    ``*.partial``, and hidden entries starting with ``.<prefix>`` for each prefix in ``legacy``
    (the unsuffixed temps of earlier versions). Returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        name = p.name
        if name.startswith(".") and (name.endswith(SUFFIX)
                                     or any(name.startswith("." + x) for x in legacy)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n
