"""Per-iteration metrics to JSONL, TensorBoard, optionally Weights & Biases, and a progress bar."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .atomic import write_text
from .files import read_jsonl


class RunLogger:
    """Appends one JSON line per iteration to ``metrics.jsonl``; on resume, lines past the
    checkpoint's iteration, and a last line torn by a kill mid-write, are dropped first so the
    file matches the resumed run."""

    def __init__(self, out: str | Path, total: int, start: int = 0, tensorboard: bool = True,
                 every: int = 1, title: str = "ppo", report_to: str = "none",
                 run_config: dict | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "metrics.jsonl"
        if self.path.exists():
            kept = [row for row in read_jsonl(self.path, "metrics log", torn_tail=True)
                    if row.get("iteration", 0) <= start]
            write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        self.every = every
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=start + 1)
        self.wandb = _wandb_run(self.out, title, run_config) if report_to == "wandb" else None
        self.progress = Progress(TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn())
        self.task = self.progress.add_task(title, total=total, completed=start, info="")

    def __enter__(self) -> "RunLogger":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()
        if self.writer:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()

    def log(self, stats: dict) -> None:
        it = stats["iteration"]
        with self.path.open("a") as f:
            f.write(json.dumps(stats) + "\n")
        numbers = {k: v for k, v in stats.items()
                   if isinstance(v, (int, float)) and k != "iteration"}
        if self.writer:
            for k, v in numbers.items():
                self.writer.add_scalar(k, v, it)
        if self.wandb is not None:
            self.wandb.log(numbers, step=it)
        info = f"score {stats['score_mean']:+.3f}  "
        if "risk_b0" in stats:
            info += f"B0 {stats['risk_b0']}  tail score {stats['kept_score_mean']:+.3f}  "
        info += f"kl {stats['kl']:.2f}  beta {stats['beta']:.3f}  {stats['time_total']:.1f}s/it"
        self.progress.update(self.task, completed=it, info=info)
        if it % self.every == 0:
            self.progress.console.print(f"iter {it}: {info}  policy_loss "
                                        f"{stats['policy_loss']:+.4f}  value_loss "
                                        f"{stats['value_loss']:.4f}")


def _wandb_run(out: Path, title: str, run_config: dict | None):
    """A Weights & Biases run that resumes with the riskalign run (its id is kept in the output
    folder), or a one-line error when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        raise ValueError("log.report_to=wandb needs the wandb package: pip install wandb") from None
    id_file = out / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id)
    return wandb.init(project=None, name=f"{out.name} ({title})", id=run_id, resume="allow",
                      dir=str(out), config=run_config or {})
