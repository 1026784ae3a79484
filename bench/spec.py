"""The benchmark's shared settings: one JSON spec that both runners read.

Kept free of riskalign imports so that the TRL runner (its own virtual environment) can use it.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


# riskalign's phases, as the trainer times them (``time_<phase>`` in its stats).
PHASES = ("generate", "score", "forward_policy", "forward_ref", "update")


@dataclass
class Spec:
    model: str                     # policy folder (a Llama with the SmolLM2 tokenizer)
    reward: str                    # sequence classifier folder, same tokenizer (TRL passes ids)
    prompts: str                   # jsonl with "ids" (token ids) and "text" per prompt
    batch_size: int = 8
    mini_batch_size: int = 8
    ppo_epochs: int = 4
    response_length: int = 32
    kl_coef: float = 0.05
    learning_rate: float = 1e-5
    temperature: float = 1.0
    threads: int = 2
    seed: int = 0
    warmup: int = 1
    iterations: int = 3
    extra: dict = field(default_factory=dict)   # runner-specific (e.g. the ensemble folder)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, text: str) -> "Spec":
        return cls(**json.loads(text))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_prompts(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def emit(result: dict) -> None:
    """The runner's one result line on stdout (everything else goes to stderr)."""
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
