"""Equal compute: a budget of counted floating-point operations that every arm of a comparison spends to its end.

Two model families compared "at the same compute" differ in cost per step, so at equal steps the costlier one gets
more compute. Cutting its run short at the cheaper run's time would stop it partway through its learning-rate decay
(every run anneals to its own last step), and the clock itself is noisy: two runs of identical work on a shared
2-core machine differ by up to a quarter in CPU seconds. So an arm at equal compute is a run of its own: its steps
are the budget divided by its FLOPs per step (:func:`at_budget`), its warmup and cosine decay laid over those steps,
its evaluations as many as the reference's. FLOPs are counted by dispatching one training step on the meta device
(``step_count.flops_meta``: the step up to the end of its backward pass, where all of its FLOPs lie): the count is a
function of the config alone, the same on every machine and on every count (two counts of one config are identical:
a spread of zero), where the measured clock of the same work spreads by several percent. The measured seconds stay
beside the verdicts as what the count leaves out (Python dispatch, memory traffic). Where two arms' FLOPs per step
differ by at most :data:`TOLERANCE`, equal steps are equal compute and the arms' own runs serve both.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from .config import RunConfig
from .files import atomic_write_bytes
from .training import cache_root

# FLOPs per step within 1% of each other count as equal: 6 steps in a 600-step run, less than one evaluation
# interval, and far less than the arms' measured difference in seconds per step
TOLERANCE = 0.01

_COUNTED: dict[str, float] = {}             # step_count.count_key -> FLOPs per step, this process's


def flops_path() -> Path:
    """Where the counted FLOPs per step are kept between processes, by ``step_count.count_key`` (the step's work,
    torch and the step's code: a count of older code is never read), beside the plan's counts."""
    return cache_root() / "plan" / "flops.json"


def flops_per_step(run: RunConfig, again: bool = False) -> float:
    """The FLOPs of one training step of ``run`` at its batch, counted on the meta device once per step's work
    (``step_count.count_key``; the seed, the learning rate and the run's length do not change it) and kept in
    :func:`flops_path` for later processes, unless ``again``: a fresh count, to show the unit's spread. Raises
    ValueError naming the run where the step cannot be counted there (a model that reads values in its step)."""
    from .step_count import count_key, flops_meta, read_kept

    key = count_key(run)
    if key in _COUNTED and not again:
        return _COUNTED[key]
    kept = {} if again else read_kept(flops_path())
    if key not in kept:
        with warnings.catch_warnings():         # bf16's speed on the meta device is unknown: nothing runs there
            warnings.simplefilter("ignore", RuntimeWarning)
            counted = flops_meta(run)
        if not counted:
            raise ValueError(f"the training step of {run.model_type} on {run.data.dataset!r} (key {run.key()}) "
                             "cannot be counted on the meta device, so it has no FLOPs budget; compare it at equal "
                             "steps")
        kept = {**read_kept(flops_path()), key: float(counted)}    # with what other processes kept meanwhile
        atomic_write_bytes(flops_path(), json.dumps(kept, indent=1, sort_keys=True).encode())
    _COUNTED[key] = float(kept[key])
    return _COUNTED[key]


def run_flops(run: RunConfig) -> float:
    """The FLOPs of ``run``'s whole training: its steps times :func:`flops_per_step`."""
    return flops_per_step(run) * run.train.steps


def same_compute(a: RunConfig, b: RunConfig) -> bool:
    """Whether ``a`` and ``b`` spend the same FLOPs within :data:`TOLERANCE` (relative to the larger)."""
    fa, fb = run_flops(a), run_flops(b)
    return abs(fa - fb) <= TOLERANCE * max(fa, fb)


def at_budget(run: RunConfig, budget: float) -> RunConfig:
    """``run`` trained to spend ``budget`` FLOPs: ``round(budget / flops_per_step)`` steps, with the learning-rate
    warmup and decay over those steps (a warmup given as a fraction scales by itself; one given in steps is scaled
    alike) and as many evaluations and checkpoints as ``run`` makes. ``run`` itself where its own steps already
    spend the budget within :data:`TOLERANCE`."""
    if not budget > 0:
        raise ValueError(f"budget={budget!r} FLOPs must be positive")
    own = run.train
    steps = max(1, round(budget / flops_per_step(run)))
    if abs(steps - own.steps) <= TOLERANCE * own.steps:
        return run
    scale = steps / own.steps
    overrides = [f"train.steps={steps}",
                 f"train.eval_every={max(1, steps // max(1, own.steps // own.eval_every))}",
                 f"train.ckpt_every={max(1, steps // max(1, own.steps // own.ckpt_every))}"]
    if own.warmup_fraction == 0:
        overrides.append(f"train.warmup_steps={round(own.warmup_steps * scale)}")
    return run.override(overrides)
