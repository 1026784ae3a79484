"""The constitution: virtues and the requests built from them (YAML, six virtues by default).

Keys (all optional except ``virtues``; unknown keys are an error):
``virtues`` (list of {name, description}), ``critique_request`` and ``revision_request``
(constitutional SFT), ``chain_of_thought`` and ``chain_of_thought_cue`` (a cue appended to the
critique request), ``virtues_per_prompt`` (how many virtues critique and revise each answer),
``follow_ups`` (the motivation and consequence questions), ``judge_request`` (the AI judge's
question about two texts for one aspect and one virtue), ``pointwise_request`` (its yes/no
question about one text, for the pointwise judge) and ``embedding_anchor`` (the sentence about
a virtue that the embedding judge compares each text with).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ..files import read_text
from ..tasks import DataError

DEFAULT_CONSTITUTION = Path(__file__).parent / "data" / "constitution.yaml"
FOLLOW_UP_ASPECTS = ("motivation", "consequence")
# What the judge compares for each aspect (fills {aspect} in judge_request).
ASPECT_NOUNS = {"action": "response", "motivation": "stated motivation",
                "consequence": "stated consequence"}


PLACEHOLDERS = ("virtue", "description", "aspect", "question", "first", "second", "text")
# the placeholders each template is filled with (a template may use any of its own)
TEMPLATE_FIELDS = {
    "critique_request": ("virtue", "description"),
    "revision_request": ("virtue", "description"),
    "judge_request": ("aspect", "virtue", "description", "question", "first", "second"),
    "pointwise_request": ("aspect", "virtue", "description", "question", "text"),
    "embedding_anchor": ("virtue", "description"),
}


def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template; anything else in braces (attribute or index
    access, a format spec, a conversion, a positional field) raises ``ValueError``."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"{{{shown}}} is not a plain {{name}} placeholder")
        names.append(name)
    return names


def fill(template: str, **values: str) -> str:
    """Substitute the named placeholders only (no attribute access, unlike ``str.format``);
    ``{{`` and ``}}`` stand for literal braces."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(values[name]))
    return "".join(out)


@dataclass(frozen=True)
class Virtue:
    name: str
    description: str


@dataclass
class Constitution:
    virtues: list[Virtue]
    critique_request: str
    revision_request: str
    judge_request: str
    follow_ups: dict[str, str]
    pointwise_request: str = ""
    embedding_anchor: str = ""
    chain_of_thought: bool = False
    chain_of_thought_cue: str = "Let's think step by step."
    virtues_per_prompt: int = 1
    source: str = field(default="", compare=False)

    def critique(self, v: Virtue) -> str:
        text = fill(self.critique_request, virtue=v.name, description=v.description)
        return f"{text} {self.chain_of_thought_cue}" if self.chain_of_thought else text

    def revision(self, v: Virtue) -> str:
        return fill(self.revision_request, virtue=v.name, description=v.description)

    def judge(self, aspect: str, v: Virtue, question: str, first: str, second: str) -> str:
        return fill(self.judge_request, aspect=ASPECT_NOUNS[aspect], virtue=v.name,
                    description=v.description, question=question, first=first, second=second)

    def pointwise(self, aspect: str, v: Virtue, question: str, text: str) -> str:
        return fill(self.pointwise_request, aspect=ASPECT_NOUNS[aspect], virtue=v.name,
                    description=v.description, question=question, text=text)

    def anchor(self, v: Virtue) -> str:
        return fill(self.embedding_anchor, virtue=v.name, description=v.description)

    def sample_virtues(self, rng: random.Random, k: int | None = None) -> list[Virtue]:
        """k (default virtues_per_prompt) distinct virtues, drawn with ``rng``."""
        return rng.sample(self.virtues, min(k or self.virtues_per_prompt, len(self.virtues)))


def _text(data: dict, key: str, where: str, placeholders: tuple[str, ...]) -> str:
    v = data[key]
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: '{key}' must be a non-empty string")
    try:
        used = template_fields(v)
    except ValueError as e:
        raise DataError(f"{where}: '{key}' has a broken placeholder ({e})") from None
    allowed = TEMPLATE_FIELDS.get(key, PLACEHOLDERS)
    unknown = [n for n in used if n not in allowed]
    if unknown:
        raise DataError(f"{where}: '{key}' has an unknown placeholder {{{unknown[0]}}} (it may "
                        f"use: {', '.join(allowed)})")
    for name in placeholders:
        if name not in used:
            raise DataError(f"{where}: '{key}' must contain the placeholder {{{name}}}")
    return v


def _anchor(data: dict, where: str) -> str:
    """``embedding_anchor``: a sentence about one virtue, so {virtue} (required) and
    {description} are its only placeholders."""
    return _text(data, "embedding_anchor", where, ("virtue",))


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Read and check a constitution file; keys missing from it take the default file's value."""
    default = yaml.safe_load(DEFAULT_CONSTITUTION.read_text())
    where = str(path or DEFAULT_CONSTITUTION)
    data = dict(default)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"constitution file not found: {p}")
        try:
            user = yaml.safe_load(read_text(p, "constitution file"))
        except yaml.YAMLError as e:
            raise DataError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(user, dict):
            raise DataError(f"{p}: expected a mapping of constitution keys")
        known = {f.name for f in fields(Constitution)} - {"source"}
        unknown = sorted(set(user) - known)
        if unknown:
            raise DataError(f"{p}: unknown key(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(known))})")
        data.update(user)
    virtues = data["virtues"]
    if not isinstance(virtues, list) or not virtues:
        raise DataError(f"{where}: 'virtues' must be a non-empty list")
    parsed = []
    for i, v in enumerate(virtues, start=1):
        if isinstance(v, str):
            v = {"name": v, "description": v.lower()}
        if not isinstance(v, dict) or not str(v.get("name") or "").strip():
            raise DataError(f"{where}: virtue {i} has no name")
        extra = sorted(set(v) - {"name", "description"})
        if extra:
            raise DataError(f"{where}: virtue {i} has unknown key(s) {', '.join(extra)}")
        desc = str(v.get("description") or v["name"]).strip()
        parsed.append(Virtue(str(v["name"]).strip(), desc))
    if len({v.name for v in parsed}) != len(parsed):
        raise DataError(f"{where}: virtue names must be distinct")
    follow = data["follow_ups"]
    if not isinstance(follow, dict) or set(follow) != set(FOLLOW_UP_ASPECTS) or not all(
            isinstance(q, str) and q.strip() for q in follow.values()):
        raise DataError(f"{where}: 'follow_ups' must map exactly motivation and consequence to "
                        f"non-empty questions")
    k = data["virtues_per_prompt"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(parsed):
        raise DataError(f"{where}: 'virtues_per_prompt' must be an integer in [1, "
                        f"{len(parsed)}], got {k!r}")
    if not isinstance(data["chain_of_thought"], bool):
        raise DataError(f"{where}: 'chain_of_thought' must be true or false")
    return Constitution(
        virtues=parsed,
        critique_request=_text(data, "critique_request", where, ("virtue",)),
        revision_request=_text(data, "revision_request", where, ("virtue",)),
        judge_request=_text(data, "judge_request", where, ("first", "second")),
        pointwise_request=_text(data, "pointwise_request", where, ("text", "virtue")),
        embedding_anchor=_anchor(data, where),
        follow_ups={a: follow[a].strip() for a in FOLLOW_UP_ASPECTS},
        chain_of_thought=data["chain_of_thought"],
        chain_of_thought_cue=str(data["chain_of_thought_cue"]).strip(),
        virtues_per_prompt=k, source=where)


__all__ = ["ASPECT_NOUNS", "Constitution", "DEFAULT_CONSTITUTION", "FOLLOW_UP_ASPECTS", "Virtue",
           "load_constitution"]
