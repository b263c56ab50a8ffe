"""What a training run shows while it trains (:class:`Progress`): a bar on a terminal, or a line per evaluation
where its output goes to a log.
"""
from __future__ import annotations

import math
import sys
import time

from tqdm.auto import tqdm


class Progress:
    """What a run shows while it trains: a tqdm bar on a terminal, or one line per evaluation (step, bits/dim,
    seconds per step, time left) where output goes to a log; nothing when ``mode`` is False."""

    def __init__(self, r, mode):
        self.r, self.desc = r, f"{r.run.model_type} {r.run.data.dataset} seed {r.run.train.seed}"
        show = bool(mode) and r.rank == 0
        self.lines = show and (mode == "lines" or (mode is True and not sys.stderr.isatty()))
        self.bar = tqdm(total=r.run.train.steps, initial=r.step, disable=not show or self.lines, mininterval=2.0,
                        desc=self.desc)

    def update(self) -> None:
        self.bar.update(1)

    def write(self, message: str) -> None:
        if self.lines:
            print(message, flush=True)
        else:
            self.bar.write(message)

    def note(self, row: dict) -> None:
        self.bar.set_postfix(train=f"{row['train_bpd']:.3f}", val=f"{row['val_bpd']:.3f}")
        if not self.lines:
            return
        r, steps = self.r, self.r.run.train.steps
        done = r.step - r.step_at_start
        per_step = (time.perf_counter() - r.t_start) / done if done else math.nan
        left = (steps - r.step) * per_step
        print(f"{self.desc}: step {r.step:,}/{steps:,} ({r.step / steps:.0%}), train {row['train_bpd']:.3f}, "
              f"val {row['val_bpd']:.3f} bits/dim, {per_step:.3g} s/step, about {duration(left)} left",
              flush=True)

    def close(self) -> None:
        self.bar.close()


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "? min"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(seconds, 0) / 60:.0f} min"
