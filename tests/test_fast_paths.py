"""The faster iteration keeps results: each shortcut against the computation it replaces."""

import copy
import platform

import pytest
import torch

from riskalign.models import ActorCritic, position_ids_from_mask, reference_logprobs
from riskalign.ppo.rollout import unpadded_span
from riskalign.runtime import adamw, keep_freed_memory


def _batch(tokenizer_dir, T=5):
    """Left-padded prompts of different lengths followed by T random response tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    enc = tok(["a", "the quick brown fox", "hello there"], return_tensors="pt", padding=True,
              padding_side="left")
    g = torch.Generator().manual_seed(0)
    response = torch.randint(0, len(tok), (3, T), generator=g)
    ids = torch.cat([enc.input_ids, response], 1)
    att = torch.cat([enc.attention_mask, torch.ones_like(response)], 1)
    return ids, att


def _lm(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_forward_scores_only_the_response_positions(tiny_model_dir, tokenizer_dir, temperature):
    """Log-probs, values and entropy equal those taken from the LM's full output by hand."""
    ids, att = _batch(tokenizer_dir)
    T, P = 5, ids.shape[1] - 5
    policy = ActorCritic(_lm(tiny_model_dir))
    torch.nn.init.normal_(policy.value_head.weight)
    with torch.no_grad():
        full = policy.lm(input_ids=ids, attention_mask=att, output_hidden_states=True,
                         position_ids=position_ids_from_mask(att))
        logp = torch.log_softmax(full.logits[:, P - 1:P + T - 1] / temperature, -1)
        want_lp = logp.gather(2, ids[:, P:, None]).squeeze(-1)
        want_v = policy.value_head(full.hidden_states[-1][:, P - 1:P + T - 1]).squeeze(-1)
        want_h = -(logp.exp() * logp).sum(-1)
        got = policy(ids, att, T, temperature, with_entropy=True)
        ref = reference_logprobs(policy, policy.lm, ids, att, T, temperature)
    assert got["logprobs"].shape == (3, T)
    torch.testing.assert_close(got["logprobs"], want_lp, atol=1e-5, rtol=0)
    torch.testing.assert_close(got["values"], want_v, atol=1e-5, rtol=0)
    torch.testing.assert_close(got["entropy"], want_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref, want_lp, atol=1e-5, rtol=0)


def test_unpadded_span_by_hand():
    att = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]])
    resp = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    assert unpadded_span(att, resp) == (1, 2)           # one shared pad column, 2 used responses
    assert unpadded_span(att[:1], resp[:1]) == (2, 2)
    assert unpadded_span(att, torch.zeros_like(resp)) == (1, 1)  # never an empty window
    no_prompt = torch.tensor([[0, 0, 0, 1, 1, 1, 1]])
    assert unpadded_span(no_prompt, resp[:1]) == (2, 2)  # keeps the column predicting token 1


def test_trimmed_minibatches_train_like_padded_ones(tiny_model_dir, tmp_path, monkeypatch):
    """update() on minibatches cut to their longest sequence ends at the same weights as on
    the full padded width."""
    import riskalign.ppo.trainer as trainer_mod
    from riskalign.ppo.rollout import collect
    from riskalign.ppo.run import build_trainer
    from test_ppo_e2e import tiny_cfg

    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=1")
    first, _ = build_trainer(cfg)
    ro = collect(first.policy, first.ref, first.tokenizer, first.shaper, first.prompts[:16],
                 first.gen, 16, {})
    ro.attention_mask[:, :2] = 0                        # two more shared pad columns on the left
    ro.response_mask[:, 5:] = 0                         # every response ends by token 5
    ro.response_mask[:4, 3:] = 0
    g = torch.Generator().manual_seed(1)
    adv, ret = torch.randn(ro.values.shape, generator=g), torch.randn(ro.values.shape, generator=g)

    spans = []
    real = trainer_mod.unpadded_span

    def recording(att, resp):
        spans.append(real(att, resp))
        return spans[-1]

    def full_width(att, resp):
        return 0, resp.shape[1]

    weights, stats = [], []
    for span in (recording, full_width):
        monkeypatch.setattr(trainer_mod, "unpadded_span", span)
        trainer, _ = build_trainer(cfg)
        start = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
        torch.manual_seed(5)
        stats.append(trainer.update(copy.deepcopy(ro), adv, ret))
        weights.append({n: p.detach().clone() for n, p in trainer.policy.named_parameters()})
    assert spans and all(f >= 2 and t <= 5 for f, t in spans)
    for key in ("policy_loss", "value_loss"):
        assert stats[0][key] == pytest.approx(stats[1][key], abs=1e-6)
    # Adam turns float rounding in near-zero gradients into steps of up to lr (3e-3), so the
    # weights agree to 1e-4 while the update itself moved them by much more
    moved = max((w - start[n]).abs().max().item() for n, w in weights[1].items())
    assert moved > 1e-2
    for name, w in weights[0].items():
        torch.testing.assert_close(w, weights[1][name], atol=1e-4, rtol=0, msg=name)


def test_fused_adamw_matches_plain_adamw():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    b, start = copy.deepcopy(a), copy.deepcopy(a)
    fast = adamw(list(a.parameters()), 1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    assert fast.defaults["fused"]
    for step in range(20):
        x = torch.randn(32, 8)
        for model, opt in ((a, fast), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)
    assert (a[0].weight - start[0].weight).abs().max() > 1e-2  # it did train


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_allocator_keeps_freed_memory_on_glibc():
    assert keep_freed_memory() is True

