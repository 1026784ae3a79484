"""Reading files that a user, or an interrupted run, may hand over damaged.

Every failure is a ``FileFormatError`` whose one-line message names the file (and the line, for
JSON): a missing file, bad encoding, invalid or truncated JSON, a value of the wrong type.
``read_jsonl(..., torn_tail=True)`` drops a half-written last line, as a run killed while
appending to its log leaves one.
"""

from __future__ import annotations

import json
from pathlib import Path


class FileFormatError(ValueError):
    """A file is missing, unreadable or malformed; the message names it."""


def read_text(path: str | Path, what: str = "file") -> str:
    """The file's text (UTF-8)."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{what} {p}: " + ("is a folder, not a file" if p.is_dir()
                                                  else "not found"))
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{what} {p}: not UTF-8 text (byte {e.start})") from None


def read_json(path: str | Path, what: str = "file", expect: type = dict):
    """The JSON value the file holds, which must be an ``expect`` (dict by default)."""
    p = Path(path)
    try:
        value = json.loads(read_text(p, what))
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{what} {p} line {e.lineno}: invalid or truncated JSON "
                              f"({e.msg})") from None
    if not isinstance(value, expect):
        raise FileFormatError(f"{what} {p}: expected a JSON {expect.__name__}, got "
                              f"{type(value).__name__}")
    return value


def read_jsonl(path: str | Path, what: str = "file", torn_tail: bool = False) -> list[dict]:
    """One JSON object per non-empty line. With ``torn_tail``, a last line that does not parse
    (a write cut short) is dropped instead of raising."""
    p = Path(path)
    return parse_jsonl(read_text(p, what), f"{what} {p}", torn_tail)


def parse_jsonl(text: str, where: str, torn_tail: bool = False) -> list[dict]:
    """The JSON objects of ``text``, one per non-empty line; errors start with ``where``."""
    lines = text.splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if torn_tail and n == len(lines):
                break
            raise FileFormatError(f"{where} line {n}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise FileFormatError(f"{where} line {n}: expected a JSON object, got "
                                  f"{type(row).__name__}")
        rows.append(row)
    return rows


def one_line(e: BaseException) -> str:
    """An exception as one line: its message's first line, or its type."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[0] if lines else type(e).__name__
