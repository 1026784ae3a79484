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


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


def _remove_stale(target: Path) -> None:
    """Temps an interrupted earlier write of this same target left next to it."""
    for p in target.parent.glob(f".{target.name}.*{SUFFIX}"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk, so a power loss after the rename cannot leave
    a named checkpoint with empty files."""
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def write_dir(target: Path, write: Callable[[Path], None], fsync: bool = False) -> Path:
    """Run ``write(tmpdir)`` then rename tmpdir to ``target``; nothing half-written on failure.
    An existing ``target`` is moved aside first, put back if the swap fails, and removed only
    once the new one is in place. The folder gets the usual permissions (umask), and with
    ``fsync`` its files reach the disk before the rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=SUFFIX, dir=target.parent))
    old = None
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_UMASK)
        if fsync:
            _fsync_tree(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=SUFFIX,
                                        dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and (old / target.name).exists() and not target.exists():
            os.replace(old / target.name, target)  # the swap failed: the old one stays
        raise
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return target


def write_text(path: Path, text: str) -> None:
    """Write through a temp file renamed into place (flushed to disk first), with the usual
    permissions (umask)."""
    path = Path(path)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
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
