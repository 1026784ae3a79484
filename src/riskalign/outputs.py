"""Output folders: checked before a command writes, and cleaned when it fails early.

``OutputFolder(path)`` records whether the folder held anything before the command. If the
command then fails, ``discard_if_new()`` removes the folder, but only when it was absent or
empty before and the failed command left nothing of lasting value in it (no model or checkpoint
weights, no data a pipeline stage produced, no log of a started run, no cached evaluation
samples): a failure leaves the disk as it found it, and never
costs finished work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import ConfigError



def _lasting(f: Path) -> bool:
    """Finished work: weights, data a stage produced, a run's log once it holds an iteration
    (it tells what went wrong), or the per-model samples an evaluation caches under raw/."""
    return (f.suffix in (".safetensors", ".jsonl") and f.stat().st_size > 0
            or f.parent.name == "raw")


def check_output_dir(path: str | Path, field: str = "output_dir") -> Path:
    """``path`` as a folder that can be created: not a file, nor below one."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{field}: {p} is a file, not a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{field}: {p} is not writable")
        return p
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{field}: {p} lies below {parent}, which is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{field}: cannot create folders in {parent} (no write "
                                  f"permission)")
            break
    return p


class OutputFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.was_empty = not self.path.is_dir() or not any(self.path.iterdir())

    def lasting(self) -> bool:
        """Whether the folder holds weights or produced data (logs alone do not count)."""
        return any(_lasting(f) for f in self.path.rglob("*") if f.is_file())

    def discard_if_new(self) -> bool:
        """Remove the folder if it was absent or empty before and holds nothing lasting;
        True if removed."""
        if not self.was_empty or not self.path.is_dir() or self.lasting():
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True


def lock_folder(path: str | Path):
    """Hold an exclusive lock on ``path/.lock`` while the returned file object is open: a second
    run into the same folder stops with a one-line error instead of pruning the first one's
    checkpoints. The lock ends with the process (or when the object is closed)."""
    import fcntl

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    handle = open(p / ".lock", "a")  # "a": an existing lock file is left untouched
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"output_dir {p} is in use by another run") from None
    return handle
