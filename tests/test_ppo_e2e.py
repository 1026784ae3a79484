"""End-to-end PPO on a tiny random Llama with the real tokenizer and the offline task."""

import json

import pytest
import torch

from riskalign.config import load_config
from riskalign.ppo.run import build_trainer, run_ppo


def tiny_cfg(model_dir, out, *extra):
    return load_config(None, [
        f"model.policy={model_dir}", f"output_dir={out}", "seed=3",
        "task.prompt_tokens=8", "task.new_tokens=8", "task.min_new_tokens=8", "task.max_train=64",
        "task.max_eval=16", "reward.kind=python", "reward.function=easy_rewards:short_text",
        "ppo.learning_rate=3e-3", "ppo.batch_size=16", "ppo.mini_batch_size=8",
        "ppo.forward_batch_size=16", "ppo.ppo_epochs=2", "ppo.init_kl_coef=0.01",
        "log.tensorboard=false", "log.eval_prompts=0", *extra])


def test_mean_score_rises_on_easy_reward(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=10",
                   "log.checkpoint_every=100", "ppo.learning_rate=3e-2")
    trainer, _ = build_trainer(cfg)
    history = trainer.train()
    first = sum(h["score_mean"] for h in history[:3]) / 3
    last = sum(h["score_mean"] for h in history[-3:]) / 3
    assert last > first + 0.03, (first, last)
    for key in ("kl", "beta", "kl_coef_mean", "value_explained_var", "policy_loss", "value_loss",
                "clipfrac", "entropy", "response_len",
                "time_generate", "time_score", "time_forward", "time_update"):
        assert key in history[-1]


def _final_params(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}


def test_killed_and_resumed_equals_uninterrupted(tiny_model_dir, tmp_path):
    extra = ("ppo.total_iterations=4", "log.checkpoint_every=2")
    full, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / "a", *extra))
    full.train()
    expected = _final_params(full)

    killed, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / "b", *extra))

    def kill(stats):
        if stats["iteration"] == 3:  # after the checkpoint at 2, before the one at 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        killed.train(on_step=kill)
    resumed, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / "b", *extra))
    assert resumed.resume() and resumed.iteration == 2
    resumed.train()
    got = _final_params(resumed)
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name
    assert resumed.kl_ctl.value == full.kl_ctl.value


def test_same_seed_same_result(tiny_model_dir, tmp_path):
    extra = ("ppo.total_iterations=2", "log.checkpoint_every=100")
    runs = []
    for name in ("x", "y"):
        t, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / name, *extra))
        hist = t.train()
        runs.append((hist[-1]["score_mean"], _final_params(t)))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())


def test_run_ppo_writes_outputs_and_lora(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=2", "log.eval_prompts=8",
                   "model.lora.enabled=true", "model.lora.r=4")
    summary = run_ppo(cfg)
    assert {"score_before", "score_after", "seconds_per_iteration", "peak_rss_mb"} <= set(summary)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [1, 2]
    assert (tmp_path / "final" / "model.safetensors").is_file()
    assert (tmp_path / "final" / "value_head.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "latest").read_text() == "iter-000002"


def test_alpha_one_reproduces_rlhf_bit_for_bit(tiny_model_dir, tmp_path):
    from riskalign import SoftRiskSelector

    extra = ("ppo.total_iterations=2", "log.checkpoint_every=100")
    plain, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / "p", *extra))
    plain.train()
    risk, _ = build_trainer(tiny_cfg(tiny_model_dir, tmp_path / "r", *extra),
                            select=SoftRiskSelector(1.0, 0, 0.95, "kl_return", 2))
    hist = risk.train()
    assert hist[-1]["risk_b0"] == 16
    a, b = _final_params(plain), _final_params(risk)
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_alpha_below_one_trains_on_the_tail_only(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=2", "risk.alpha=0.25",
                   "risk.warm_start=0", "risk.rho=0.5", "risk.rank_by=score",
                   "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    hist = trainer.train()
    assert [h["risk_b0"] for h in hist] == [4, 4] and [h["kept"] for h in hist] == [4, 4]
    assert all(h["kept_score_mean"] <= h["score_mean"] + 1e-6 for h in hist)


def test_dropped_trajectories_do_not_touch_the_update(tiny_model_dir, tmp_path, monkeypatch):
    """Altering the tokens, log-probs and values of the dropped trajectories changes nothing."""
    import riskalign.ppo.trainer as trainer_mod
    from riskalign import select_tail

    real_collect = trainer_mod.collect

    def altered_collect(*args, **kwargs):
        ro = real_collect(*args, **kwargs)
        keep = set(select_tail(ro.scores, 4).tolist())
        drop = torch.tensor([i for i in range(len(ro)) if i not in keep])
        T = ro.response_len
        ro.input_ids[drop, -T:] = (ro.input_ids[drop, -T:] + 7) % 1000
        ro.logprobs[drop] -= 1.0
        ro.ref_logprobs[drop] += 2.0
        ro.values[drop] += 3.0
        return ro

    results = []
    for name, patch in (("plain", False), ("altered", True)):
        if patch:
            monkeypatch.setattr(trainer_mod, "collect", altered_collect)
        cfg = tiny_cfg(tiny_model_dir, tmp_path / name, "ppo.total_iterations=1",
                       "risk.alpha=0.25", "risk.warm_start=0", "risk.rho=0.5",
                       "risk.rank_by=score", "log.checkpoint_every=100")
        t, _ = build_trainer(cfg)
        t.train()
        results.append(_final_params(t))
    assert all(torch.equal(v, results[1][k]) for k, v in results[0].items())


def test_trainer_samples_through_its_generator(tiny_model_dir, tmp_path):
    """A custom engine replaces generation without touching the trainer; it hears of each update."""
    from riskalign.ppo.generation import HFGenerator

    class Recording(HFGenerator):
        def __init__(self):
            self.prompts, self.updates = [], 0

        def generate(self, policy, tokenizer, prompts, settings, batch_size):
            self.prompts.append(list(prompts))
            return super().generate(policy, tokenizer, prompts, settings, batch_size)

        def update_weights(self, policy):
            self.updates += 1

    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=2", "log.checkpoint_every=100")
    plain, task = build_trainer(cfg)
    expected = [plain.step()["score_mean"] for _ in range(2)]
    trainer, _ = build_trainer(cfg)
    trainer.generator = rec = Recording()
    got = [trainer.step()["score_mean"] for _ in range(2)]
    assert got == expected                      # same samples as the default engine
    assert len(rec.prompts) == 2 and all(len(p) == 16 for p in rec.prompts) and rec.updates == 2
    assert {"time_forward_policy", "time_forward_ref"} <= set(trainer.step())
    # held-out scoring samples through the trainer's engine too, with the same draws
    from riskalign.ppo.run import _held_out_score

    rec.prompts.clear()
    assert _held_out_score(trainer, task, 4, seed=7) == _held_out_score(trainer, task, 4, seed=7)
    assert rec.prompts == [task.test.texts[:4]] * 2


@pytest.mark.parametrize("minibatches, mb, sizes", [("batch", 8, [2, 2, 2, 2]),
                                                     ("kept", 8, [4, 4]),
                                                     ("batch", 2, [1] * 8)])
def test_tail_minibatches_by_hand(tiny_model_dir, tmp_path, monkeypatch, minibatches, mb, sizes):
    """B = 16, a tail of B0 = 4, 2 epochs. mini_batch_size 8: 'batch' keeps RLHF's 16 / 8 = 2
    steps per epoch (minibatches of 4 / 2 = 2), 'kept' takes ceil(4 / 8) = 1 step of 4.
    mini_batch_size 2 (8 steps per epoch for the whole batch): one step per trajectory, never
    an empty minibatch filled with a repeated trajectory."""
    import riskalign.ppo.trainer as trainer_mod

    seen, real = [], trainer_mod.policy_loss

    def recording(logprobs, *args, **kwargs):
        seen.append(logprobs.shape[0])
        return real(logprobs, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "policy_loss", recording)
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=1", "risk.alpha=0.25",
                   "risk.warm_start=0", "risk.rho=0.5", f"ppo.minibatches={minibatches}",
                   f"ppo.mini_batch_size={mb}", "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    assert trainer.step()["kept"] == 4
    assert seen == sizes


def test_kl_controller_rate_does_not_shrink_with_the_tail(tiny_model_dir, tmp_path):
    """beta_1 = beta_0 (1 + clip((KL - target) / target, +-0.2) * B / horizon) with B = 16, the
    whole batch, although only B0 = 4 trajectories train."""
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=2", "risk.alpha=0.25",
                   "risk.warm_start=0", "risk.rho=0.5", "ppo.adap_kl_ctrl=true",
                   "ppo.target_kl=0.5", "ppo.horizon=100", "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    first = trainer.step()
    assert first["kept"] == 4
    error = min(max((first["kl"] - 0.5) / 0.5, -0.2), 0.2)
    assert trainer.kl_ctl.value == pytest.approx(0.01 * (1 + error * 16 / 100), rel=1e-12)
    assert trainer.step()["beta"] == pytest.approx(0.01 * (1 + error * 16 / 100), rel=1e-12)


def test_checkpoints_from_before_new_settings_resume_as_they_trained():
    """A saved config without precision / ppo.minibatches / ppo.whiten_over / task.validation
    reads as fp32, 'kept', 'kept' and 0: it matches a run asking for those, and names the key
    that differs otherwise."""
    import copy

    from riskalign.config import RunConfig, to_dict
    from riskalign.config import first_difference as _first_difference
    from riskalign.ppo.trainer import _training_keys, _with_legacy

    now = to_dict(RunConfig(precision="auto"))
    old = copy.deepcopy(_training_keys(now))
    del old["precision"], old["ppo"]["minibatches"], old["ppo"]["whiten_over"]
    del old["task"]["validation"]
    same = RunConfig(precision="fp32")
    same.ppo.minibatches = "kept"
    assert _with_legacy(old) == _training_keys(to_dict(same))
    assert _first_difference(_with_legacy(old), _training_keys(now)) == "ppo.minibatches"
    old["precision"] = "auto"            # an early version saved it unresolved
    assert _with_legacy(old)["precision"] == "fp32"


@pytest.mark.parametrize("whiten_over", ["kept", "batch"])
def test_tail_advantages_whitened_over_kept_or_batch(tiny_model_dir, tmp_path, monkeypatch,
                                                     whiten_over):
    """The advantages that train are the GAE values of the kept rows minus mu, over sigma, with
    mu and sigma^2 (Bessel-corrected) the mean and variance of the valid tokens of the kept
    rows ('kept') or of the whole batch ('batch'); computed here by hand from the raw GAE."""
    import riskalign.ppo.trainer as trainer_mod

    raw, seen = {}, {}
    real_gae = trainer_mod.compute_gae

    def gae(rewards, values, mask, *a):
        raw["adv"], raw["mask"] = (x.clone() for x in (real_gae(rewards, values, mask, *a)[0],
                                                       mask))
        return real_gae(rewards, values, mask, *a)

    monkeypatch.setattr(trainer_mod, "compute_gae", gae)
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "ppo.total_iterations=1", "risk.alpha=0.25",
                   "risk.warm_start=0", "risk.rho=0.5", f"ppo.whiten_over={whiten_over}",
                   "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    real_select = trainer.select

    def select(it, ro, rewards, dist):
        seen["keep"], stats = real_select(it, ro, rewards, dist)
        return seen["keep"], stats

    trainer.select = select
    monkeypatch.setattr(trainer, "update", lambda ro, adv, ret, stand_in=None, weight=None:
                        seen.update(adv=adv.clone()) or {})
    stats = trainer.step()
    keep = seen["keep"]
    assert len(keep) == 4
    pool = keep if whiten_over == "kept" else torch.arange(16)
    vals = raw["adv"][pool][raw["mask"][pool].bool()]
    n = len(vals)
    mu = vals.sum() / n
    var = ((vals - mu) ** 2).sum() / (n - 1)
    expected = (raw["adv"][keep] - mu) / torch.sqrt(var + 1e-8) * raw["mask"][keep]
    torch.testing.assert_close(seen["adv"], expected, rtol=1e-5, atol=1e-6)
    assert "value_explained_var_batch" in stats
