"""Mixed precision: ``precision: auto | fp32 | bf16``, one setting for every command.

``auto`` picks bf16 where the hardware multiplies bfloat16 natively (CPU flags ``avx512_bf16``
or ``amx_bf16``; on CUDA ``torch.cuda.is_bf16_supported(including_emulation=False)``), else
fp32. Elsewhere bf16 is
emulated and several times slower than float32, so ``auto`` never picks it there. ``use`` is
called once per run (by ``runtime.configure``) and prints the choice once.

bf16 here is mixed precision, not bf16 training:

- in bf16 under ``torch.autocast``: the matrix multiplies of every model forward and backward
  pass (policy, reference, value trunk, reward models, judge): linear layers, attention
  products and the LM head, whose logits come out in bf16;
- in float32: master weights and optimizer state (models load in float32), normalisation
  layers (autocast keeps them in float32; the attention softmax inside PyTorch's fused
  attention runs at the kernel's precision), the log-softmax over the vocabulary (logits are
  upcast first), log-probs, entropy, the value head, rewards, advantages, losses and KL;
- sampling runs on a bf16 copy of the policy's parameters (LoRA adapters merged in, buffers
  such as the rotary frequencies kept float32: ``GenerationCopy``), refreshed after each PPO
  update; a 4-bit quantised policy samples from itself under autocast instead. Its tokens are all that is kept from generation: the log-probs
  stored at rollout time ("old"), the reference log-probs and those of the update all come
  through the same autocast forward of the float32 model, so the policy ratio on the first
  minibatch is 1 up to float noise.
"""

from __future__ import annotations

import contextlib
import copy

import torch

MODES = ("auto", "fp32", "bf16")
_mode = "fp32"
_announced: set[str] = set()


def cpu_has_native_bf16() -> bool:
    """True when the CPU has avx512_bf16 or amx_bf16 (torch's own check, else /proc/cpuinfo)."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, n, None)
              for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(c is not None for c in checks):
        return any(c() for c in checks)
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: torch.device | str | None = None) -> bool:
    """Whether ``device`` (default: CUDA when visible, else the CPU) computes bf16 natively."""
    kind = torch.device(device).type if device is not None else (
        "cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":  # compute capability 8+ (Ampere on); older GPUs only emulate bf16
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:
            return torch.cuda.get_device_capability()[0] >= 8
    return kind == "cpu" and cpu_has_native_bf16()


def resolve(precision: str, device: torch.device | str | None = None) -> str:
    """'fp32' or 'bf16' for a setting of auto, fp32 or bf16."""
    if precision not in MODES:
        raise ValueError(f"precision must be one of {', '.join(MODES)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def use(precision: str, device: torch.device | str | None = None) -> str:
    """Resolve ``precision`` and make it the mode of this process; prints the choice once."""
    global _mode
    _mode = resolve(precision, device)
    line = (f"precision: {_mode}" + (f" (auto: {'native' if _mode == 'bf16' else 'no native'} "
                                     "bf16 on this hardware)" if precision == "auto" else ""))
    if line not in _announced:
        _announced.add(line)
        print(line, flush=True)
    return _mode


def mode() -> str:
    """The process's mode: 'fp32' (the default) or 'bf16'."""
    return _mode


def autocast(device: torch.device | str = "cpu"):
    """bf16 autocast on ``device`` in bf16 mode; a no-op context in fp32 mode."""
    if _mode != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def merged_weights(lm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LM's weights under the names of its plain (non-LoRA) model, with each LoRA adapter
    merged in: W + scale * B A (peft's ``get_delta_weight``). Float32, no copies where no
    adapter applies."""
    if not hasattr(lm, "get_base_model"):
        return dict(lm.named_parameters())
    from peft.tuners.lora import LoraLayer

    base = lm.get_base_model()
    out = {n.replace(".base_layer.", "."): p for n, p in base.named_parameters()
           if "lora_" not in n}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer) and not module.merged:
            w = module.get_base_layer().weight
            delta = sum((module.get_delta_weight(a) for a in module.active_adapters
                         if a in module.lora_A), torch.zeros_like(w))
            out[f"{name}.weight"] = w + delta
    return out


def can_copy(lm: torch.nn.Module) -> bool:
    """False for a 4-bit quantised LM (its packed weights cannot be cast or merged into)."""
    return not getattr(lm, "is_loaded_in_4bit", False)


class GenerationCopy:
    """A bf16 copy of a policy LM for sampling, LoRA merged; ``refresh`` copies the current
    weights in (after each PPO update). Holds ``model`` (a plain causal LM, eval mode)."""

    def __init__(self, lm: torch.nn.Module):
        plain = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        with _adapters_hidden(lm):
            self.model = copy.deepcopy(plain).eval()
        self.model.requires_grad_(False)
        for p in self.model.parameters():  # parameters only: buffers (RoPE) stay float32
            p.data = p.data.to(torch.bfloat16)
        self.refresh(lm)

    @torch.no_grad()
    def refresh(self, lm: torch.nn.Module) -> None:
        weights = merged_weights(lm)
        for name, p in self.model.named_parameters():
            p.copy_(weights[name])


@contextlib.contextmanager
def _adapters_hidden(lm: torch.nn.Module):
    """Deep-copy the plain model without its LoRA layers: swap each LoRA-wrapped module for its
    base layer while the copy is made, then put the wrappers back."""
    if not hasattr(lm, "get_base_model"):
        yield
        return
    from peft.tuners.lora import LoraLayer

    base = lm.get_base_model()
    swapped = []
    for name, module in list(base.named_modules()):
        if isinstance(module, LoraLayer):
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name) if parent_name else base
            swapped.append((parent, child, module))
            setattr(parent, child, module.get_base_layer())
    try:
        yield
    finally:
        for parent, child, module in swapped:
            setattr(parent, child, module)


__all__ = ["GenerationCopy", "MODES", "autocast", "can_copy", "cpu_has_native_bf16", "merged_weights", "mode",
           "native_bf16", "resolve", "use"]
