"""Run the CLI and SIGKILL it at a chosen moment: ``python kill_run.py MOMENT:N ARGS...``.

Moments: ``checkpoint-write:N`` inside the N-th checkpoint write (weights written, state not
yet); ``before-latest:N`` after the N-th checkpoint folder is in place, before ``latest`` names
it; ``log-line:N`` halfway through writing iteration N's line of metrics.jsonl.
"""

import json
import os
import signal
import sys

from riskalign import cli, logger
from riskalign.ppo import checkpoint


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(moment: str, n: int) -> None:
    calls = [0]
    if moment == "checkpoint-write":
        save_file = checkpoint.save_file

        def patched(*a, **k):
            save_file(*a, **k)
            calls[0] += 1
            if calls[0] == n:
                die()
        checkpoint.save_file = patched
    elif moment == "before-latest":
        write_text = checkpoint.write_text

        def patched(*a, **k):
            calls[0] += 1
            if calls[0] == n:
                die()
            write_text(*a, **k)
        checkpoint.write_text = patched
    elif moment == "log-line":
        log = logger.RunLogger.log

        def patched(self, stats):
            if stats["iteration"] == n:
                with self.path.open("a") as f:
                    f.write(json.dumps(stats)[:40])
                die()
            log(self, stats)
        logger.RunLogger.log = patched
    else:
        raise SystemExit(f"unknown moment {moment}")


if __name__ == "__main__":
    name, count = sys.argv[1].split(":")
    arm(name, int(count))
    sys.exit(cli.main(sys.argv[2:]))
