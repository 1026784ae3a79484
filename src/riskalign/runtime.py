"""How riskalign runs fast on its hardware: threads, precision, allocator and optimizer.

``configure(threads, precision)``, applied once by every training and evaluation command, sets
torch's thread count, the process's precision mode (``precision.use``: auto, fp32 or bf16) and
asks glibc's allocator to keep freed memory for reuse. Each PPO minibatch
allocates tensors of tens to hundreds of MB (vocabulary-sized logits and gradients, the tied
embedding's gradient); by default glibc serves those with fresh ``mmap`` pages and returns them
on free, so every step pays the page faults again. Keeping them in the heap changes no result;
the process holds on to memory it freed, so its resident size can stay somewhat higher.

``adamw`` builds AdamW with PyTorch's fused kernel where every parameter allows it: one pass over
the weights per step instead of one per elementwise operation. Results match the unfused
optimizer up to float rounding (tested).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# allocations below 1 GiB come from the heap (older glibc caps this at 32 MiB) ...
_MMAP_THRESHOLDS = (1 << 30, 1 << 25)
_TRIM_THRESHOLD = (1 << 31) - 1  # ... and freed heap memory is kept for reuse
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (once). False where glibc is not the allocator."""
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
            if mallopt is not None:
                mmap = any(mallopt(_M_MMAP_THRESHOLD, v) for v in _MMAP_THRESHOLDS)
                trim = bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
                _allocator_tuned = mmap and trim
        except OSError:
            pass
    return _allocator_tuned


def configure(threads: int | None, precision: str | None = None) -> None:
    """torch's intra-op threads (when given), the precision mode (when given; printed once) and
    the allocator setting above."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    if precision:
        from . import precision as mixed

        mixed.use(precision)
    keep_freed_memory()


def default_device():
    """CUDA when a GPU is visible, else the CPU: where a single process computes."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def adamw(params: list, lr: float, weight_decay: float = 0.01):
    """torch.optim.AdamW (same default weight decay), fused when all parameters are floating
    point on CPU or CUDA."""
    import torch

    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


__all__ = ["adamw", "configure", "default_device", "keep_freed_memory"]
