"""Per-iteration metrics to JSONL, TensorBoard and a rich progress bar."""

from __future__ import annotations

import json
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .atomic import write_text
from .files import read_jsonl


class RunLogger:
    """Appends one JSON line per iteration to ``metrics.jsonl``; on resume, lines past the
    checkpoint's iteration, and a last line torn by a kill mid-write, are dropped first so the
    file matches the resumed run."""

    def __init__(self, out: str | Path, total: int, start: int = 0, tensorboard: bool = True,
                 every: int = 1, title: str = "ppo"):
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

    def log(self, stats: dict) -> None:
        it = stats["iteration"]
        with self.path.open("a") as f:
            f.write(json.dumps(stats) + "\n")
        if self.writer:
            for k, v in stats.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.writer.add_scalar(k, v, it)
        info = f"score {stats['score_mean']:+.3f}  "
        if "risk_b0" in stats:
            info += f"B0 {stats['risk_b0']}  tail score {stats['kept_score_mean']:+.3f}  "
        info += f"kl {stats['kl']:.2f}  beta {stats['beta']:.3f}  {stats['time_total']:.1f}s/it"
        self.progress.update(self.task, completed=it, info=info)
        if it % self.every == 0:
            self.progress.console.print(f"iter {it}: {info}  policy_loss "
                                        f"{stats['policy_loss']:+.4f}  value_loss "
                                        f"{stats['value_loss']:.4f}")
