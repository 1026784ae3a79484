"""Command line: ``riskalign assets | ppo | sft | eval | demo | study | reward | prefs | overopt |
rlaif | generate``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .files import one_line

# The hub stays reachable (model.policy=gpt2 downloads when the network allows); the offline
# defaults are local folders and never ask it. HF_HUB_OFFLINE=1 makes a missing hub id fail at
# once instead of after retries.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see configs/).")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="Override any config key, e.g. ppo.batch_size=16 model.lora.enabled=true.")
    p.add_argument("--help-config", action="store_true",
                   help="List every config key with its default and help, then exit.")


def _given(v) -> bool:
    """A flag the user gave: not None, False or []. (0 is given: ``0 == False`` must not hide
    ``--ensemble 0`` from validation.)"""
    return v is not None and v is not False and not (isinstance(v, list) and not v)


def _load(args, cls, **flags):
    """The config for a command: --help-config prints the keys and gives None; --config, the
    key=value overrides, then each given flag (as ``key=value``) are applied in that order.
    The output folder is checked, and remembered so that a failure can clean up after itself."""
    from .config import describe, load_config
    from .outputs import OutputFolder, check_output_dir

    if args.help_config:
        print("\n".join(describe(cls)))
        return None
    overrides = list(args.overrides)
    overrides += [f"{k}={v}" for k, v in flags.items() if _given(v)]
    cfg = load_config(args.config, overrides, cls=cls)
    if getattr(cfg, "output_dir", None):
        cfg.output_dir = str(check_output_dir(cfg.output_dir))  # ~ expanded once, here
        args.output_folder = OutputFolder(cfg.output_dir)
    return cfg


def cmd_assets(args) -> None:
    from .assets import prepare_default_policy

    t = time.perf_counter()
    path = prepare_default_policy(force=args.force)
    print(f"default policy ready: {path} ({time.perf_counter() - t:.1f}s)")


def cmd_ppo(args) -> None:
    from .config import RunConfig
    from .ppo.run import run_ppo

    cfg = _load(args, RunConfig, output_dir=args.output_dir)
    if cfg is not None:
        run_ppo(cfg, resume=args.resume, overwrite=args.overwrite)


def cmd_sft(args) -> None:
    from .sft import SFTConfig, run_sft

    cfg = _load(args, SFTConfig)
    if cfg is not None:
        run_sft(cfg)


def cmd_eval(args) -> None:
    from .commands.eval import EvalConfig, run_eval

    seeds = f"[{','.join(str(s) for s in args.seeds)}]" if args.seeds else None
    cfg = _load(args, EvalConfig, seeds=seeds, output_dir=args.output_dir,
                baseline=args.baseline)
    if cfg is None:
        return
    cfg.models += args.model or []
    cfg.validate()
    result = run_eval(cfg)
    _print_metrics(result)
    _print_paired(Path(cfg.output_dir) / "metrics.json")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")


def _print_paired(metrics_file: Path) -> None:
    """The paired differences of metrics.json (none with a single model)."""
    from .files import read_json

    from rich.console import Console
    from rich.table import Table

    paired = read_json(metrics_file, "metrics").get("paired")
    if not paired:
        return
    keys = {"mean_reward": "mean reward", "tail_reward_q20": "worst 20% prompts",
            "cvar_reward": "CVaR"}
    table = Table(title=f"minus {paired['baseline']}, same prompts and seeds (95% bootstrap CI, "
                        f"n = {paired['n_prompts']} prompts x {paired['n_seeds']} seeds)")
    table.add_column("model")
    for title in keys.values():
        table.add_column(title, justify="right")
    for name, m in paired["models"].items():
        table.add_row(name, *[f"{m[k]['diff']:+.3f} [{m[k]['ci_low']:+.3f}, "
                              f"{m[k]['ci_high']:+.3f}]" if k in m else "-" for k in keys])
    Console().print(table)


def _print_metrics(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = {"mean_reward": "mean reward", "tail_reward_q20": "worst 20% prompts",
            "cvar_reward": "CVaR of rewards", "ppl_reference": "reference ppl",
            "distinct_2_per_text": "distinct-2"}
    table = Table(title="held-out metrics (mean ± std over seeds; report.md has them all)")
    table.add_column("model")
    for title in keys.values():
        table.add_column(title, justify="right")
    for name, m in result.items():
        table.add_row(name, *[f"{m[k]:.3f}" + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m
                                                 else "") for k in keys])
    Console().print(table)


def cmd_demo(args) -> None:
    from .commands.demo import DemoConfig, run_demo

    cfg = _load(args, DemoConfig, seeds=args.seeds, output_dir=args.output_dir)
    if cfg is not None:
        _print_metrics(run_demo(cfg))
        _print_paired(Path(cfg.output_dir) / "metrics.json")


def cmd_study(args) -> None:
    from .commands.study import StudyConfig, run_study

    cfg = _load(args, StudyConfig, output_dir=args.output_dir)
    if cfg is None:
        return
    _print_metrics(run_study(cfg))
    _print_paired(Path(cfg.output_dir) / "metrics.json")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")


def cmd_reward(args) -> None:
    from .reward_model.train import RewardTrainConfig, train_reward_models

    cfg = _load(args, RewardTrainConfig, ensemble=args.ensemble, output_dir=args.output_dir)
    if cfg is not None:
        train_reward_models(cfg)


def cmd_prefs(args) -> None:
    from .reward_model.synthetic import SyntheticPrefsConfig, make_synthetic_preferences

    cfg = _load(args, SyntheticPrefsConfig)
    if cfg is not None:
        make_synthetic_preferences(cfg)


def cmd_overopt(args) -> None:
    from .commands.overopt import OveroptConfig, run_overopt

    cfg = _load(args, OveroptConfig, output_dir=args.output_dir)
    if cfg is None:
        return
    results = run_overopt(cfg)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="held-out gold reward under proxy optimisation (means over seeds)")
    for col in ("method", "best gold", "final gold", "minus mean [95% CI]", "final proxy",
                "final KL"):
        table.add_column(col, justify="right")
    for m, r in results.items():
        d = r.get("final_gold_minus_mean")
        table.add_row(m, f"{r['best_gold']:+.3f}", f"{r['final_gold']:+.3f}",
                      f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else "-",
                      f"{r['final_proxy']:+.3f}", f"{r['final_kl']:.2f}")
    Console().print(table)


def cmd_rlaif(args) -> None:
    from .rlaif.config import RLAIFConfig
    from .commands.rlaif import run_rlaif

    if args.stage and "=" in args.stage:  # no stage given, only overrides
        args.overrides, args.stage = [args.stage, *args.overrides], None
    cfg = _load(args, RLAIFConfig, output_dir=args.output_dir, policy=args.policy,
                judge=args.judge)
    if cfg is not None:
        run_rlaif(cfg, args.stage or "all", force=args.force)


def cmd_generate(args) -> None:
    from .commands.generate import generate

    try:
        prompts = args.prompt or [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
    except UnicodeDecodeError:
        raise ValueError("standard input is not UTF-8 text") from None
    for row in generate(args.model, prompts, args.max_new_tokens, args.temperature,
                        args.reward, args.seed):
        print(json.dumps(row))


class _Subcommands:
    """``add_subparsers()`` whose every command also takes the common options (--debug)."""

    def __init__(self, sub, common: argparse.ArgumentParser):
        self.sub, self.common = sub, common

    def add_parser(self, name: str, **kw) -> argparse.ArgumentParser:
        return self.sub.add_parser(name, parents=[self.common], **kw)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="riskalign", description="Risk-averse and "
                                 "uncertainty-aware RLHF for language models.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="Show the full traceback of an error instead of one line.")
    ap.add_argument("--debug", action="store_true", default=False,
                    help="Show the full traceback of an error instead of one line.")
    sub = _Subcommands(ap.add_subparsers(dest="command", required=True), common)
    p = sub.add_parser("assets", help="Prepare the offline default policy (SmolLM2-135M-Instruct).")
    p.add_argument("--force", action="store_true", help="Rebuild even if already prepared.")
    p.set_defaults(fn=cmd_assets)
    p = sub.add_parser("ppo", help="Train a policy with PPO (RLHF).")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true",
                   help="Continue from the latest checkpoint in the output folder (a fresh "
                        "run, said in one line, when there is none).")
    p.add_argument("--overwrite", action="store_true",
                   help="Replace an earlier run in the output folder (without --resume or "
                        "--overwrite such a folder is refused).")
    p.add_argument("--output-dir", help="Output folder (same as output_dir=...).")
    p.set_defaults(fn=cmd_ppo)
    p = sub.add_parser("sft", help="Supervised fine-tuning on a task's positive texts or a file.")
    _add_config_args(p)
    p.set_defaults(fn=cmd_sft)
    p = sub.add_parser("eval", help="Compare models on held-out prompts: mean and tail reward, "
                       "CVaR, perplexity, diversity; writes metrics.json, report.md and PNGs.")
    _add_config_args(p)
    p.add_argument("--model", action="append", metavar="NAME=PATH[,PATH...]",
                   help="A model to evaluate (repeatable); several comma-separated paths give "
                        "one model per seed.")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="Sampling seeds.")
    p.add_argument("--baseline", metavar="NAME", help="Model the others are compared with per "
                   "prompt and seed (default: the first; same as baseline=...).")
    p.add_argument("--output-dir", help="Output folder (same as output_dir=...).")
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("demo", help="The offline RA-RLHF demo: SFT, then RLHF and RA-RLHF with "
                       "the same seed and budget, then eval of base, sft, rlhf and ra-rlhf.")
    _add_config_args(p)
    p.add_argument("--seeds", type=int, help="Number of seeds (default 1).")
    p.add_argument("--output-dir", help="Output folder (default runs/demo).")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("study", help="Studies with several seeds and paired confidence "
                       "intervals. ra-rlhf: RLHF against RA-RLHF from the same SFT model; "
                       "resumes where it stopped.")
    p.add_argument("name", choices=["ra-rlhf"], help="Which study.")
    _add_config_args(p)
    p.add_argument("--output-dir", help="Report folder (default runs/ra-rlhf-study).")
    p.set_defaults(fn=cmd_study)
    p = sub.add_parser("reward", help="Train a reward model, or an ensemble of them, on "
                       "preference pairs (Bradley-Terry).")
    _add_config_args(p)
    p.add_argument("--ensemble", type=int, metavar="M", help="Train M members differing in seed.")
    p.add_argument("--output-dir", help="Output folder (same as output_dir=...).")
    p.set_defaults(fn=cmd_reward)
    p = sub.add_parser("prefs", help="Make semi-synthetic preference pairs: a policy answers "
                       "twice, a gold reward picks the better answer.")
    _add_config_args(p)
    p.set_defaults(fn=cmd_prefs)
    p = sub.add_parser("overopt", help="Reward-hacking study: PPO on a proxy reward ensemble "
                       "with single/mean/min/uwo/adaptive, judged by a gold reward.")
    _add_config_args(p)
    p.add_argument("--output-dir", help="Output folder (default runs/overopt).")
    p.set_defaults(fn=cmd_overopt)
    p = sub.add_parser("rlaif", help="Virtue-based RLAIF: constitutional SFT, AI-judged "
                       "preferences for action, motivation and consequence, three reward models "
                       "and PPO on their UWO combination, then a before/after evaluation.")
    p.add_argument("stage", nargs="?", metavar="STAGE",
                   help="all (default) or one of: prompts, sft-data, sft, labels, reward, ppo, "
                        "eval. Finished stages are skipped.")
    _add_config_args(p)
    p.add_argument("--policy", help="Chat model to train (same as policy=...).")
    p.add_argument("--judge", help="Chat model that labels preferences (same as judge=...).")
    p.add_argument("--output-dir", help="Output folder (default runs/rlaif).")
    p.add_argument("--force", action="store_true", help="Redo the stage(s) even if done; first removes their "
                   "output and that of every later stage.")
    p.set_defaults(fn=cmd_rlaif)
    p = sub.add_parser("generate", help="Sample continuations of prompts (one JSON line each).")
    p.add_argument("--model", default="smollm2-135m", help="Model folder, hub id or the default.")
    p.add_argument("--prompt", action="append", help="A prompt (repeatable); else read stdin.")
    p.add_argument("--max-new-tokens", type=int, default=32, help="Tokens to generate.")
    p.add_argument("--temperature", type=float, default=1.0, help="Sampling temperature.")
    p.add_argument("--reward", choices=["vader", "non-toxicity"], help="Also print this score.")
    p.add_argument("--seed", type=int, default=0, help="Sampling seed.")
    p.set_defaults(fn=cmd_generate)
    return ap


def _os_message(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    reason = e.strerror or one_line(e)
    return f"{where}: {reason}" if where else reason


def main(argv: list[str] | None = None) -> int:
    """Run a command. A failure the user can cause (bad config, data, model folder, reward
    function, checkpoint, output path) ends in one line on stderr and exit code 2, and an output
    folder the failed command created is removed when it holds nothing of value; ``--debug``
    shows the traceback instead."""
    from .assets import MissingModelError
    from .ppo.checkpoint import CheckpointError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may sit on both sides of options; argparse keeps only the first run
    if extra:
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command not in ("ppo", "sft", "reward"):
        print(f"riskalign: error: only `ppo`, `sft` and `reward` run on several processes; run "
              f"`{args.command}` as a single process", file=sys.stderr)
        return 2
    debug = getattr(args, "debug", False)
    try:
        args.fn(args)
    except BrokenPipeError as e:  # e.g. `riskalign ppo --help-config | head`: a closed stdout
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"riskalign: error: {_os_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("riskalign: interrupted; rerun with --resume to continue from the last checkpoint",
              file=sys.stderr)
        return 130
    except (ValueError, CheckpointError, MissingModelError, OSError) as e:
        folder = getattr(args, "output_folder", None)
        if folder is not None:
            folder.discard_if_new()
        if debug:
            raise
        text = (_os_message(e) if isinstance(e, OSError) and not isinstance(e, MissingModelError)
                else one_line(e))
        print(f"riskalign: error: {text}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
