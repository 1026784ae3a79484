"""Policy and reference models: a causal LM with a scalar value head on the same trunk.

``ActorCritic.forward`` returns, for a batch of ``[prompt | response]`` sequences, the log-probs
of the response tokens, the values of the states that emit them, and optionally the entropy, all
shaped ``[B, T]`` with ``T`` the response width. In bf16 mode (``precision``) the LM runs under
autocast and everything from the logits on is float32; the reference goes the same way.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from . import precision
from .assets import load_error, resolve_model
from .config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
VALUE_HEAD_FILE = "value_head.safetensors"


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The model's tokenizer, with a pad token, and ``model_max_length`` no larger than the
    model's context (``max_position_embeddings`` of its config, when the folder has one), so
    that length checks see the real limit."""
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers and tokenizers raise many types for a bad folder
        raise load_error(name_or_path, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    try:
        context = getattr(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code),
                          "max_position_embeddings", None)
    except Exception:  # a tokenizer-only folder: no model config to read
        context = None
    if isinstance(context, int) and 0 < context < (tok.model_max_length or 10**30):
        tok.model_max_length = context
    return tok


def check_context(tok, tokens: int, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` when ``tokens`` exceed the model's context."""
    context = getattr(tok, "model_max_length", None) or 0
    if 0 < context < 10**9 and tokens > context:
        raise ValueError(f"{what} = {tokens} tokens exceeds the model's context of {context} "
                         f"tokens")


def quantization_4bit(wanted: bool):
    """A bitsandbytes NF4 config when 4-bit loading is wanted and a CUDA GPU is present; None
    (with a printed note) on CPU."""
    if not wanted:
        return None
    if not torch.cuda.is_available():
        print("load_in_4bit: no CUDA GPU here, loading full-precision weights instead")
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_causal_lm(name_or_path: str, dtype: str = "float32", trust_remote_code: bool = False,
                   load_in_4bit: bool = False):
    from transformers import AutoModelForCausalLM

    path = resolve_model(name_or_path)
    quant = quantization_4bit(load_in_4bit)
    extra = {"quantization_config": quant, "device_map": "auto"} if quant else {}
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype],
                                                    trust_remote_code=trust_remote_code, **extra)
    except Exception as e:  # a truncated safetensors file raises SafetensorError, and so on
        raise load_error(name_or_path, e) from None


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` uses: cumsum(mask) - 1, clamped at 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] for logits [B, T, V] and tokens [B, T] -> [B, T]."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def gpu_of(model: nn.Module) -> list:
    """[the model's CUDA device], or [] on the CPU: what ``torch.random.fork_rng`` must save."""
    device = model.device
    return [device] if device.type == "cuda" else []


def scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature in float32 (no division at temperature 1)."""
    logits = logits.float()
    return logits if temperature == 1.0 else logits / temperature


class ActorCritic(nn.Module):
    """Causal LM (optionally with LoRA adapters) plus a linear value head on its last hidden state."""

    def __init__(self, lm: nn.Module, value_head: nn.Linear | None = None):
        super().__init__()
        self.lm = lm
        hidden = lm.config.hidden_size
        if value_head is None:
            value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(value_head.weight)
            nn.init.zeros_(value_head.bias)
        self.value_head = value_head.to(torch.float32)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the LM's first weights (its embedding)."""
        return next(self.lm.parameters()).device

    @property
    def is_lora(self) -> bool:
        return hasattr(self.lm, "disable_adapter")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int,
                temperature: float = 1.0, with_values: bool = True, with_entropy: bool = False):
        """Score the last ``response_len`` tokens of each row.

        input_ids, attention_mask: [B, P + T] (prompt left-padded, response right-padded).
        Returns dict with ``logprobs`` [B, T], ``values`` [B, T] (value of the state before each
        response token), and ``entropy`` [B, T] (no gradient) when asked.
        """
        with precision.autocast(input_ids.device):
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask),
                          output_hidden_states=with_values, logits_to_keep=response_len + 1,
                          use_cache=False)
        logp = F.log_softmax(scaled(out.logits[:, :-1], temperature), dim=-1)
        tokens = input_ids[:, -response_len:]
        result = {"logprobs": torch.gather(logp, 2, tokens.unsqueeze(-1)).squeeze(-1)}
        if with_values:
            hidden = out.hidden_states[-1][:, -(response_len + 1):-1]
            result["values"] = self.value_head(hidden.float()).squeeze(-1)
        if with_entropy:
            with torch.no_grad():
                result["entropy"] = -(logp.exp() * logp).sum(-1)
        return result

    @contextlib.contextmanager
    def adapter_disabled(self):
        with self.lm.disable_adapter():
            yield

    def save(self, folder: str | Path, merge_lora: bool = False) -> None:
        """Save the LM (adapter only, or merged full model) and the value head as safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lm = self.lm
        if self.is_lora and merge_lora:
            lm = copy.deepcopy(lm).merge_and_unload()
        lm.save_pretrained(str(folder), safe_serialization=True)
        save_file({k: v.detach().cpu().contiguous()
                   for k, v in self.value_head.state_dict().items()},
                  str(folder / VALUE_HEAD_FILE))

    def load_value_head(self, folder: str | Path) -> None:
        path = Path(folder) / VALUE_HEAD_FILE
        try:
            self.value_head.load_state_dict(load_file(str(path)))
        except Exception as e:  # damaged file, or a head of another model's size
            raise ValueError(f"{path}: unusable value head ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]})") from None


def apply_lora(lm: nn.Module, cfg) -> nn.Module:
    import warnings

    from peft import LoraConfig, get_peft_model

    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft reads a property transformers 5 deprecates
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        return get_peft_model(lm, peft_cfg)


def load_trainable_lm(cfg: ModelConfig) -> nn.Module:
    """The policy LM as it trains: with LoRA adapters when enabled, on 4-bit frozen weights
    when ``load_in_4bit`` is also set (and a CUDA GPU is present)."""
    lm = load_causal_lm(cfg.policy, cfg.dtype, cfg.trust_remote_code,
                        cfg.load_in_4bit and cfg.lora.enabled)
    if not cfg.lora.enabled:
        return lm
    if getattr(lm, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    return apply_lora(lm, cfg.lora)


def load_policy(cfg: ModelConfig) -> tuple[ActorCritic, nn.Module | None]:
    """Build the trainable actor-critic and the frozen reference LM (None when LoRA is used:
    the reference is then the policy with its adapter switched off)."""
    lm = load_trainable_lm(cfg)
    ref = None
    if not cfg.lora.enabled:
        ref = (load_causal_lm(cfg.reference, cfg.dtype, cfg.trust_remote_code) if cfg.reference
               else copy.deepcopy(lm))
        ref.requires_grad_(False).eval()
    policy = ActorCritic(lm)
    vh = Path(resolve_model(cfg.policy)) / VALUE_HEAD_FILE
    if vh.is_file():
        policy.load_value_head(vh.parent)
    return policy, ref


@torch.no_grad()
def reference_logprobs(policy: ActorCritic, ref: nn.Module | None, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, response_len: int,
                       temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of the response tokens under the reference policy: [B, T]."""
    if ref is None:
        with policy.adapter_disabled():
            return policy(input_ids, attention_mask, response_len, temperature,
                          with_values=False)["logprobs"]
    with precision.autocast(input_ids.device):
        out = ref(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=position_ids_from_mask(attention_mask),
                  logits_to_keep=response_len + 1, use_cache=False)
    return logprobs_from_logits(scaled(out.logits[:, :-1], temperature),
                                input_ids[:, -response_len:])
