"""Preference pairs (prompt, chosen, rejected): reading, checking, splitting and writing.

Files: jsonl / json / csv / tsv / parquet with columns ``chosen`` and ``rejected`` and an
optional ``prompt`` (the reward model scores ``prompt + answer``); or a Hugging Face dataset name
read from the local cache. Every row is checked: a missing, empty or identical pair is an error
naming the row.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import write_text
from ..tasks import DataError
from ..tasks.files import load_hf_dataset, read_records


@dataclass(frozen=True)
class Preference:
    prompt: str
    chosen: str
    rejected: str


def parse_preferences(rows: list[dict], where: str) -> list[Preference]:
    if not rows:
        raise DataError(f"{where}: no preference rows")
    out = []
    for n, row in enumerate(rows, start=1):
        values = {}
        for key in ("chosen", "rejected"):
            v = row.get(key)
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"{where} row {n}: '{key}' is missing or empty")
            values[key] = v
        if values["chosen"] == values["rejected"]:
            raise DataError(f"{where} row {n}: chosen and rejected are identical")
        prompt = row.get("prompt") or ""
        if not isinstance(prompt, str):
            raise DataError(f"{where} row {n}: 'prompt' must be text")
        out.append(Preference(prompt, values["chosen"], values["rejected"]))
    return out


def load_preferences(source: str, split: str = "train") -> list[Preference]:
    """Rows of a local file, or of a cached Hugging Face dataset's ``split``."""
    p = Path(source)
    if p.exists():
        return parse_preferences(read_records(p), str(p))
    rows = load_hf_dataset(source, split)
    if rows is None:
        raise DataError(f"preference data {source}: no such file, and no cached Hugging Face "
                        f"dataset of that name")
    return parse_preferences(rows, f"{source} {split}")


def split_preferences(rows: list[Preference], eval_fraction: float, seed: int
                      ) -> tuple[list[Preference], list[Preference]]:
    """Seeded shuffle, then the last ``round(eval_fraction * n)`` rows (at least 1 when
    eval_fraction > 0 and n >= 2) are held out."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    k = round(eval_fraction * len(rows))
    if eval_fraction > 0 and len(rows) >= 2:
        k = max(1, min(k, len(rows) - 1))
    train = [rows[i] for i in order[:len(rows) - k]]
    held = [rows[i] for i in order[len(rows) - k:]]
    return train, held


def write_preferences(path: Path, rows: list[Preference]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in rows))


__all__ = ["Preference", "load_preferences", "parse_preferences", "split_preferences",
           "write_preferences"]
