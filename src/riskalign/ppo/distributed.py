"""Data parallelism through Accelerate: each process samples its share of the global batch.

Started by ``accelerate launch`` (any backend it supports: gloo on CPU, NCCL, DeepSpeed, FSDP),
the trainer runs one ``Dist``. In a single process every helper is the identity, so the
single-process path is unchanged. What must be global is made global here:

* the RA-RLHF tail: returns are gathered, B0 and the threshold come from the whole batch;
* advantage whitening: mean and variance over every process's valid tokens
  (``masked_whiten(..., reduce=dist.reduce)``);
* the loss: each process's token mean is rescaled by (its tokens * world / all tokens), so
  that the gradient average Accelerate takes equals the gradient of the global token mean;
* the KL fed to the KL controller and the logged scores.

``device`` is where the loop's tensors live: the process's accelerator device, or CUDA when a
single process sees a GPU, else the CPU.

Processes hold equal shares (``ppo.batch_size`` and ``ppo.mini_batch_size`` divisible by the
number of processes) and contiguous slices of the global batch, in rank order.
"""

from __future__ import annotations

import os

import torch

from ..runtime import default_device


class Dist:
    def __init__(self):
        self.world, self.rank, self.accelerator = 1, 0, None
        self.device = default_device()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            # riskalign's own `precision` setting decides autocast, not accelerate's config
            self.accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                                           mixed_precision="no")
            self.world = self.accelerator.num_processes
            self.rank = self.accelerator.process_index
            self.device = self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This process's contiguous slice of a global list."""
        n = len(items) // self.world
        return items[self.rank * n:(self.rank + 1) * n]

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped tensors of every process along dim 0, in rank order."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        if self.world == 1:
            return t
        t = t.clone()
        torch.distributed.all_reduce(t, op=getattr(torch.distributed.ReduceOp, op.upper()))
        return t

    def part(self, items: list) -> tuple[list, int]:
        """(this process's every world-th item, how many that is). A process left with none
        gets the first item as a stand-in, counted 0, so that it still takes the step."""
        mine = items[self.rank::self.world]
        return (mine, len(mine)) if mine else (items[:1], 0)

    def share(self, count: torch.Tensor) -> float:
        """count * world / (count summed over processes): the factor that turns this process's
        mean over ``count`` items into its share of the mean over all of them, once
        Accelerate averages the gradients. 1 in a single process."""
        if self.world == 1:
            return 1.0
        count = count.float()
        return (count * self.world / self.reduce(count).clamp(min=1)).item()

    def place(self, *models) -> None:
        """Move models (None skipped) to ``device`` before their optimizer is built. A 4-bit
        LM stays where it was loaded; only an actor-critic's value head then moves."""
        for m in models:
            if m is not None and getattr(getattr(m, "lm", m), "is_loaded_in_4bit", False):
                m = getattr(m, "value_head", None)
            if m is not None:
                m.to(self.device)

    def prepare(self, model, optimizer):
        """The model that trains (wrapped for gradient averaging) and its optimizer."""
        if self.accelerator is None:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)


__all__ = ["Dist"]
