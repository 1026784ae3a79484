"""Reading task data from local files (or the local Hugging Face datasets cache).

Supported files: ``.csv`` and ``.tsv`` (header row; only empty cells are missing values),
``.jsonl`` / ``.json`` (one JSON object per line, or one JSON list of objects) and ``.parquet``.
Every record is a ``dict``; missing values (empty cells, NaN) become ``None``. Problems raise
``DataError`` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from ..files import FileFormatError, one_line, parse_jsonl
from .base import DataError, Example

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
_SUBDIRS = ("", "plain_text", "data")


def _missing_to_none(v, na):
    return None if v is na or (isinstance(v, float) and math.isnan(v)) else v


def _read_json(path: Path, text: str) -> list:
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {e.lineno}: invalid JSON ({e.msg})") from None
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise DataError(f"{path}: item {i} of the JSON list is not an object")
        return rows
    try:
        return parse_jsonl(text, str(path))
    except FileFormatError as e:
        raise DataError(str(e)) from None


def _read_table(path: Path, ext: str) -> list[dict]:
    import pandas as pd

    if ext == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",", keep_default_na=False,
                         na_values=[""])
    rows = df.to_dict("records")
    return [{k: _missing_to_none(v, pd.NA) for k, v in row.items()} for row in rows]


def read_records(path) -> list[dict]:
    """All records of a csv/tsv/jsonl/json/parquet file, as dicts."""
    path = Path(path)
    ext = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if ext not in EXTENSIONS:
        raise DataError(f"{path}: unsupported file type '{ext}' (use {', '.join(EXTENSIONS)})")
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file")
        if ext in (".jsonl", ".json"):
            rows = _read_json(path, path.read_text(encoding="utf-8"))
        else:
            rows = _read_table(path, ext)
    except DataError:
        raise
    except Exception as e:  # pandas/pyarrow/unicode/OS errors: all mean "cannot read this file"
        raise DataError(f"{path}: cannot read {ext[1:]} file ({one_line(e)})") from None
    if not rows:
        raise DataError(f"{path}: empty file (no records)")
    return rows


def find_split_file(folder, split: str) -> Path | None:
    """``<split>.<ext>`` or a first shard ``<split>-*.<ext>`` in ``folder``, ``folder/plain_text``
    or ``folder/data`` (first match in that order; exact names before shards)."""
    for sub in _SUBDIRS:
        d = Path(folder) / sub if sub else Path(folder)
        if not d.is_dir():
            continue
        for pattern in (f"{split}{{}}", f"{split}-*{{}}"):
            for ext in EXTENSIONS:
                hits = sorted(p for p in d.glob(pattern.format(ext)) if p.is_file())
                if hits:
                    return hits[0]
    return None


def locate(data_path) -> tuple[Path, Path | None]:
    """``(train_file, test_file)`` for a folder with both split files, else ``(file, None)`` for a
    single file, a folder with only a train file, or a folder holding exactly one data file."""
    p = Path(data_path)
    if not p.exists():
        raise DataError(f"{p}: not found")
    if p.is_file():
        return p, None
    train, test = find_split_file(p, "train"), find_split_file(p, "test")
    if train and test:
        return train, test
    if train:
        return train, None
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
    if len(files) == 1:
        return files[0], None
    raise DataError(f"{p}: expected train and test files (train.csv/.jsonl/.parquet, ...) or a "
                    f"single data file, found {len(files)} data files")


def seeded_split(examples: list[Example], train_frac: float, seed: int = 0):
    """Shuffle with ``random.Random(seed)``; the first ``floor(n * train_frac)`` go to train."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    k = int(len(examples) * train_frac)
    return [examples[i] for i in order[:k]], [examples[i] for i in order[k:]]


def load_hf_dataset(name: str, split: str) -> list[dict] | None:
    """The split from the local HF datasets cache, or None when it cannot be loaded."""
    try:
        from datasets import load_dataset

        return [dict(r) for r in load_dataset(name, split=split)]
    except Exception:
        return None


def load_splits(data_path, parse, train_frac: float, hf_name: str, hint: str,
                read=read_records) -> tuple[list[Example], list[Example]]:
    """``(train, test)`` Examples via ``parse(records, where)``.

    With ``data_path``: the files found by ``locate``; a single file is split by
    ``seeded_split(train_frac, seed=0)``. Without: the HF cache of ``hf_name`` (its train and test
    splits, or its train split cut by ``seeded_split`` when it has no test split)."""
    if data_path:
        train_f, test_f = locate(data_path)
        train = parse(read(train_f), str(train_f))
        if test_f is not None:
            return train, parse(read(test_f), str(test_f))
        return seeded_split(train, train_frac)
    rows = load_hf_dataset(hf_name, "train")
    if rows is None:
        raise DataError(f"no task.data_path given and the Hugging Face dataset {hf_name} is not "
                        f"in the local cache; pass task.data_path=<file or folder> with {hint}")
    train = parse(rows, f"{hf_name} train")
    test_rows = load_hf_dataset(hf_name, "test")
    if test_rows is None:
        return seeded_split(train, train_frac)
    return train, parse(test_rows, f"{hf_name} test")


def column(rows: list[dict], names: tuple[str, ...], where: str) -> str:
    """The first of ``names`` that the first record has (DataError when none)."""
    for name in names:
        if rows and name in rows[0]:
            return name
    raise DataError(f"{where}: missing column {' or '.join(names)}")
