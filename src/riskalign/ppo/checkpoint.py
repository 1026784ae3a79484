"""Atomic checkpoints at iteration boundaries, and exact resume.

Layout under ``<output_dir>/checkpoints``::

    iter-000010/trainable.safetensors   every trainable tensor (LoRA adapter or full LM, value head)
    iter-000010/state.pt                optimizer, KL controller, RNG states, data position, config
    iter-000010/checksums.json          SHA-256 of the two files above
    latest                              name of the newest complete checkpoint

A checkpoint is written into a temporary folder, renamed into place, and only then named in
``latest`` (written to a temp file and renamed), so a run killed at any moment leaves the
previous checkpoint intact; the temp entries such a kill leaves are removed on the next save or
resume. Loading checks the checksums, so a file damaged in a way that still parses is named
rather than trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import remove_partials, write_dir, write_text

FILES = ("trainable.safetensors", "state.pt")
CHECKSUMS = "checksums.json"
FORMAT = 2  # 2: with checksums.json (a format-2 checkpoint without it is damaged)
_LEGACY_TEMPS = ("iter-", "latest.")  # temp names of versions before the .partial suffix


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the current run."""


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad}


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:])}
    if torch.cuda.is_available():  # this process's device only
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def remove_temps(root: str | Path) -> int:
    """Delete what writes interrupted by a kill left under ``root``; how many entries."""
    return remove_partials(Path(root), _LEGACY_TEMPS)


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _iteration_of(folder: Path) -> int:
    try:
        return int(folder.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def save_checkpoint(root: str | Path, iteration: int, model: torch.nn.Module, state: dict,
                    keep: int = 1) -> Path:
    """Write checkpoint ``iter-<iteration>`` atomically, then keep it and the ``keep - 1``
    newest earlier ones; a failed write (disk full, read-only folder) is a ``CheckpointError``
    and leaves the previous checkpoint as it was."""
    root = Path(root)
    name = f"iter-{iteration:06d}"

    def write(tmp: Path) -> None:
        save_file(trainable_state(model), str(tmp / FILES[0]))
        torch.save({**state, "iteration": iteration, "format": FORMAT}, tmp / FILES[1])
        sums = {f: sha256(tmp / f) for f in FILES}
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=2))

    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_temps(root)
        final = write_dir(root / name, write, fsync=True)
        write_text(root / "latest", name)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as RuntimeError
        reason = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise CheckpointError(f"could not write checkpoint {root / name} ({reason}); the "
                              f"previous checkpoint is unchanged") from None
    older = sorted((p for p in root.glob("iter-*") if p.is_dir() and p.name != name),
                   key=_iteration_of)
    stale = [p for p in older if _iteration_of(p) > iteration]  # never newer than the latest
    earlier = [p for p in older if _iteration_of(p) <= iteration]
    for old in stale + earlier[:max(0, len(earlier) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    root = Path(root)
    marker = root / "latest"
    if not marker.is_file():
        return None
    try:
        name = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{marker} is unreadable") from None
    if not name.startswith("iter-"):
        raise CheckpointError(f"{marker} names no checkpoint ({name!r}); expected iter-NNNNNN")
    path = root / name
    if not path.is_dir():
        raise CheckpointError(f"{marker} names {path.name}, which does not exist")
    return path


def verify_checksums(path: Path) -> None:
    """Compare each file with its recorded SHA-256 (checkpoints from versions without
    checksums.json are not checked)."""
    record = path / CHECKSUMS
    if not record.is_file():
        return
    try:
        sums = json.loads(record.read_text())
    except (ValueError, OSError):
        sums = None
    if not isinstance(sums, dict) or not all(isinstance(sums.get(f), str) for f in FILES):
        raise CheckpointError(f"checkpoint {path}: {CHECKSUMS} is unreadable or incomplete")
    for f in FILES:
        if not (path / f).is_file():
            raise CheckpointError(f"checkpoint {path}: {f} is missing")
        if sha256(path / f) != sums[f]:
            raise CheckpointError(f"checkpoint {path}: {f} does not match its checksum (the "
                                  f"file is damaged)")


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict:
    """Load trainable tensors into ``model`` (strictly) and return the saved state dict."""
    path = Path(path)
    verify_checksums(path)
    try:
        tensors = load_file(str(path / FILES[0]))
        state = torch.load(path / FILES[1], weights_only=True, map_location="cpu")
    except Exception as e:  # safetensors and torch raise several types for damaged files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: state.pt holds no state")
    if state.get("format", 1) >= 2 and not (path / CHECKSUMS).is_file():
        raise CheckpointError(f"checkpoint {path}: {CHECKSUMS} is missing")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    expected = {n: p.shape for n, p in params.items()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        key = (missing or extra)[0]
        raise CheckpointError(f"checkpoint {path} does not fit this model: "
                              f"{'missing' if missing else 'unexpected'} tensor '{key}'")
    for k, v in tensors.items():
        if v.shape != expected[k]:
            raise CheckpointError(f"checkpoint {path}: tensor '{k}' has shape {tuple(v.shape)}, "
                                  f"the model expects {tuple(expected[k])}")
    with torch.no_grad():
        for k, v in tensors.items():
            params[k].copy_(v)
    return state
