"""imdb-gen: continue the beginning of an IMDB movie review positively (RA-RLHF's IMDB task).

Data: records with a text column ``text`` (or ``review``) and a label column ``label`` (or
``sentiment``) holding 0/1, "neg"/"pos" or "negative"/"positive" (-1 or empty = unlabelled,
label None). ``data_path`` is a folder with train and test files (``train.csv``,
``test.jsonl``, ``train-00000-of-00001.parquet``, ... also under ``plain_text/`` or ``data/``)
or a single csv/tsv/jsonl/json/parquet file, which is split 80/20 by a shuffle with seed 0.
Without ``data_path`` the HF dataset ``stanfordnlp/imdb`` is used if it is in the local cache.
Texts are cleaned with ``clean_text`` (HTML entities and ``<br />`` removed).

The default reward is VADER; with the IMDB classifier use ``reward.kind=hf
reward.model=lvwerra/distilbert-imdb reward.label=POSITIVE``.
"""

from __future__ import annotations

from .base import DataError, Example, TaskSpec, clean_text
from .files import column, load_splits

_LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1, "-1": None}


def _label(value, where: str, i: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        key = str(int(value)) if float(value).is_integer() else str(value)
    else:
        key = str(value).strip().lower()
    if key not in _LABELS:
        raise DataError(f"{where} record {i}: label must be 0/1, neg/pos or negative/positive, "
                        f"got {value!r}")
    return _LABELS[key]


def parse(rows: list[dict], where: str) -> list[Example]:
    text_col = column(rows, ("text", "review"), where)
    label_col = column(rows, ("label", "sentiment"), where)
    out = []
    for i, row in enumerate(rows, start=1):
        label = _label(row.get(label_col), where, i)
        text = clean_text(str(row.get(text_col) or ""))
        if text:
            out.append(Example(text, label))
    if not out:
        raise DataError(f"{where}: no reviews")
    return out


def load(data_path: str | None) -> tuple[list[Example], list[Example]]:
    return load_splits(data_path, parse, 0.8, "stanfordnlp/imdb",
                       "columns text (or review) and label (0/1 or neg/pos)")


SPEC = TaskSpec(
    name="imdb-gen",
    load=load,
    prompt_tokens=64,
    new_tokens=48,
    reward="vader",
    tail_threshold=-0.5,
    label_names=("negative", "positive"),
    description="IMDB reviews (RA-RLHF); continue positively. Reward = VADER by default.",
)
