"""`riskalign sft` and the command line on a tiny model."""

import json

import torch
from safetensors.torch import load_file

from riskalign.cli import main


def test_sft_on_text_file_changes_weights(tiny_model_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("This medicine works well.\nI feel great now.\n\nVery helpful.\n")
    out = tmp_path / "sft"
    assert main(["sft", f"model.policy={tiny_model_dir}", f"text_file={texts}",
                 f"output_dir={out}", "batch_size=2", "learning_rate=1e-2"]) == 0
    before = load_file(f"{tiny_model_dir}/model.safetensors")
    after = load_file(str(out / "model.safetensors"))
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_sft_empty_file_is_an_error(tiny_model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["sft", f"model.policy={tiny_model_dir}", f"text_file={empty}",
                 f"output_dir={tmp_path / 'o'}"]) == 2
    assert "no non-empty lines" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_generate_prints_json_lines(tiny_model_dir, capsys):
    assert main(["generate", "--model", tiny_model_dir, "--prompt", "Hello", "--prompt", "Bye",
                 "--max-new-tokens", "4", "--reward", "vader"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [r["prompt"] for r in rows] == ["Hello", "Bye"] and all("score" in r for r in rows)


def test_help_config_lists_every_key(capsys):
    assert main(["ppo", "--help-config"]) == 0
    out = capsys.readouterr().out
    for key in ("ppo.learning_rate (default 1.41e-05)", "ppo.batch_size (default 128)",
                "ppo.target_kl (default 6.0)", "ppo.init_kl_coef (default 0.2)",
                "ppo.horizon (default 10000.0)", "model.lora.r"):
        assert key in out
