"""jigsaw-gen: continue the start of a Wikipedia comment without toxicity (RA-RLHF's Jigsaw task).

Data (Kaggle "Jigsaw toxic comment classification"): records with ``comment_text`` and ``toxic``
(0/1 or a probability; toxic means >= 0.5; -1 or empty = unlabelled, dropped). ``data_path`` is a
folder with train and test files (e.g. Kaggle's ``train.csv`` and ``test.csv``; a
``test_labels.csv`` (or .jsonl/.parquet) next to the test file is joined on ``id`` and gives its
labels) or a single file, split 80/20 by a shuffle with seed 0. Without ``data_path`` the HF
dataset ``google/jigsaw_toxicity_pred`` is tried (it needs a manual download, so usually fails).

Labels: 1 = non-toxic, 0 = toxic. As in the paper, the train split is subsampled to 70% non-toxic
/ 30% toxic and the test split to 50/50 (see ``balance``).
"""

from __future__ import annotations

import random
from pathlib import Path

from .base import DataError, Example, TaskSpec, clean_text
from .files import EXTENSIONS, column, load_splits, read_records

TRAIN_RATIO = (70, 30)  # non-toxic : toxic
TEST_RATIO = (50, 50)


def _read(path: Path) -> list[dict]:
    """Records of ``path``; a test file gets the ``toxic`` labels of a sibling test_labels file."""
    rows = read_records(path)
    if not path.name.startswith("test"):
        return rows
    labels_file = next((path.with_name("test_labels" + ext) for ext in EXTENSIONS
                        if path.with_name("test_labels" + ext).is_file()), None)
    if labels_file is None:
        return rows
    labels = read_records(labels_file)
    column(rows, ("id",), str(path))
    column(labels, ("id",), str(labels_file))
    column(labels, ("toxic",), str(labels_file))
    by_id = {str(r.get("id")): r.get("toxic") for r in labels}
    return [{**r, "toxic": by_id.get(str(r.get("id")))} for r in rows]


def _label(value, where: str, i: int) -> int | None:
    """1 = non-toxic, 0 = toxic, None = unlabelled (missing or negative)."""
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where} record {i}: toxic must be 0/1 or a probability, "
                        f"got {value!r}") from None
    if score != score or score < 0:
        return None
    return 0 if score >= 0.5 else 1


def parse(rows: list[dict], where: str) -> list[Example]:
    column(rows, ("comment_text",), where)
    column(rows, ("toxic",), where)
    out = []
    for i, row in enumerate(rows, start=1):
        label = _label(row.get("toxic"), where, i)
        text = clean_text(str(row.get("comment_text") or ""))
        if text and label is not None:
            out.append(Example(text, label))
    if not out:
        raise DataError(f"{where}: no labelled comments")
    return out


def balance(examples: list[Example], ratio: tuple[int, int], where: str,
            seed: int = 0) -> list[Example]:
    """A seeded subsample with non-toxic : toxic = ``ratio``, in the original order.

    The class that is scarce for the ratio is kept whole; of the other, ``floor(kept * share_other
    / share_kept)`` are drawn (``random.Random(seed).sample``). E.g. 20 toxic + 100 non-toxic at
    70:30 keeps the 20 toxic and floor(20 * 70 / 30) = 46 non-toxic."""
    p_nt, p_tx = ratio
    nt = [i for i, e in enumerate(examples) if e.label == 1]
    tx = [i for i, e in enumerate(examples) if e.label == 0]
    if not nt or not tx:
        raise DataError(f"{where}: needs both toxic and non-toxic comments for the {p_nt}/{p_tx} "
                        f"sample, got {len(tx)} toxic and {len(nt)} non-toxic")
    if len(tx) * p_nt <= len(nt) * p_tx:
        k_tx, k_nt = len(tx), min(len(nt), len(tx) * p_nt // p_tx)
    else:
        k_nt, k_tx = len(nt), min(len(tx), len(nt) * p_tx // p_nt)
    rng = random.Random(seed)
    keep = set(rng.sample(nt, k_nt)) | set(rng.sample(tx, k_tx))
    return [e for i, e in enumerate(examples) if i in keep]


def load(data_path: str | None) -> tuple[list[Example], list[Example]]:
    train, test = load_splits(data_path, parse, 0.8, "google/jigsaw_toxicity_pred",
                              "columns comment_text and toxic (0/1)", read=_read)
    return (balance(train, TRAIN_RATIO, "jigsaw-gen train split"),
            balance(test, TEST_RATIO, "jigsaw-gen test split"))


SPEC = TaskSpec(
    name="jigsaw-gen",
    load=load,
    prompt_tokens=8,
    new_tokens=32,
    reward="non-toxicity",
    label_names=("toxic", "non-toxic"),
    description="Jigsaw toxic comments (RA-RLHF; train 70/30, test 50/50); reward = non-toxicity.",
)
