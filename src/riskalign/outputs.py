"""Output folders: checked before a command writes, and cleaned when it fails early.

``OutputFolder(path)`` records whether the folder held anything before the command. If the
command then fails, ``discard_if_new()`` removes the folder, but only when it was absent or
empty before and the failed command left nothing of lasting value in it (no model or checkpoint
weights, no data a pipeline stage produced, no cached evaluation samples): a failure leaves the disk as it found it, and never
costs finished work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import ConfigError



def _lasting(f: Path) -> bool:
    """Finished work: weights, data a stage produced (jsonl other than a run's log), or the
    per-model samples an evaluation caches under raw/."""
    return (f.suffix == ".safetensors" or (f.suffix == ".jsonl" and f.name != "metrics.jsonl")
            or f.parent.name == "raw")


def check_output_dir(path: str | Path, field: str = "output_dir") -> Path:
    """``path`` as a folder that can be created: not a file, nor below one."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{field}: {p} is a file, not a folder")
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
