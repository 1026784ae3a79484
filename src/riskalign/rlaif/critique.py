"""Constitutional SFT data: answer, then critique and revise the answer for sampled virtues.

Per prompt: the model answers; for each of ``virtues_per_prompt`` sampled virtues it is asked the
constitution's critique request, then its revision request, in one growing conversation; the last
revision is the SFT target. Rows: {prompt, initial, virtues, critiques, revised}. A prompt whose
revision comes back empty is dropped and counted.
"""

from __future__ import annotations

import random


from ..progress import track
from .chat import ChatModel
from .constitution import Constitution


def critique_and_revise(chat: ChatModel, prompts: list[str], cons: Constitution, seed: int,
                        answer_tokens: int, critique_tokens: int, chunk: int = 16
                        ) -> tuple[list[dict], int]:
    """Rows for ``prompts`` and the number of prompts dropped for an empty revision."""
    rng = random.Random(seed)
    plans = [cons.sample_virtues(rng) for _ in prompts]
    rows, dropped = [], 0
    for start in track(range(0, len(prompts), chunk), description="critique and revise"):
        batch = prompts[start:start + chunk]
        virtues = plans[start:start + chunk]
        convs = [[{"role": "user", "content": p}] for p in batch]
        initial = chat.reply(convs, answer_tokens)
        current = list(initial)
        critiques: list[list[str]] = [[] for _ in batch]
        for step in range(len(virtues[0])):
            for c, answer in zip(convs, current):
                c.append({"role": "assistant", "content": answer})
            for c, vs in zip(convs, virtues):
                c.append({"role": "user", "content": cons.critique(vs[step])})
            crit = chat.reply(convs, critique_tokens)
            for c, vs, text, log in zip(convs, virtues, crit, critiques):
                c += [{"role": "assistant", "content": text},
                      {"role": "user", "content": cons.revision(vs[step])}]
                log.append(text)
            current = chat.reply(convs, answer_tokens)
        for p, vs, init, crit, rev in zip(batch, virtues, initial, critiques, current):
            if not rev.strip():
                dropped += 1
                continue
            rows.append({"prompt": p, "initial": init, "virtues": [v.name for v in vs],
                         "critiques": crit, "revised": rev})
    return rows, dropped


__all__ = ["critique_and_revise"]
