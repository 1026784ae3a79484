"""The benchmark's shared settings: one JSON spec that both runners read.

Kept free of riskalign imports so that the TRL runner (its own virtual environment) can use it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
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


def matmul_gflops(n: int = 1024, repeats: int = 10, dtype: str = "float32") -> float:
    """Measured matrix-multiply rate (GFLOP/s) in ``dtype``: best of ``repeats`` n x n
    products."""
    import torch

    a, b = (torch.randn(n, n, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def memory_gbps(mb: int = 256, repeats: int = 5) -> float:
    """Measured memory bandwidth (GB/s): best of ``repeats`` copies of ``mb`` MB, read + write."""
    import torch

    a = torch.ones(mb * 2 ** 18)
    b = torch.empty_like(a)
    b.copy_(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best / 1e9


def machine_rates(threads: int, dtype: str = "float32") -> tuple[float, float]:
    """(matmul GFLOP/s in ``dtype``, memory GB/s) with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return matmul_gflops(dtype=dtype), memory_gbps()


def machine_rates_apart(threads: int, dtype: str = "float32") -> tuple[float, float]:
    """``machine_rates`` measured in a child process, so that the probe's 512 MB of buffers do
    not count in this process's peak memory."""
    import subprocess

    code = f"import spec; print(*spec.machine_rates({threads}, {dtype!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent)).stdout.split()
    return float(out[0]), float(out[1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_prompts(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def emit(result: dict) -> None:
    """The runner's one result line on stdout (everything else goes to stderr)."""
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
