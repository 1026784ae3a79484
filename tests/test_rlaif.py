"""RLAIF: constitution, prompt building per aspect, judging in both orders with scripted judges,
the aspect-to-model mapping, the UWO reward by hand, and the whole pipeline on tiny models."""

import json
import re

import pytest
import torch

from riskalign.cli import main
from riskalign.rlaif.aspects import ASPECTS, AspectShaper, follow_up_replies, rm_inputs
from riskalign.rlaif.chat import ChatTemplateError, chat_prompt
from riskalign.rlaif.constitution import load_constitution
from riskalign.rlaif.evaluate import win_rate
from riskalign.rlaif.judge import (GenerateJudge, PairJudgement, judge_both_orders, parse_choice,
                                   verdict)
from riskalign.rlaif.labelling import aspect_text, label_pairs
from riskalign.tasks import DataError

CONS = load_constitution()
Q = CONS.follow_ups


class ScriptedChat:
    """Stands in for ChatModel: replies from a function of the conversation; records calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def reply(self, conversations, max_new_tokens, sample=True, min_new_tokens=1):
        self.calls.append(conversations)
        return [self.fn(c) for c in conversations]


def _options(request):
    """The (A) and (B) texts of a judge request."""
    m = re.search(r"\(A\) (.*?)\n+\(B\) (.*?)\n+Answer with", request, re.S)
    return m.group(1), m.group(2)


def prefers(word):
    """A judge (P(A) per request) that prefers the option containing ``word``, in any position."""
    def judge(requests):
        out = []
        for r in requests:
            a, b = _options(r)
            out.append(0.9 if word in a and word not in b else 0.1 if word in b else 0.5)
        return out
    return judge


# ---------------------------------------------------------------- constitution

def test_default_constitution_has_the_six_virtues():
    assert [v.name for v in CONS.virtues] == ["Honesty", "Prudence", "Justice", "Compassion",
                                              "Humility", "Respect"]
    assert CONS.revision(CONS.virtues[0]).startswith(
        "Please revise the following response with respect to Honesty")
    assert set(CONS.follow_ups) == {"motivation", "consequence"}


@pytest.mark.parametrize("text, message", [
    ("virtues: [Honesty]\ncolour: blue\n", "unknown key(s) colour"),
    ("virtues: []\n", "'virtues' must be a non-empty list"),
    ("critique_request: Say something.\n", "placeholder {virtue}"),
    ("virtues_per_prompt: 9\n", "'virtues_per_prompt' must be an integer in [1, 6]"),
    ("virtues: [{name: Honesty, colour: red}]\n", "virtue 1 has unknown key(s) colour"),
    ("follow_ups: {motivation: Why}\n", "'follow_ups' must map exactly"),
])
def test_bad_constitution_names_the_problem(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(DataError, match=re.escape(message)):
        load_constitution(p)


def test_partial_constitution_keeps_other_defaults_and_chain_of_thought(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("virtues: [{name: Courage, description: facing fear}]\nchain_of_thought: true\n")
    c = load_constitution(p)
    assert [v.name for v in c.virtues] == ["Courage"]
    assert c.critique(c.virtues[0]).endswith("facing fear. Let's think step by step.")
    assert c.follow_ups == CONS.follow_ups


# ---------------------------------------------------------------- prompts per aspect

def test_reward_model_inputs_per_aspect():
    follow = {"motivation": "to help", "consequence": "more trust"}
    assert rm_inputs("action", "Hi?", "Hello.", follow, Q) == ("User: Hi?\n", "Assistant: Hello.")
    ctx, text = rm_inputs("motivation", "Hi?", "Hello.", follow, Q)
    assert ctx == "User: Hi?\n"
    assert text == f"Assistant: Hello.\nUser: {Q['motivation']}\nAssistant: to help"
    _, text = rm_inputs("consequence", "Hi?", "Hello.", follow, Q)
    assert text == f"Assistant: Hello.\nUser: {Q['consequence']}\nAssistant: more trust"


def test_follow_up_conversations_ask_each_question_after_the_answer():
    chat = ScriptedChat(lambda c: f"{c[-1]['content']}|{c[1]['content']}")
    out = follow_up_replies(chat, ["p1", "p2"], ["a1", "a2"], Q, 8)
    convs = chat.calls[0]
    assert len(convs) == 4
    assert convs[0] == [{"role": "user", "content": "p1"}, {"role": "assistant", "content": "a1"},
                        {"role": "user", "content": Q["motivation"]}]
    assert convs[3][2]["content"] == Q["consequence"] and convs[3][1]["content"] == "a2"
    m, c = Q["motivation"], Q["consequence"]
    assert out == {"motivation": [f"{m}|a1", f"{m}|a2"], "consequence": [f"{c}|a1", f"{c}|a2"]}


def test_judge_request_shows_the_aspects_texts():
    r = CONS.judge("motivation", CONS.virtues[0], "Q?", "first text", "second text")
    assert "stated motivation shows more Honesty" in r
    assert _options(r) == ("first text", "second text") and "Question: Q?" in r


def test_chat_template_missing_is_a_clear_error(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert chat_prompt(tok, [{"role": "user", "content": "Hi"}]).endswith("assistant\n")
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="judge: the tokenizer has no chat template"):
        chat_prompt(tok, [{"role": "user", "content": "Hi"}], "judge")


# ---------------------------------------------------------------- judging

@pytest.mark.parametrize("text, choice", [("A", "A"), ("(B).", "B"), ("Answer: B", "B"),
                                          ("B because it is kind", "B"), ("A and B", None),
                                          ("Both are fine", None), ("a good one", None),
                                          ("", None), ("B) A is worse", None)])
def test_parse_choice_is_strict(text, choice):
    assert parse_choice(text) == choice


def test_both_orders_debias_by_hand():
    asked = []
    p_a = {"a|b": 0.8, "b|a": 0.4, "c|d": 0.9, "d|c": 0.9, "e|f": None, "f|e": 0.2}

    def judge(requests):
        asked.extend(requests)
        return [p_a[r] for r in requests]

    js = judge_both_orders(judge, [("a|b", "b|a"), ("c|d", "d|c"), ("e|f", "f|e")])
    assert asked == ["a|b", "c|d", "e|f", "b|a", "d|c", "f|e"]
    assert js[0].p_first == pytest.approx((0.8 + 1 - 0.4) / 2) and js[0].agree
    assert js[1].p_first == pytest.approx(0.5) and js[1].agree is False  # pure position bias
    assert js[2].failed and js[2].p_first is None and js[2].agree is None
    assert [verdict(j.p_first, 0.05) for j in js] == ["first", "tie", "failed"]
    assert verdict(0.3, 0.05) == "second" and verdict(0.54, 0.05) == "tie"
    assert PairJudgement(0.0, 1.0).p_first == 0.0


def _rows():
    return [
        {"prompt": "p0", "answers": ["ans x", "ans y"], "motivation": ["GOOD aim", "bad aim"],
         "consequence": ["bad end", "GOOD end"]},
        {"prompt": "p1", "answers": ["GOOD answer", "plain answer"], "motivation": ["m", "m"],
         "consequence": ["c1", "c2"]},
        {"prompt": "p2", "answers": ["same", "same"], "motivation": ["s", "s"],
         "consequence": ["s", "s"]},
    ]


def test_judge_sees_the_answer_with_each_follow_up():
    row = _rows()[0]
    assert aspect_text(row, "action", 1, Q) == "ans y"
    assert aspect_text(row, "motivation", 0, Q) == f"ans x\n[{Q['motivation']}] GOOD aim"
    assert aspect_text(row, "consequence", 1, Q) == f"ans y\n[{Q['consequence']}] GOOD end"


def test_label_pairs_follow_the_judge_in_both_orders():
    prefs, report = label_pairs(_rows(), prefers("GOOD"), CONS, 2, 0.05, seed=0)
    assert [(p.prompt, p.chosen, p.rejected) for p in prefs["action"]] == [
        ("User: p1\n", "Assistant: GOOD answer", "Assistant: plain answer")]
    assert [p.chosen for p in prefs["motivation"]] == [
        f"Assistant: ans x\nUser: {Q['motivation']}\nAssistant: GOOD aim",
        f"Assistant: GOOD answer\nUser: {Q['motivation']}\nAssistant: m"]
    assert prefs["consequence"][0].chosen == (f"Assistant: ans y\nUser: {Q['consequence']}\n"
                                              f"Assistant: GOOD end")
    assert prefs["consequence"][0].rejected.endswith("Assistant: bad end")
    a = report["action"]
    assert (a["pairs"], a["kept"], a["ties"], a["failed"], a["identical"]) == (3, 1, 1, 0, 1)
    assert a["judgements"] == 4 and a["order_agreement"] == 0.5   # row 0: no preference
    assert a["chosen_is_first_sample"] == 1.0
    assert report["motivation"]["chosen_is_first_sample"] == 1.0
    assert report["consequence"]["chosen_is_first_sample"] == 0.5
    assert report["consequence"]["order_agreement"] == 1.0


def test_position_biased_judge_gives_ties_not_labels():
    prefs, report = label_pairs(_rows(), lambda reqs: [0.9] * len(reqs), CONS, 2, 0.05, seed=0)
    assert all(not p for p in prefs.values())
    assert report["action"]["ties"] == 2 and report["action"]["identical"] == 1
    assert report["action"]["order_agreement"] == 0.0


def test_unparseable_judge_answers_are_counted_failures():
    chat = ScriptedChat(lambda c: "I cannot decide.")
    prefs, report = label_pairs(_rows(), GenerateJudge(chat), CONS, 1, 0.05, seed=0)
    assert all(not p for p in prefs.values())
    a = report["action"]
    assert a["failed"] == 2 and a["judgement_failure_rate"] == 1.0 and a["order_agreement"] is None


def test_generate_judge_reads_strict_answers():
    chat = ScriptedChat(lambda c: "(B) is better" if "(B) GOOD" in c[0]["content"] else "A.")
    prefs, report = label_pairs(_rows(), GenerateJudge(chat), CONS, 1, 0.0, seed=0)
    assert [p.chosen for p in prefs["action"]] == ["Assistant: GOOD answer"]
    assert report["action"]["ties"] == 1            # row 0: "A" in both orders = position only
    assert [len(c) for c in chat.calls] == [4, 4, 4]  # per aspect: 2 pairs x 2 orders, one call


def test_win_rate_by_hand():
    res = win_rate(prefers("kind"), ["q1", "q2", "q3", "q4"],
                   ["kind", "rude", "kind one", "meh"], ["rude", "kind", "kind two", "meh"], 0.05)
    assert (res["wins"], res["losses"], res["ties"], res["failed"]) == (1, 1, 2, 0)
    assert res["win_rate"] == pytest.approx((1 + 2 / 2) / 4)


# ---------------------------------------------------------------- reward mapping and UWO

def test_each_aspect_is_scored_by_its_own_model_and_combined_by_uwo():
    seen = {}

    def model(name, values):
        def score(contexts, texts):
            seen[name] = (list(contexts), list(texts))
            return torch.tensor(values)
        return score

    models = {"action": model("action", [1.0, 0.0]), "motivation": model("motivation", [3.0, 0.0]),
              "consequence": model("consequence", [2.0, 3.0])}

    def follow(prompts, answers):
        return {"motivation": [f"M-{a}" for a in answers], "consequence": [f"C-{a}" for a in answers]}

    shaper = AspectShaper(models, follow, Q, lam=0.5, user_prompt=lambda p: p.upper())
    out = shaper(["p", "q"], ["x", "y"])
    # sample 0: z = (1, 3, 2): mean 2, population variance 2/3 -> 2 - 0.5 * 2/3
    # sample 1: z = (0, 0, 3): mean 1, population variance 2   -> 1 - 0.5 * 2
    assert out.scores.tolist() == pytest.approx([2 - 1 / 3, 0.0])
    assert out.kl_scale is None and out.weight is None
    assert seen["action"] == (["User: P\n", "User: Q\n"], ["Assistant: x", "Assistant: y"])
    assert seen["motivation"][1][0].endswith(f"{Q['motivation']}\nAssistant: M-x")
    assert seen["consequence"][1][1].endswith(f"{Q['consequence']}\nAssistant: C-y")
    assert "M-" not in "".join(seen["consequence"][1]) and "C-" not in "".join(seen["motivation"][1])
    assert out.stats["score_motivation"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no reward model for aspect"):
        AspectShaper({"action": models["action"]}, follow, Q)


# ---------------------------------------------------------------- SFT on chat pairs

def test_sft_pairs_mask_the_chat_prompt(tokenizer_dir):
    from transformers import AutoTokenizer

    from riskalign.sft import encode_pairs

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prefix = chat_prompt(tok, [{"role": "user", "content": "Hi"}])
    ids, mask, labels = encode_pairs(tok, [(prefix, "Hello there"), ("", "plain")], 64)
    n_pre = len(tok(prefix, add_special_tokens=False).input_ids)
    n_tgt = len(tok("Hello there" + tok.eos_token, add_special_tokens=False).input_ids)
    assert (labels[0, :n_pre] == -100).all()
    assert labels[0, n_pre:n_pre + n_tgt].tolist() == ids[0, n_pre:n_pre + n_tgt].tolist()
    assert mask[0].sum() == n_pre + n_tgt and (labels[1, mask[1] == 0] == -100).all()
    assert tok.decode(ids[0, n_pre:n_pre + n_tgt]) == "Hello there" + tok.eos_token


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("rlaif-prompts") / "prompts.txt"
    p.write_text("\n".join(f"Request number {i}: tell me something about item {i}."
                           for i in range(20)))
    return p


def _args(tiny_model_dir, tiny_encoder_dir, prompt_file, out, *extra):
    return ["rlaif", f"policy={tiny_model_dir}", f"prompts={prompt_file}", f"output_dir={out}",
            "held_out=4", "sft_prompts=6", "label_prompts=12", "answer_tokens=8",
            "critique_tokens=6", "follow_up_tokens=6", "batch_size=8", "tie_margin=0",
            f"reward.backbone={tiny_encoder_dir}", "reward.max_length=48", "reward.epochs=1",
            f"on_topic_model={tiny_encoder_dir}", f"judge_encoder={tiny_encoder_dir}",
            "rl.ppo.total_iterations=3", "rl.ppo.batch_size=4", "rl.ppo.mini_batch_size=2",
            "rl.ppo.forward_batch_size=4", "rl.log.checkpoint_every=1", "rl.log.tensorboard=false",
            *extra]


def test_rlaif_pipeline_end_to_end_with_risk_selection(tiny_model_dir, tiny_encoder_dir,
                                                      prompt_file, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(tiny_model_dir, tiny_encoder_dir, prompt_file, out, "rl.risk.alpha=0.5",
                 "rl.risk.warm_start=0", "rl.risk.rho=1.0")
    assert main(args) == 0
    for f in ("prompts/train.jsonl", "sft_data.jsonl", "sft/model.safetensors",
              "labels/action.jsonl", "labels/motivation.jsonl", "labels/consequence.jsonl",
              "labels/report.md", "rm/motivation/manifest.json", "ppo/final/model.safetensors",
              "eval/results.json", "eval/scores.png", "report.md"):
        assert (out / f).exists(), f
    rows = [json.loads(x) for x in (out / "sft_data.jsonl").read_text().splitlines()]
    assert len(rows) <= 6 and all(r["revised"] and len(r["virtues"]) == 1 for r in rows)
    report = json.loads((out / "labels" / "report.json").read_text())
    for a in ASPECTS:
        r = report["aspects"][a]
        assert r["pairs"] == 12 and r["kept"] + r["ties"] + r["failed"] + r["identical"] == 12
        assert r["judgements"] == 2 * (12 - r["identical"])
    metrics = [json.loads(x) for x in (out / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["kept"] for m in metrics][-1] < 4                  # RA-RLHF tail selection acted
    assert {"score_action", "score_motivation", "score_consequence"} <= set(metrics[0])
    res = json.loads((out / "eval" / "results.json").read_text())
    assert set(res["models"]) == {"base", "sft", "rlaif"}
    for m in res["models"].values():
        assert 0 <= m["offensive_rate"] <= 1 and m["length_tokens"] > 0
        assert 0 <= m["on_topic_rate"] <= 1 and -1 <= m["prompt_similarity"] <= 1
    # the run report carries each aspect's reward model as its manifest records it
    run_report = (out / "report.md").read_text()
    for a in ASPECTS:
        member = json.loads((out / "rm" / a / "manifest.json").read_text())["members"][0]
        kept = report["aspects"][a]["kept"]
        assert member["train_pairs"] + member["eval_pairs"] == kept
        acc = member["eval_accuracy"]
        assert (f"| {a} | {member['train_pairs']} | {member['eval_pairs']} | "
                f"{'n/a' if acc is None else f'{acc:.3f}'} |") in run_report
    assert run_report.index("## Reward models") < run_report.index("## Before and after")
    assert set(report["validation"]) == {"pointwise", "logprob", "generate", "embedding"}
    assert report["judge_mode"] in report["validation"] and report["judge_mode_setting"] == "auto"
    assert report["judge"] == str(tiny_encoder_dir if report["judge_mode"] == "embedding"
                                  else tiny_model_dir)      # the model the labels came from
    assert "Judge accuracy on the validation pairs" in (out / "labels" / "report.md").read_text()
    w = res["win_rates"]["rlaif vs sft"]
    assert w["wins"] + w["ties"] + w["losses"] + w["failed"] == 4
    text = (out / "report.md").read_text()
    assert "order agreement" in text and "| UWO training reward (mean) |" in text
    capsys.readouterr()
    assert main(args) == 0                                       # everything done: all skipped
    assert capsys.readouterr().out.count("output exists, skipped") == 7
    stamp = (out / "rm" / "action" / "member-0" / "member.json").stat().st_mtime_ns
    assert main([args[0], "reward", "--force", *args[1:]]) == 0   # redo one stage
    assert "removed rm, ppo, eval, report.md (redone from stage reward)" in capsys.readouterr().out
    assert (out / "rm" / "action" / "member-0" / "member.json").stat().st_mtime_ns != stamp
    assert not (out / "ppo").exists() and not (out / "eval").exists()
    assert (out / "labels" / "report.json").exists()


def test_rlaif_stage_needs_its_predecessor(tiny_model_dir, tiny_encoder_dir, prompt_file,
                                          tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rlaif", "labels", *_args(tiny_model_dir, tiny_encoder_dir, prompt_file,
                                           out)[1:]]) == 2
    assert "stage labels needs the output of stage sft" in capsys.readouterr().err


def test_judge_that_never_answers_validly_stops_labelling(tiny_model_dir, tiny_encoder_dir,
                                                         prompt_file, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(tiny_model_dir, tiny_encoder_dir, prompt_file, out, "judge_mode=generate")
    for stage in ("prompts", "sft-data", "sft"):
        assert main([args[0], stage, *args[1:]]) == 0
    capsys.readouterr()
    assert main([args[0], "labels", *args[1:]]) == 2
    captured = capsys.readouterr()
    [err] = [x for x in captured.err.splitlines() if x.startswith("riskalign: error")]
    assert "action kept 0 of 12" in err and "failed 12" in err
    assert "100.0%" in captured.out                    # the report's failure rate was printed
    assert not (out / "labels").exists()


def test_rlaif_bad_inputs_are_one_line_errors(tiny_model_dir, tiny_encoder_dir, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cons = tmp_path / "c.yaml"
    cons.write_text("virtues: [Honesty]\ncolour: blue\n")
    base = ["rlaif", "prompts", f"output_dir={tmp_path / 'o'}"]
    assert main([*base, f"prompts={empty}"]) == 2
    assert str(empty) in capsys.readouterr().err
    assert main([*base, f"constitution={cons}"]) == 2
    assert "unknown key(s) colour" in capsys.readouterr().err
    assert main([*base, "judge_mode=vote"]) == 2
    assert "judge_mode" in capsys.readouterr().err
    assert not (tmp_path / "o" / "prompts").exists()


def test_bad_judge_encoder_is_a_one_line_error_naming_the_field(tmp_path):
    from riskalign.rlaif.config import RLAIFConfig
    from riskalign.commands.rlaif import Pipeline

    cfg = RLAIFConfig(output_dir=str(tmp_path), judge_encoder=str(tmp_path / "no-such-model"))
    with pytest.raises(DataError, match="^judge_encoder: model folder not found") as e:
        Pipeline(cfg).encoder()
    assert "\n" not in str(e.value)


def test_help_config_shows_the_pipeline_presets():
    from riskalign.config import describe
    from riskalign.rlaif.config import RLAIFConfig

    lines = describe(RLAIFConfig)
    assert "  sft.max_tokens (default 160): Texts are truncated to this many tokens." in lines
    assert any(x.startswith("  rl.model.lora.enabled (default True)") for x in lines)
    assert any(x.startswith("  rl.ppo.temperature (default 0.7)") for x in lines)


def test_4bit_loading_is_skipped_with_a_note_on_cpu(capsys):
    from riskalign.models import quantization_4bit

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    assert quantization_4bit(False) is None and capsys.readouterr().out == ""
    assert quantization_4bit(True) is None
    assert "no CUDA GPU here" in capsys.readouterr().out


def test_sft_pairs_keep_target_tokens_when_the_prompt_is_too_long(tokenizer_dir):
    from transformers import AutoTokenizer

    from riskalign.sft import encode_pairs

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prefix = chat_prompt(tok, [{"role": "user", "content": "word " * 100}])
    target = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    ids, mask, labels = encode_pairs(tok, [(prefix, target)], 20)
    assert ids.shape == (1, 20)
    trained = (labels[0] != -100).sum().item()
    assert trained == 10                               # half the budget stays for the target
    pre_ids = tok(prefix, add_special_tokens=False).input_ids
    assert ids[0, :10].tolist() == pre_ids[-10:]         # the prefix keeps its end
    ids, _, labels = encode_pairs(tok, [(prefix, "ok")], 20)
    n_tgt = len(tok("ok" + tok.eos_token, add_special_tokens=False).input_ids)
    assert (labels[0] != -100).sum().item() == n_tgt and ids[0, :20 - n_tgt].tolist() == \
        pre_ids[-(20 - n_tgt):]


def test_label_probs_do_not_depend_on_batching(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from riskalign.rlaif.chat import ChatModel

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    convs = [[{"role": "user", "content": "x " * n}] for n in (9, 1, 5, 3, 7)]
    one = ChatModel(lm, tok, batch_size=1).label_probs(convs, ("A", "B"))
    many = ChatModel(lm, tok, batch_size=3).label_probs(convs, ("A", "B"))
    assert torch.allclose(one, many, atol=1e-5) and torch.allclose(one.sum(1), torch.ones(5))
    assert not torch.allclose(one[0], one[1])          # rows stay with their own request
