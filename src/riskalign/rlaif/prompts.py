"""Red-teaming prompts for RLAIF: the shipped set, a local file, or a cached Hugging Face dataset.

A ``.txt`` file holds one prompt per non-empty line. Record files (``.jsonl``, ``.json``, ``.csv``,
``.tsv``, ``.parquet``) give each row's ``prompt`` field or, for Anthropic HH-RLHF style rows, the
first human turn of the ``chosen`` dialogue. Any other name is looked up in the local Hugging Face
datasets cache (train split). Duplicates are dropped keeping the first; problems raise ``DataError``.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..tasks import DataError
from ..tasks import files

DEFAULT_PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
_HUMAN, _ASSISTANT = "Human:", "\n\nAssistant:"


def first_human_turn(dialogue: object) -> str | None:
    """The text of the first ``Human:`` turn of an HH-RLHF dialogue, or None when it has none."""
    if not isinstance(dialogue, str) or _HUMAN not in dialogue:
        return None
    start = dialogue.index(_HUMAN) + len(_HUMAN)
    end = dialogue.find(_ASSISTANT, start)
    return dialogue[start:end].strip() if end >= 0 else None


def _row_prompt(row: dict, where: str) -> str:
    prompt = row.get("prompt")
    if prompt is None:
        if "chosen" not in row:
            raise DataError(f"{where}: no 'prompt' field and no HH-RLHF style 'chosen' field")
        prompt = first_human_turn(row["chosen"])
        if prompt is None:
            raise DataError(f"{where}: no 'prompt' field and 'chosen' is not an HH-RLHF dialogue "
                            "('Human: ...' followed by '\\n\\nAssistant:')")
    if not isinstance(prompt, str):
        raise DataError(f"{where}: prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise DataError(f"{where}: empty prompt")
    return prompt.strip()


def _from_rows(rows: list[dict], where: str) -> list[str]:
    return [_row_prompt(row, f"{where} row {n}") for n, row in enumerate(rows, start=1)]


def _from_txt(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read txt file ({type(e).__name__}: {e})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_prompts(source: str | None = None) -> list[str]:
    """Unique prompts (first occurrence, order kept) from ``source``; None means the shipped set."""
    path = DEFAULT_PROMPTS if source is None else Path(source)
    ext = path.suffix.lower()
    if path.is_file():
        where = str(path)
        prompts = _from_txt(path) if ext == ".txt" else _from_rows(files.read_records(path), where)
    elif path.exists():
        raise DataError(f"{path}: not a file (expected a .txt, {', '.join(files.EXTENSIONS)} file)")
    elif ext in (".txt", *files.EXTENSIONS):
        raise DataError(f"{path}: file not found")
    else:
        where = f"{source} train"
        rows = files.load_hf_dataset(str(source), "train")
        if rows is None:
            raise DataError(f"{source}: file not found and the Hugging Face dataset {source} is "
                            "not in the local cache")
        prompts = _from_rows(rows, where)
    if not prompts:
        raise DataError(f"{where}: empty file (no prompts)")
    return list(dict.fromkeys(prompts))


def split_prompts(prompts: list[str], held_out: float | int,
                  seed: int) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` after a ``random.Random(seed)`` shuffle; ``held_out`` is a fraction
    in (0, 1) (rounded to a count) or a count >= 1."""
    ok = isinstance(held_out, (int, float)) and not isinstance(held_out, bool)
    if ok and 0 < held_out < 1:
        k = round(len(prompts) * held_out)
    elif ok and held_out >= 1 and float(held_out).is_integer():
        k = int(held_out)
    else:
        raise DataError(f"held_out must be a fraction in (0, 1) or a whole count >= 1, "
                        f"got {held_out!r}")
    if k < 1 or k >= len(prompts):
        part = "held-out" if k < 1 else "training"
        raise DataError(f"held_out={held_out!r} leaves the {part} part empty "
                        f"({k} held out of {len(prompts)} prompts)")
    shuffled = list(prompts)
    random.Random(seed).shuffle(shuffled)
    return shuffled[k:], shuffled[:k]
