"""Atomic checkpoints at iteration boundaries, and exact resume.

Layout under ``<output_dir>/checkpoints``::

    iter-000010/trainable.safetensors   every trainable tensor (LoRA adapter or full LM, value head)
    iter-000010/state.pt                optimizer, KL controller, RNG states, data position, config
    latest                              name of the newest complete checkpoint

A checkpoint is written into a temporary folder, renamed into place, and only then named in
``latest`` (written to a temp file and renamed), so a run killed at any moment leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import write_dir, write_text


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


def save_checkpoint(root: str | Path, iteration: int, model: torch.nn.Module, state: dict,
                    keep: int = 1) -> Path:
    """Write checkpoint ``iter-<iteration>`` atomically and prune older ones beyond ``keep``."""
    root = Path(root)
    name = f"iter-{iteration:06d}"

    def write(tmp: Path) -> None:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save({**state, "iteration": iteration}, tmp / "state.pt")

    final = write_dir(root / name, write)
    write_text(root / "latest", name)
    for old in sorted(p for p in root.glob("iter-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    root = Path(root)
    marker = root / "latest"
    if not marker.is_file():
        return None
    path = root / marker.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{marker} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict:
    """Load trainable tensors into ``model`` (strictly) and return the saved state dict."""
    path = Path(path)
    try:
        tensors = load_file(str(path / "trainable.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True, map_location="cpu")
    except Exception as e:  # safetensors and torch raise several types for damaged files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({type(e).__name__}: {e})") from None
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
