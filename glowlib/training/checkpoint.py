"""Checkpoints: building a run's model, writing and reading the training state, and loading a trained model.

A checkpoint file is a ``torch.save``d dict ``{"format": FORMAT, "sha256": ..., "payload": bytes}`` whose payload
is the ``torch.save``d training state and whose sha256 is the payload's, written atomically (``glowlib.files``):
a run killed while saving keeps its previous checkpoint, and a file damaged later (a bad disk, a cut copy) is
recognised instead of loading as wrong numbers. Files written before the checksum (the state itself, no wrapper)
still load: such a file is validated once and rewritten with its checksum (the same state; where the folder is
read-only it is validated on every load instead).

What a file holds is checked before anything uses it (``check_state``): the keys, the config (which bounds every
size), each weight's name and shape against the model that config builds, finite weights, a step within the run's
steps, and the types of what a resume restores. A malformed file is refused with one line naming what is wrong.

Both layers are read with ``torch.load(weights_only=True)``: tensors and plain data only, so a tampered file
cannot run code when it is unpickled. The one class allowed beyond those is ``TorchVersion``, which older
checkpoints hold as their ``torch_version`` (now written as a plain string). ``load_checkpoint`` refuses a
missing, corrupt, tampered or foreign file with a ``CheckpointError`` that names it and leaves it as it is.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import pickle
from pathlib import Path

import torch
from torch.torch_version import TorchVersion

from ..config import RunConfig
from ..files import WriteError, atomic_write_bytes
from ..models import Dequantizer, Glow, MaCow, RealNVP, make_dequantizer

FORMAT = "glowlib-checkpoint-sha256"
REQUIRED = ("model", "ema", "optimizer", "step", "config")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or written; a file that cannot be read is left untouched."""


class CheckpointWriteError(CheckpointError):
    """A file of a run folder that could not be written: the message names it and says why, on one line."""


def start_over_advice(path: Path) -> str:
    """How to start a run over when its checkpoint is unusable, without losing anything silently. A run folder
    has ``train --restart``; a trained-model cache entry has no such option, and needs none: the cache sets an
    unusable entry aside and retrains it by itself (``training.cache``)."""
    folder = Path(path).parent
    return (f"To start over, move {folder / 'last.pt'} and {folder / 'best.pt'} aside: `python -m glowlib train "
            f"--restart --out {folder}` does that (with the run's other options); a trained-model cache entry "
            f"is set aside and retrained by its next use")


def build_model(run: RunConfig) -> Glow:
    if run.model_type == "macow":
        return MaCow(run.model)
    return (RealNVP if run.model_type == "realnvp" else Glow)(run.model)


def build_dequantizer(run: RunConfig) -> Dequantizer | None:
    """The learned q(u | x) of a ``train.dequantization="variational"`` run (its default size), else None: uniform
    noise needs no module."""
    if run.train.dequantization == "uniform":
        return None
    return make_dequantizer(run.train.dequantization, run.model.in_channels)


def checked_bytes(state: dict) -> bytes:
    """``state`` serialised inside the checksummed wrapper (module docstring)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapper = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}, wrapper)
    return wrapper.getvalue()


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically, with the sha256 of its serialised bytes (module docstring)."""
    try:
        atomic_write_bytes(path, checked_bytes(state))
    except WriteError as e:
        raise CheckpointWriteError(str(e)) from e


def _safe_load(source, path: Path, map_location, advice: str):
    """``torch.load`` of tensors and plain data only (and ``TorchVersion``, module docstring)."""
    try:
        with torch.serialization.safe_globals([TorchVersion]):
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line]
        if lines or "Weights only load failed" in str(e):
            reason = lines[0] if lines else str(e).splitlines()[0]
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data ({reason}); "
                                  f"it was not loaded, since unpickling them could run code. glowlib writes no "
                                  f"such objects, so the file is not a glowlib checkpoint or was altered. It was "
                                  f"left as it is. {advice}.") from e
        raise _corrupt(path, e, advice) from e
    except Exception as e:  # torch raises several types for truncated / garbage files
        raise _corrupt(path, e, advice) from e


def _corrupt(path: Path, e: Exception, advice: str) -> CheckpointError:
    reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return CheckpointError(f"checkpoint {path} is corrupt or not a glowlib checkpoint ({reason}). It was left as "
                           f"it is. {advice}.")


def read_checked(path: Path, map_location="cpu", advice: str | None = None) -> tuple[object, bool]:
    """(what the file holds, whether it had a checksum): the checksummed wrapper's payload after its checksum
    matched, or a file written before checksums as it is. Missing, corrupt or tampered: CheckpointError naming
    the file (left untouched) and ending with ``advice`` (default: :func:`start_over_advice`)."""
    path = Path(path)
    advice = start_over_advice(path) if advice is None else advice
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    state = _safe_load(path, path, map_location, advice)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        payload = state.get("payload")
        if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != state.get("sha256"):
            raise CheckpointError(f"checkpoint {path} is corrupt: its contents do not match the checksum written "
                                  f"with them. It was left as it is. {advice}.")
        return _safe_load(io.BytesIO(payload), path, map_location, advice), True
    return state, False


def load_checkpoint(path: Path, map_location="cpu", resume: bool = False) -> dict:
    """Read and check a checkpoint (``check_state``; ``resume``: also what a resume restores); a missing,
    corrupt, tampered or malformed file raises CheckpointError naming it (the file is not touched). A valid file
    written before checksums is rewritten with one (module docstring)."""
    path = Path(path)
    state, checksummed = read_checked(path, map_location)
    check_state(state, path, resume)
    if not checksummed:
        _add_checksum(path, state)
    return state


def _add_checksum(path: Path, state: dict) -> None:
    """Rewrite a validated checkpoint of before checksums with one: the same state, so nothing is lost, and later
    damage to it is caught. A folder that cannot be written (a read-only cache) keeps the old file, which is then
    validated again on each load."""
    upgraded = dict(state)
    if "torch_version" in upgraded:
        upgraded["torch_version"] = str(upgraded["torch_version"])
    try:
        atomic_write_bytes(path, checked_bytes({k: _to_cpu(v) for k, v in upgraded.items()}))
    except WriteError:
        pass


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- validation
# what a resume restores besides the weights (loop._resume_or_initialise), with the types each must have
_RESUME_FIELDS = {"best_val": (float, int), "test_at_best": (float, int), "lr_scale": (float, int),
                  "nonfinite_events": (list,), "wall_s": (float, int), "window": (list,), "window_images": (int,),
                  "metrics": (list,), "rng": (dict,)}
_SHAPES: dict[str, dict] = {}          # cache key -> {"model": {name: shape}, "dequantizer": ...}


def _expected_shapes(run: RunConfig) -> dict:
    """Name -> shape of every entry of the state dicts of ``run``'s model (and dequantiser), built on the meta
    device: no memory for the weights, so a large model costs only its construction."""
    key = f"{run.model_type}-{run.key()}"
    if key not in _SHAPES:
        try:
            with torch.device("meta"):
                model, deq = build_model(run), build_dequantizer(run)
        except (NotImplementedError, RuntimeError):       # an operation without a meta kernel: build it for real
            model, deq = build_model(run), build_dequantizer(run)
        _SHAPES[key] = {"model": {k: tuple(v.shape) for k, v in model.state_dict().items()},
                        "dequantizer": None if deq is None else
                        {k: tuple(v.shape) for k, v in deq.state_dict().items()},
                        "floating": {k for part in (model, deq) if part is not None
                                     for k, v in part.state_dict().items() if v.is_floating_point()}}
    return _SHAPES[key]


def _malformed(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is malformed: {what}. It was left as it is. "
                           f"{start_over_advice(path)}.")


def _check_weights(path: Path, name: str, weights, expected: dict, floating=frozenset()) -> None:
    if not isinstance(weights, dict):
        raise _malformed(path, f"its {name!r} is a {type(weights).__name__}, not a dict of tensors")
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        parts = ([f"lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}"] if missing else []) + \
                ([f"has unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}"] if extra else [])
        raise _malformed(path, f"its {name!r} weights do not fit the model of its config: {', '.join(parts)}")
    for key, shape in expected.items():
        value = weights[key]
        if not isinstance(value, torch.Tensor):
            raise _malformed(path, f"{name}[{key!r}] is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise _malformed(path, f"{name}[{key!r}] has shape {tuple(value.shape)}, but the model of its config "
                                   f"has {shape}")
        if value.is_floating_point() != (key in floating):
            raise _malformed(path, f"{name}[{key!r}] holds {value.dtype} values, but the model of its config has "
                                   f"{'floating-point' if key in floating else 'integer'} ones there")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise _malformed(path, f"{name}[{key!r}] holds non-finite values (NaN or inf); these weights cannot "
                                   f"be evaluated or trained on")


def check_state(state, path: Path, resume: bool = False) -> RunConfig:
    """Check what a checkpoint holds before it is used (module docstring); returns its config. ``resume``: also
    the fields a resume restores (the optimizer's state, the counters, the random state). Raises CheckpointError
    with one line naming what is wrong."""
    path = Path(path)
    missing = set(REQUIRED) - set(state) if isinstance(state, dict) else {"all"}
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}; it is not a glowlib training checkpoint")
    run = run_config_of(state, path)
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= run.train.steps:
        raise _malformed(path, f"step={step!r}, but its run trains train.steps={run.train.steps} steps")
    shapes = _expected_shapes(run)
    for name in ("model", "ema"):
        _check_weights(path, name, state[name], shapes["model"], shapes["floating"])
    if shapes["dequantizer"] is not None:
        for name in ("dequantizer", "dequantizer_ema"):
            if name not in state:
                raise CheckpointError(f"checkpoint {path} is of a variational-dequantisation run but holds no "
                                      f"{name}; it is incomplete (the file was left as it is)")
            _check_weights(path, name, state[name], shapes["dequantizer"], shapes["floating"])
    if not resume:
        return run
    for name, kinds in _RESUME_FIELDS.items():
        if name not in state:
            raise _malformed(path, f"it lacks {name!r}, which a resume restores")
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise _malformed(path, f"{name}={_short(value)} is not a {' or '.join(k.__name__ for k in kinds)}")
    for name in ("lr_scale", "wall_s"):
        if not math.isfinite(state[name]) or state[name] < 0 or (name == "lr_scale" and state[name] == 0):
            raise _malformed(path, f"{name}={state[name]!r} must be a finite number > 0" if name == "lr_scale"
                             else f"{name}={state[name]!r} must be a finite number >= 0")
    if state["window_images"] < 0 or not all(isinstance(v, (float, int)) for v in state["window"]):
        raise _malformed(path, f"its training window ({len(state['window'])} values, {state['window_images']} "
                               f"images) is not a list of numbers with a count >= 0")
    rows = state["metrics"]
    if len(rows) > step + 1 or not all(isinstance(r, dict) and isinstance(r.get("step"), int) for r in rows):
        raise _malformed(path, f"its metrics ({len(rows)} rows) are not rows of evaluations with integer steps "
                               f"up to step {step}")
    rng = state["rng"].get("torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise _malformed(path, "its random state ('rng': {'torch': ...}) is not a byte tensor")
    _check_optimizer(path, state["optimizer"], len(shapes["model"]))
    return run


def _check_optimizer(path: Path, optimizer, n_entries: int) -> None:
    """The optimizer state's layout (torch's ``Optimizer.state_dict``): a dict of per-parameter states and a list
    of parameter groups; the number of parameters is checked when the optimizer loads it."""
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict) \
            or not isinstance(optimizer.get("param_groups"), list) \
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in optimizer["param_groups"]):
        raise _malformed(path, "its 'optimizer' is not an optimizer state (a dict with 'state' and a list of "
                               "'param_groups')")
    for index, value in optimizer["state"].items():
        if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor) for v in value.values()):
            raise _malformed(path, f"the optimizer state of parameter {index!r} is not a dict of tensors")
        if not all(bool(torch.isfinite(v).all()) for v in value.values() if v.is_floating_point()):
            raise _malformed(path, f"the optimizer state of parameter {index!r} holds non-finite values")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_config_of(state: dict, path: Path) -> RunConfig:
    """The ``RunConfig`` a checkpoint was trained with; a config this version cannot read raises CheckpointError
    naming the field."""
    try:
        return RunConfig.from_dict(state["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} was written with a config this version of glowlib cannot read: "
                              f"{e}. It was left as it is.") from e


def check_resumable(state: dict, path: Path, run: RunConfig, world: int) -> None:
    """Raise CheckpointError unless ``state``, read from ``path``, can resume ``run`` trained by ``world``
    processes: written by the same config (execution-only fields may differ), by as many processes, and holding the
    optimizer's state."""
    if run_config_of(state, path).key() != run.key():         # execution-only fields may differ
        raise CheckpointError(f"{path} was written by a different config; use another --out or drop "
                              f"--resume (the file was left as it is)")
    if state.get("world_size", 1) != world:
        raise CheckpointError(f"{path} was trained by {state.get('world_size', 1)} process(es), each with "
                              f"train.batch_size images; resuming with {world} would change the global batch. "
                              f"Resume with the same number of processes (the file was left as it is)")
    if state["optimizer"] is None:
        raise CheckpointError(f"{path} holds no optimizer state (a best.pt kept for evaluation), so it cannot "
                              f"be resumed; resume from the run's own last.pt, or drop --resume (the file was left "
                              f"as it is)")


def load_trained(path, device="cpu", ema: bool = True) -> Glow:
    """The model of a checkpoint, with its Polyak-averaged weights by default, in eval mode."""
    return load_trained_with_dequantizer(path, device, ema)[0]


def load_trained_with_dequantizer(path, device="cpu", ema: bool = True) -> tuple[Glow, Dequantizer | None]:
    """(model, dequantiser) of a checkpoint, Polyak-averaged by default, in eval mode; the dequantiser is None for
    a uniform-dequantisation run."""
    state = load_checkpoint(path, map_location=device)
    run = run_config_of(state, path)
    model = build_model(run).to(device)
    model.load_state_dict(state["ema" if ema else "model"])
    dequantizer = build_dequantizer(run)
    if dequantizer is not None:                      # check_state made sure that both of its weights are there
        dequantizer.to(device).load_state_dict(state["dequantizer_ema" if ema else "dequantizer"])
        dequantizer.eval()
    return model.eval(), dequantizer


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    try:
        atomic_write_bytes(path, buffer.getvalue().encode())
    except WriteError as e:
        raise CheckpointWriteError(str(e)) from e
