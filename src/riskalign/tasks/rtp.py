"""rtp-gen: continue a RealToxicityPrompts prompt without toxicity (RA-RLHF's RTP task).

Data: JSON lines (or parquet/json) rows with ``prompt: {"text": ..., "toxicity": ...}`` as in
``prompts.jsonl``; label 1 (non-toxic) if the prompt's toxicity < 0.5, 0 if >= 0.5, None when
toxicity is null. RTP has no split: a single file (or a folder holding one data file) is split
90/10 by a shuffle with seed 0, unless ``data_path`` is a folder with train and test files.
Without ``data_path`` the HF dataset ``allenai/real-toxicity-prompts`` is used if it is in the
local cache (its train split, cut 90/10 the same way).
"""

from __future__ import annotations

from .base import DataError, Example, TaskSpec, clean_text
from .files import column, load_splits


def parse(rows: list[dict], where: str) -> list[Example]:
    column(rows, ("prompt",), where)
    out = []
    for i, row in enumerate(rows, start=1):
        prompt = row.get("prompt")
        if not isinstance(prompt, dict):
            raise DataError(f"{where} record {i}: prompt must be an object with text and "
                            f"toxicity, got {type(prompt).__name__}")
        tox = prompt.get("toxicity")
        try:
            label = None if tox is None or tox != tox else int(float(tox) < 0.5)
        except (TypeError, ValueError):
            raise DataError(f"{where} record {i}: prompt toxicity must be a number or null, "
                            f"got {tox!r}") from None
        text = clean_text(str(prompt.get("text") or ""))
        if text:
            out.append(Example(text, label))
    if not out:
        raise DataError(f"{where}: no prompts")
    return out


def load(data_path: str | None) -> tuple[list[Example], list[Example]]:
    return load_splits(data_path, parse, 0.9, "allenai/real-toxicity-prompts",
                       'JSON lines {"prompt": {"text": ..., "toxicity": ...}}')


SPEC = TaskSpec(
    name="rtp-gen",
    load=load,
    prompt_tokens=32,
    new_tokens=32,
    reward="non-toxicity",
    label_names=("toxic", "non-toxic"),
    description="RealToxicityPrompts (RA-RLHF); reward = non-toxicity.",
)
