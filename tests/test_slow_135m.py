"""On the real 135M policy (the offline default): kept out of `make test`, run by
`make test-slow`."""

import pytest
import torch

pytestmark = pytest.mark.slow


def test_two_ppo_iterations_on_the_135m_policy(tmp_path):
    from safetensors.torch import load_file

    from riskalign import presets, task_prompts, train
    from riskalign.assets import prepare_default_policy
    from riskalign.config import RewardConfig
    from riskalign.rewards import build_reward

    prepare_default_policy()
    cfg = presets.cpu_run()
    cfg.output_dir, cfg.ppo.total_iterations = str(tmp_path / "run"), 2
    cfg.model.lora.enabled = False  # the whole model trains: its weights must move
    cfg.log.tensorboard = False
    result = train("smollm2-135m", build_reward(RewardConfig(kind="vader")),
                   task_prompts("drugreview-sentiment", n=64), cfg)
    assert result.summary["iterations"] == 2
    assert all(abs(h["kl"]) < 50 and h["response_len"] == 24 for h in result.trainer.history)
    start = result.trainer.ref.state_dict()
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    moved = [k for k, v in final.items() if k in start and not torch.equal(v, start[k])]
    assert moved  # PPO changed the policy
