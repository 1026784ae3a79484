"""Shared fixtures: the real SmolLM2 and MiniLM tokenizers with tiny randomly initialised Llama
and BERT models."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def fp32_unless_asked(monkeypatch):
    """Tests give the same numbers on any machine: ``precision=auto`` resolves to fp32 (as on
    hardware without native bf16) unless a test says otherwise, and every test starts and ends
    in fp32 mode."""
    from riskalign import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device=None: False)
    precision.use("fp32")
    yield
    precision._mode = "fp32"


@pytest.fixture(scope="session")
def tokenizer_dir():
    from riskalign.assets import prepare_default_tokenizer

    return str(prepare_default_tokenizer())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir):
    """A 2-layer Llama (hidden 32) with SmolLM2's tokenizer, saved as a normal HF folder.

    Weights drawn with std 0.5 so the random policy is peaked, not uniform over 49k tokens:
    PPO then moves it measurably within a few iterations."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, initializer_range=0.5)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(str(d), safe_serialization=True)
    tok.save_pretrained(str(d))
    return str(d)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A 2-layer BERT (hidden 32) with all-MiniLM-L6-v2's WordPiece tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from riskalign.assets import minilm_dir

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(cfg).save_pretrained(str(d), safe_serialization=True)
    tok.save_pretrained(str(d))
    return str(d)
