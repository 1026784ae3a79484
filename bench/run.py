"""``make bench``: riskalign's PPO against TRL 1.12's on the same work, in one invocation.

For each model (a tiny random Llama, then the 135M policy) the four configurations run in turn,
each in its own process (so each has its own peak memory), for ``rounds`` rounds: TRL PPO,
riskalign RLHF, riskalign RA-RLHF at alpha 0.4 and riskalign with a 5-member ensemble
(``adaptive``; every second timed iteration of that run uses one reward model instead, for a
paired overhead). Every run does ``warmup`` untimed iterations, then ``iterations`` timed ones; the
table gives the median seconds per iteration, tokens per second and peak memory, the ratios to
TRL, the spread of the timed iterations, riskalign's phase breakdown and each phase's floor:
the larger of its FLOPs over the machine's measured float32 matrix-multiply rate and, for
generation, the weights it must read over the measured memory bandwidth. Shared machines change
speed from minute to minute, so each riskalign run measures both rates itself, before and after
its iterations, and its floors use the faster of the two.

FLOPs per iteration (2 per multiply-add; attention scores ignored; N = non-embedding
parameters, H = vocabulary x hidden, B sequences, B0 trained, P prompt and T response tokens):
  generation 2 N B (P + T - 1) + 2 H B T,  one forward 2 N B (P + T) + 2 H B (T + 1),
  reward 2 N_rm B (P + T) per model,  update epochs x 3 x (2 N B0 (P + T) + 2 H B0 (T + 1)).
Bytes read by generation: T decoding steps x 4 (N + H), the float32 weights once per step.

Mixed precision: where the hardware computes bf16 natively (``--bf16 auto``, the default, asks
``riskalign.precision.native_bf16``) the three riskalign configurations also run with
``precision=bf16`` (``rlhf-bf16``, ``ra-rlhf-bf16``, ``ensemble-bf16``), in the same rounds.
Their floors use the bf16 matmul rate each run measures, and generation reads 2 (N + H) bytes per
step (it samples from a bf16 copy). TRL's PPO is asked whether it takes ``bf16=True`` here, plain
and with ``use_cpu=True``; its answers (its own error messages where it refuses) are recorded.
TRL is timed in float32 and, where the bf16 rows run and TRL accepts, also in bf16
(``trl-bf16``, ``use_cpu=True``), so that each riskalign bf16 row has a bf16 peer as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from spec import PHASES, Spec, machine_rates  # noqa: E402

CONFIGS = ("trl", "rlhf", "ra-rlhf", "ensemble")
BF16 = ("rlhf-bf16", "ra-rlhf-bf16", "ensemble-bf16")


def param_counts(folder: str) -> tuple[int, int]:
    """(non-embedding parameters N, vocabulary x hidden H) of a saved causal LM or classifier."""
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(folder)
    with __import__("torch").device("meta"):
        body = AutoModel.from_config(cfg)
    total = sum(p.numel() for p in body.parameters())
    head = cfg.vocab_size * cfg.hidden_size
    return total - head, head


def phase_flops(spec: Spec, n: int, h: int, n_rm: int, rm_models: int, trained: int,
                prompt_tokens: int) -> dict[str, float]:
    B, P, T = spec.batch_size, prompt_tokens, spec.response_length
    fwd = 2 * n * B * (P + T) + 2 * h * B * (T + 1)
    per_seq = fwd / B
    return {"generate": 2 * n * B * (P + T - 1) + 2 * h * B * T,
            "score": 2 * n_rm * B * (P + T) * rm_models,
            "forward_policy": fwd, "forward_ref": fwd,
            "update": spec.ppo_epochs * 3 * per_seq * trained}


TRL_FLAGS = {"trl": [], "trl-bf16": ["--bf16", "--use-cpu"],
             "trl-bf16-probe": ["--bf16", "--probe"],
             "trl-bf16-cpu-probe": ["--bf16", "--use-cpu", "--probe"]}


def run_one(config: str, spec: Spec, trl_python: str) -> dict:
    if config in TRL_FLAGS:
        cmd = [trl_python, str(HERE / "trl_runner.py"), spec.dump(), *TRL_FLAGS[config]]
    else:
        cmd = [sys.executable, str(HERE / "riskalign_runner.py"), config, spec.dump()]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(spec.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT ")]
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"bench: the {config} run failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len("BENCH-RESULT "):])


def phase_floors(flops: dict[str, float], gen_bytes: float, gflops: float,
                 gbps: float) -> dict[str, float]:
    """Seconds per phase at the machine's limits: FLOPs / matmul rate, and for generation at
    least its weight reads / memory bandwidth."""
    floors = {k: f / (gflops * 1e9) for k, f in flops.items()}
    floors["generate"] = max(floors["generate"], gen_bytes / (gbps * 1e9))
    return floors


def summarise(runs: dict[str, list[dict]], spec: Spec, floors: dict) -> dict:
    """Per configuration: median s/iteration, spread, memory, phases against floors; ratios to
    TRL, of each bf16 run to its fp32 twin, and the ensemble's overheads."""
    out = {}
    for config, results in runs.items():
        secs = [s for r in results for s in r["seconds"]]
        med = statistics.median(secs)
        trained = results[-1]["trained_sequences"]
        row = {"seconds_per_iteration": med, "iterations_timed": len(secs),
               "seconds_min": min(secs), "seconds_max": max(secs),
               "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
               "generated_tokens_per_second": spec.batch_size * spec.response_length / med,
               "trained_tokens_per_second": spec.ppo_epochs * trained * spec.response_length / med,
               "trained_sequences": trained}
        if "phases" in results[0]:
            ph = {k: statistics.median(p[k] for r in results for p in r["phases"]) for k in PHASES}
            fl = floors[config]
            row["phases"] = {k: {"seconds": ph[k], "floor_seconds": fl[k]} for k in PHASES}
            row["floor_seconds_per_iteration"] = sum(fl.values())
            row["matmul_gflops"] = statistics.median(r["matmul_gflops"] for r in results)
            row["memory_gbps"] = statistics.median(r["memory_gbps"] for r in results)
        out[config] = row
    trl = out["trl"]["seconds_per_iteration"]
    for config in out:
        if config != "trl":
            out[config]["speedup_vs_trl"] = trl / out[config]["seconds_per_iteration"]
        if config.endswith("-bf16") and "trl-bf16" in out:
            out[config]["speedup_vs_trl_bf16"] = (out["trl-bf16"]["seconds_per_iteration"]
                                                  / out[config]["seconds_per_iteration"])
        if config.endswith("-bf16") and config != "trl-bf16":
            twin = out[config.removesuffix("-bf16")]["seconds_per_iteration"]
            out[config]["speedup_vs_fp32"] = twin / out[config]["seconds_per_iteration"]
    ens = out["ensemble"]
    ens["overhead_vs_rlhf"] = ens["seconds_per_iteration"] / out["rlhf"]["seconds_per_iteration"] - 1
    paired = [s for r in runs["ensemble"] for s in r["paired_single_seconds"]]
    ens["paired_single_seconds_per_iteration"] = statistics.median(paired)
    ens["overhead_vs_paired_single"] = ens["seconds_per_iteration"] / statistics.median(paired) - 1
    return out


def print_table(name: str, res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"PPO iteration, {name}")
    for col in ("config", "s/iter", "min-max", "vs TRL", "vs fp32", "gen tok/s", "trained tok/s",
                "peak MB", "floor s/iter"):
        t.add_column(col, justify="right")
    for c in [c for c in CONFIGS + ("trl-bf16",) + BF16 if c in res]:
        r = res[c]
        t.add_row(c, f"{r['seconds_per_iteration']:.2f}",
                  f"{r['seconds_min']:.2f}-{r['seconds_max']:.2f}",
                  "1.00x" if c == "trl" else f"{r['speedup_vs_trl']:.2f}x",
                  f"{r['speedup_vs_fp32']:.2f}x" if "speedup_vs_fp32" in r else "-",
                  f"{r['generated_tokens_per_second']:.0f}", f"{r['trained_tokens_per_second']:.0f}",
                  f"{r['peak_rss_mb']:.0f}",
                  f"{r['floor_seconds_per_iteration']:.2f}" if "phases" in r else "-")
    Console(width=120).print(t)
    for c in [c for c in ("rlhf", "rlhf-bf16") if c in res]:
        p = Table(title=f"riskalign {c} phases, {name} (median s; floor = FLOPs / matmul rate, "
                        "generation at least weight reads / bandwidth)")
        for col in ("phase", "seconds", "floor", "x floor"):
            p.add_column(col, justify="right")
        for k, v in res[c]["phases"].items():
            p.add_row(k, f"{v['seconds']:.3f}", f"{v['floor_seconds']:.3f}",
                      f"{v['seconds'] / v['floor_seconds']:.1f}" if v["floor_seconds"] else "-")
        Console(width=120).print(p)
    ens = res["ensemble"]
    print(f"ensemble (5 reward models) over one reward model: "
          f"{100 * ens['overhead_vs_paired_single']:+.1f}% in the same process, alternating "
          f"iterations ({ens['seconds_per_iteration']:.2f} s against "
          f"{ens['paired_single_seconds_per_iteration']:.2f} s); "
          f"{100 * ens['overhead_vs_rlhf']:+.1f}% against the separate RLHF run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trl-python", required=True, help="Python of the environment with TRL 1.12.")
    ap.add_argument("--models", default="tiny,smollm2-135m",
                    help="Comma-separated: tiny and/or smollm2-135m.")
    ap.add_argument("--work", default=str(HERE / ".work"), help="Folder for the shared models.")
    ap.add_argument("--out", default=str(HERE / "results.json"), help="Results file.")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every run.")
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="Also run riskalign in mixed precision: auto = only where the hardware "
                         "computes bf16 natively (elsewhere it is emulated, several times slower).")
    args = ap.parse_args()
    import assets
    from riskalign.assets import resolve_model
    from riskalign.precision import native_bf16

    t0 = time.perf_counter()
    paths = assets.build(Path(args.work))
    gflops, gbps = machine_rates(args.threads)
    bf16_gflops, _ = machine_rates(args.threads, "bfloat16")
    print(f"float32 matmul rate: {gflops:.1f} GFLOP/s, bf16 {bf16_gflops:.1f} GFLOP/s, memory "
          f"bandwidth {gbps:.1f} GB/s ({args.threads} threads; each riskalign run measures its "
          "own for its floors)")
    native = native_bf16()  # where the riskalign runs compute: CUDA when visible, else the CPU
    with_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and native)
    bf16_note = ("" if with_bf16 else
                 f"bf16 rows skipped: no native bf16 here (a CPU without avx512_bf16 or amx_bf16, "
                 f"or a GPU before Ampere; CPU bf16 matmul {bf16_gflops:.1f} against "
                 f"{gflops:.1f} GFLOP/s in float32); "
                 "--bf16 on runs them anyway")
    if bf16_note:
        print(bf16_note)
    configs = CONFIGS + (BF16 if with_bf16 else ())
    plans = {"tiny": (paths["tiny"], 2, 5), "smollm2-135m": (resolve_model("smollm2-135m"), 1, 6)}
    n_rm, _ = param_counts(paths["reward"])
    by_model = {}
    for name in args.models.split(","):
        folder, rounds, iters = plans[name]
        spec = Spec(model=folder, reward=paths["reward"], prompts=paths["prompts"],
                    threads=args.threads, iterations=iters,
                    extra={"ensemble": paths["ensemble"], "output_dir": tempfile.mkdtemp()})
        n, h = param_counts(folder)
        trl_bf16 = run_one("trl-bf16-probe", spec, args.trl_python)["refused"]
        trl_bf16_cpu = run_one("trl-bf16-cpu-probe", spec, args.trl_python)["refused"]
        print("TRL PPO with bf16=True here: " + (f"refused ({trl_bf16})" if trl_bf16 else
                                                  "accepted") + "; with use_cpu=True as well: "
              + (f"refused ({trl_bf16_cpu})" if trl_bf16_cpu else "accepted")
              + "; TRL is timed in float32" + (", and in bf16 with use_cpu=True"
                                               if with_bf16 and not trl_bf16_cpu else ""))
        model_configs = configs + (("trl-bf16",) if with_bf16 and not trl_bf16_cpu else ())
        runs: dict[str, list[dict]] = {c: [] for c in model_configs}
        for rnd in range(rounds):
            for c in model_configs:
                print(f"{name}: round {rnd + 1}/{rounds}, {c} ...", flush=True)
                runs[c].append(run_one(c, spec, args.trl_python))
        floors = {c: phase_floors(phase_flops(spec, n, h, n_rm,
                                              5 if c.startswith("ensemble") else 1,
                                              runs[c][-1]["trained_sequences"],
                                              assets.PROMPT_TOKENS),
                                  spec.response_length * (2 if c in BF16 else 4) * (n + h),
                                  statistics.median(r["matmul_gflops"] for r in runs[c]),
                                  statistics.median(r["memory_gbps"] for r in runs[c]))
                  for c in configs[1:]}  # TRL's phases are not timed (configs holds no trl-bf16)
        res = summarise(runs, spec, floors)
        res["trl_bf16_refused"] = trl_bf16
        res["trl_bf16_use_cpu_refused"] = trl_bf16_cpu
        res["settings"] = {"batch_size": spec.batch_size, "mini_batch_size": spec.mini_batch_size,
                           "ppo_epochs": spec.ppo_epochs, "response_tokens": spec.response_length,
                           "prompt_tokens": assets.PROMPT_TOKENS, "kl_coef": spec.kl_coef,
                           "dtype": "float32" + (", and bf16 mixed precision for the -bf16 "
                                                 "rows" if with_bf16 else ""),
                           "threads": spec.threads, "rounds": rounds,
                           "warmup_iterations": spec.warmup, "timed_iterations": iters,
                           "policy_non_embedding_params": n, "reward_non_embedding_params": n_rm}
        by_model[name] = res
        print_table(name, res)
    headline = by_model.get("smollm2-135m") or next(iter(by_model.values()))
    result = {c: headline[c] for c in configs + ("trl-bf16",) if c in headline}
    result.update({"date": date.today().isoformat(), "matmul_gflops": gflops,
                   "bf16_matmul_gflops": bf16_gflops, "native_bf16": native,
                   "bf16_skipped": bf16_note or None,
                   "trl_bf16_refused": headline["trl_bf16_refused"],
                   "trl_bf16_use_cpu_refused": headline["trl_bf16_use_cpu_refused"],
                   "memory_gbps": gbps,
                   "headline_model": "smollm2-135m" if "smollm2-135m" in by_model else "tiny",
                   "by_model": by_model, "wall_seconds": time.perf_counter() - t0})
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"bench: {time.perf_counter() - t0:.0f} s in all; results in {args.out}")


if __name__ == "__main__":
    main()
