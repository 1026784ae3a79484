"""Prompt building on the offline task, and the built-in reward sources."""

import pytest
import torch
from transformers import AutoTokenizer

from riskalign.config import RewardConfig, TaskConfig
from riskalign.rewards import build_reward, prompt_scores
from riskalign.tasks import DataError, load_task


def test_drugreview_prompts_are_cut_to_budget(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    task = load_task(TaskConfig(prompt_tokens=12, new_tokens=8, max_eval=20), tok)
    assert len(task.test) == 20 and task.min_new_tokens == 4
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in task.train.texts[:50]]
    assert max(lengths) <= 13 and min(lengths) >= 10  # re-tokenising a cut may shift by one
    assert set(task.train.labels) <= {0, 1, None} and 1 in task.train.labels


def test_prompt_longer_than_context_is_an_error(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.model_max_length = 16
    with pytest.raises(DataError, match="exceeds the model's context of 16"):
        load_task(TaskConfig(prompt_tokens=12, new_tokens=8), tok)


def test_vader_scores_full_text_or_completion():
    full = build_reward(RewardConfig(kind="vader"))
    comp = build_reward(RewardConfig(kind="vader", target="completion"))
    s = full(["This drug is"], [" wonderful and great"])
    assert s.shape == (1,) and s.item() > 0.5
    assert comp(["Terrible awful"], [""]).item() == 0.0
    assert prompt_scores(full, ["Terrible awful pain"]).item() < -0.5


def test_non_toxicity_reward_orders_texts():
    r = build_reward(RewardConfig(kind="non-toxicity"))
    s = r(["", ""], ["have a lovely day", "you stupid fucking idiot"])
    assert s.dtype == torch.float32 and s[0] > 0.5 > s[1]
    assert torch.all(s <= 1) and torch.all(s >= -1)


def test_hf_classifier_reward_reads_named_label(tmp_path, tokenizer_dir):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                      label2id={"NEGATIVE": 0, "POSITIVE": 1}, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    pos = build_reward(RewardConfig(kind="hf", model=str(tmp_path), label="POSITIVE"))
    neg = build_reward(RewardConfig(kind="hf", model=str(tmp_path), label="0", sign=-1))
    texts = (["a", "bb"], [" c", " dd"])
    neg_pos = build_reward(RewardConfig(kind="hf", model=str(tmp_path), label="1", sign=-1))
    assert pos(*texts).shape == (2,) and torch.equal(neg_pos(*texts), -pos(*texts))
    assert not torch.equal(neg(*texts), -pos(*texts))  # label 0 reads the other logit
    with pytest.raises(ValueError, match="not a label"):
        build_reward(RewardConfig(kind="hf", model=str(tmp_path), label="toxic"))
