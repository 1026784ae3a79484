"""``riskalign rlaif``: the virtue-based RLAIF pipeline, stage by stage.

Stages and outputs under ``output_dir`` (a stage is skipped when its output exists; PPO resumes
from its checkpoints):
Redoing a stage (``--force``) first removes its output and that of every later stage, so the
outputs on disk always come from one pass. Folders appear only once complete.

1. ``prompts``: seeded split -> ``prompts/train.jsonl``, ``prompts/held_out.jsonl``;
2. ``sft-data``: answer, critique and revise (``critique``) -> ``sft_data.jsonl``;
3. ``sft``: LoRA SFT of the policy on (prompt, revision) -> ``sft/``;
4. ``labels``: answer pairs, follow-ups and judge labels (``labelling``) ->
   ``labels/{action,motivation,consequence}.jsonl`` + ``labels/report.{json,md}``;
5. ``reward``: one reward model per aspect -> ``rm/<aspect>/``;
6. ``ppo``: PPO from ``sft/`` on the UWO of the aspect models (``aspects``) -> ``ppo/final/``;
7. ``eval``: before/after evaluation (``evaluate``) -> ``eval/results.json``, ``report.md``.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from ..atomic import write_dir, write_text
from ..config import to_dict
from ..reward_model.data import write_preferences
from ..tasks import DataError, PromptSet
from ..rlaif.aspects import ASPECTS
from ..rlaif.chat import load_chat
from ..rlaif.config import STAGES, RLAIFConfig
from ..rlaif.constitution import load_constitution
from ..rlaif.judge import make_judge
from ..rlaif.prompts import load_prompts, split_prompts
from ..runtime import configure
from ..files import read_json, read_jsonl


# What each stage writes (relative to output_dir).
OUTPUTS = {"prompts": ["prompts"], "sft-data": ["sft_data.jsonl"], "sft": ["sft_pairs.jsonl", "sft"],
           "labels": ["labels"], "reward": ["rm"], "ppo": ["ppo"], "eval": ["eval", "report.md"]}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return read_jsonl(path, "stage output")


JUDGE_MODES = ("pointwise", "logprob", "generate", "embedding")  # auto's tie-break order
TRUSTED_LOW = 0.75  # the lower 95% bound on validation accuracy the README asks of a judge


class Pipeline:
    def __init__(self, cfg: RLAIFConfig):
        self.cfg, self.out = cfg, Path(cfg.output_dir)
        self.cons = load_constitution(cfg.constitution)
        self.console = Console()
        self._encoder = None
        configure(cfg.threads, cfg.precision)

    def encoder(self):
        """The embedding judge's sentence encoder (``judge_encoder``), loaded once; texts are
        cut at 256 tokens (all-MiniLM-L6-v2's limit) so that a follow-up reply after its answer
        is still read."""
        from ..rlaif.on_topic import SentenceEncoder

        if self._encoder is None:
            try:
                self._encoder = SentenceEncoder(self.cfg.judge_encoder, max_length=256)
            except (OSError, ValueError) as e:
                raise DataError(f"judge_encoder: {e}") from None
        return self._encoder

    def judge_of(self, chat, mode: str):
        """The judge of ``mode`` for this constitution (the embedding mode reads no ``chat``)."""
        return make_judge(chat, mode, self.cons, self.encoder() if mode == "embedding" else None)

    # ------------------------------------------------------------------ stages
    def prompts(self) -> None:
        train, held = split_prompts(load_prompts(self.cfg.prompts), self.cfg.held_out,
                                    self.cfg.seed)
        def write(tmp: Path) -> None:
            _jsonl(tmp / "held_out.jsonl", [{"prompt": p} for p in held])
            _jsonl(tmp / "train.jsonl", [{"prompt": p} for p in train])

        write_dir(self.out / "prompts", write)
        print(f"prompts: {len(train)} train, {len(held)} held out")

    def split(self, name: str) -> list[str]:
        return [r["prompt"] for r in _read_jsonl(self.out / "prompts" / f"{name}.jsonl")]

    def sft_data(self) -> None:
        import torch

        from ..rlaif.critique import critique_and_revise

        torch.manual_seed(self.cfg.seed)
        chat = load_chat(self.cfg.policy, "policy", self.cfg)
        prompts = self.split("train")[:self.cfg.sft_prompts]
        rows, dropped = critique_and_revise(chat, prompts, self.cons, self.cfg.seed,
                                            self.cfg.answer_tokens, self.cfg.critique_tokens,
                                            self.cfg.batch_size)
        if not rows:
            raise DataError(f"sft-data: every one of {len(prompts)} revisions came back empty")
        _jsonl(self.out / "sft_data.jsonl", rows)
        print(f"sft-data: {len(rows)} revised answers ({dropped} dropped: empty revision)")

    def sft(self) -> None:
        from ..sft import run_sft

        pairs = self.out / "sft_pairs.jsonl"
        _jsonl(pairs, [{"prompt": r["prompt"], "response": r["revised"]}
                       for r in _read_jsonl(self.out / "sft_data.jsonl")])
        s = copy.deepcopy(self.cfg.sft)
        s.pairs_file, s.output_dir, s.seed = str(pairs), str(self.out / "sft"), self.cfg.seed
        s.model.policy, s.precision = self.cfg.policy, self.cfg.precision
        s.model.load_in_4bit = s.model.load_in_4bit or self.cfg.load_in_4bit
        run_sft(s, self.cfg.threads)

    def labels(self) -> None:
        import torch

        from ..rlaif.labelling import label_pairs, sample_answer_pairs
        from ..rlaif.report import labelling_markdown

        torch.manual_seed(self.cfg.seed)
        policy = load_chat(str(self.out / "sft"), "sft policy", self.cfg)
        judge_path = self.cfg.judge or self.cfg.policy
        judge = load_chat(judge_path, "judge", self.cfg)
        validation, mode = self.validate_judge(judge)  # before the sampling: fail early
        prompts = self.split("train")[:self.cfg.label_prompts]
        rows = sample_answer_pairs(policy, prompts, self.cons.follow_ups, self.cfg.answer_tokens,
                                   self.cfg.follow_up_tokens, self.cfg.batch_size)
        prefs, report = label_pairs(rows, self.judge_of(judge, mode), self.cons,
                                    self.cfg.virtues_per_comparison, self.cfg.tie_margin,
                                    self.cfg.seed)
        report = {"judge": self.cfg.judge_encoder if mode == "embedding" else judge_path,
                  "judge_mode": mode,
                  "judge_mode_setting": self.cfg.judge_mode, "validation": validation,
                  "virtues_per_comparison": self.cfg.virtues_per_comparison,
                  "tie_margin": self.cfg.tie_margin, "aspects": report}
        print(labelling_markdown(report))
        few = {a: r for a, r in report["aspects"].items() if r["kept"] < 4}
        if few:
            raise DataError("labels: too few pairs kept to train a reward model: " + "; ".join(
                f"{a} kept {r['kept']} of {r['pairs']} (ties {r['ties']}, failed {r['failed']}, "
                f"identical {r['identical']})" for a, r in few.items())
                + "; raise label_prompts, lower tie_margin or use a stronger judge")

        def write(tmp: Path) -> None:
            _jsonl(tmp / "pairs.jsonl", rows)
            for aspect, p in prefs.items():
                write_preferences(tmp / f"{aspect}.jsonl", p)
            write_text(tmp / "report.md", labelling_markdown(report))
            write_text(tmp / "report.json", json.dumps(report, indent=2))

        write_dir(self.out / "labels", write)

    def validate_judge(self, judge) -> tuple[dict, str]:
        """Every judge mode's accuracy on the validation pairs (printed), and the mode to use:
        ``judge_mode``, or with ``auto`` the most accurate (ties: pointwise, logprob,
        generate, embedding)."""
        from ..rlaif.report import validation_markdown
        from ..rlaif.validation import judge_accuracy, load_validation

        rows, skipped = load_validation(self.cons, self.cfg.judge_validation)
        if skipped:
            print(f"judge validation: {skipped} pair(s) skipped, their virtue is not in the "
                  f"constitution; {len(rows)} left")
        results = {}
        for m in JUDGE_MODES:
            if not rows:
                break
            try:
                judge_m = self.judge_of(judge, m)
            except ValueError as e:  # a label of several tokens; no encoder (DataError)
                if m == self.cfg.judge_mode:
                    raise
                print(f"judge validation: mode {m} unavailable ({e})")
                continue
            results[m] = judge_accuracy(judge_m, rows, self.cons, self.cfg.tie_margin)
        mode = self.cfg.judge_mode
        if mode == "auto":
            if not results:
                raise DataError("judge_mode=auto: no judge mode could be measured (no validation "
                                "pair has a virtue of this constitution, or no mode works with "
                                "this judge); give judge_validation= pairs for your virtues or "
                                "set judge_mode")
            mode = max(results, key=lambda m: (results[m]["accuracy"], -JUDGE_MODES.index(m)))
        if results:
            print(validation_markdown(results, mode))
        if mode in results and not results[mode]["ci_low"] > 0.5:
            print(f"warning: the judge's {mode} mode is not shown better than a coin on the "
                  f"validation pairs ({100 * results[mode]['accuracy']:.1f}%, 95% CI from "
                  f"{100 * results[mode]['ci_low']:.1f}%); its labels are not to be trusted")
        elif mode in results and results[mode]["ci_low"] < TRUSTED_LOW:
            print(f"note: the judge's {mode} mode beats a coin on the validation pairs, but the "
                  f"lower end of its 95% interval ({100 * results[mode]['ci_low']:.1f}%) is "
                  f"below {100 * TRUSTED_LOW:.0f}%: treat its labels as weak")
        return results, mode

    def reward(self) -> None:
        from ..reward_model.train import train_reward_models

        for aspect in ASPECTS:
            r = copy.deepcopy(self.cfg.reward)
            r.data = str(self.out / "labels" / f"{aspect}.jsonl")
            r.output_dir, r.seed, r.ensemble = str(self.out / "rm" / aspect), self.cfg.seed, 1
            r.threads, r.precision = r.threads or self.cfg.threads, self.cfg.precision
            print(f"reward model for {aspect}:")
            train_reward_models(r)

    def rl_config(self):
        rl = copy.deepcopy(self.cfg.rl)
        rl.output_dir, rl.seed = str(self.out / "ppo"), self.cfg.seed
        rl.threads, rl.precision = self.cfg.threads, self.cfg.precision
        rl.model.policy = str(self.out / "sft")
        rl.model.load_in_4bit = rl.model.load_in_4bit or self.cfg.load_in_4bit
        return rl

    def build_trainer(self, rl, select):
        """The PPO trainer with the aspect shaper (``ppo.run.run_ppo``'s ``build`` hook)."""
        from ..models import load_policy, load_tokenizer
        from ..ppo.rollout import GenerationSettings
        from ..ppo.trainer import PPOTrainer, seed_everything
        from ..rewards.ensemble import EnsembleReward
        from ..risk import build_selector
        from ..rlaif.aspects import AspectShaper, follow_up_replies
        from ..rlaif.chat import ChatModel

        seed_everything(rl.seed)
        tok = load_tokenizer(rl.model.policy)
        policy, ref = load_policy(rl.model)
        chat = ChatModel(policy.lm, tok, "policy", self.cfg.batch_size, rl.ppo.temperature, 1.0)
        train = self.split("train")
        formatted = {chat.prompt([{"role": "user", "content": p}]): p for p in train}
        models = {a: EnsembleReward(self.out / "rm" / a, "full", self.cfg.reward.batch_size)
                  for a in ASPECTS}
        shaper = AspectShaper(
            models, lambda p, c: follow_up_replies(chat, p, c, self.cons.follow_ups,
                                                   self.cfg.follow_up_tokens),
            self.cons.follow_ups, self.cfg.lam, user_prompt=lambda p: formatted.get(p, p))
        gen = GenerationSettings(self.cfg.answer_tokens, min(8, self.cfg.answer_tokens),
                                 rl.ppo.temperature, rl.ppo.top_k, rl.ppo.top_p)
        select = select or build_selector(rl, len(train), shaper)
        trainer = PPOTrainer(rl, policy, ref, tok, shaper, list(formatted), gen, select)
        return trainer, SimpleNamespace(test=PromptSet([], []))

    def ppo(self) -> None:
        from ..ppo.run import run_ppo

        rl = self.rl_config()
        run_ppo(rl, resume="auto", title="rlaif ppo", build=self.build_trainer)

    def eval(self) -> None:
        from ..rlaif.evaluate import evaluate

        evaluate(self)

    # ------------------------------------------------------------------ driver
    def done(self, stage: str) -> bool:
        o = self.out
        return {"prompts": (o / "prompts" / "train.jsonl").exists(),
                "sft-data": (o / "sft_data.jsonl").exists(),
                "sft": (o / "sft" / "config.json").exists(),
                "labels": (o / "labels" / "report.json").exists(),
                "reward": all((o / "rm" / a / "manifest.json").exists()
                              for a in ASPECTS),
                "ppo": (o / "ppo" / "summary.json").exists(),
                "eval": (o / "eval" / "results.json").exists()}[stage]

    def remove_from(self, stage: str) -> None:
        """Delete the outputs of ``stage`` and of every later stage."""
        gone = []
        for later in STAGES[STAGES.index(stage):]:
            for name in OUTPUTS[later]:
                path = self.out / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
                else:
                    continue
                gone.append(name)
        if gone:
            print(f"removed {', '.join(gone)} (redone from stage {stage})")

    def run(self, stages: list[str], force: bool = False) -> dict[str, float]:
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / "config.json", json.dumps(to_dict(self.cfg), indent=2))
        times = {}
        for n, stage in enumerate(stages, start=1):
            self.console.rule(f"[bold]rlaif stage {n}/{len(stages)}: {stage}")
            if force:
                self.remove_from(stage)
            if self.done(stage):
                print(f"{stage}: output exists, skipped (delete it or pass --force to redo)")
                continue
            k = STAGES.index(stage)
            if k and not self.done(STAGES[k - 1]):
                raise DataError(f"stage {stage} needs the output of stage {STAGES[k - 1]}; run "
                                f"`riskalign rlaif {STAGES[k - 1]}` first (or `all`)")
            t = time.perf_counter()
            getattr(self, stage.replace("-", "_"))()
            times[stage] = time.perf_counter() - t
            print(f"{stage}: {times[stage]:.0f} s")
        timing = self.out / "stage_seconds.json"
        old = read_json(timing, "stage timings") if timing.exists() else {}
        write_text(timing, json.dumps({**old, **times}, indent=2))
        return times


def run_rlaif(cfg: RLAIFConfig, stage: str = "all", force: bool = False) -> dict[str, float]:
    """Run one stage or all of them (``STAGES`` order)."""
    if stage != "all" and stage not in STAGES:
        raise DataError(f"stage must be 'all' or one of {', '.join(STAGES)}, got {stage!r}")
    return Pipeline(cfg).run(list(STAGES) if stage == "all" else [stage], force)


__all__ = ["Pipeline", "load_chat", "run_rlaif"]
