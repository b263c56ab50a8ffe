"""Checkpoints: building a run's model, writing and reading the training state, and loading a trained model.

A checkpoint file is a ``torch.save``d dict ``{"format": FORMAT, "sha256": ..., "payload": bytes}`` whose payload
is the ``torch.save``d training state and whose sha256 is the payload's, written atomically (``glowlib.files``):
a run killed while saving keeps its previous checkpoint, and a file damaged later (a bad disk, a cut copy) is
recognised instead of loading as wrong numbers. Files written before the checksum (the state itself, no wrapper)
still load.

Both layers are read with ``torch.load(weights_only=True)``: tensors and plain data only, so a tampered file
cannot run code when it is unpickled. The one class allowed beyond those is ``TorchVersion``, which older
checkpoints hold as their ``torch_version`` (now written as a plain string). ``load_checkpoint`` refuses a
missing, corrupt, tampered or foreign file with a ``CheckpointError`` that names it and leaves it as it is.
"""
from __future__ import annotations

import csv
import hashlib
import io
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
    """How to start a run over when its checkpoint is unusable, without losing anything silently."""
    folder = Path(path).parent
    return (f"To start over, delete {folder / 'last.pt'} and {folder / 'best.pt'}, or train with --restart "
            f"(restart=True), which moves them aside")


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


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically, with the sha256 of its serialised bytes (module docstring)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapper = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}, wrapper)
    try:
        atomic_write_bytes(path, wrapper.getvalue())
    except WriteError as e:
        raise CheckpointWriteError(str(e)) from e


def _safe_load(source, path: Path, map_location):
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
                                  f"left as it is. {start_over_advice(path)}.") from e
        raise _corrupt(path, e) from e
    except Exception as e:  # torch raises several types for truncated / garbage files
        raise _corrupt(path, e) from e


def _corrupt(path: Path, e: Exception) -> CheckpointError:
    reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return CheckpointError(f"checkpoint {path} is corrupt or not a glowlib checkpoint ({reason}). It was left as "
                           f"it is. {start_over_advice(path)}.")


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint; a missing, corrupt or tampered file raises CheckpointError naming it (the file is not
    touched)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    state = _safe_load(path, path, map_location)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        payload = state.get("payload")
        if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != state.get("sha256"):
            raise CheckpointError(f"checkpoint {path} is corrupt: its contents do not match the checksum written "
                                  f"with them. It was left as it is. {start_over_advice(path)}.")
        state = _safe_load(io.BytesIO(payload), path, map_location)
    missing = set(REQUIRED) - set(state) if isinstance(state, dict) else {"all"}
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}; it is not a glowlib training checkpoint")
    return state


def run_config_of(state: dict, path: Path) -> RunConfig:
    """The ``RunConfig`` a checkpoint was trained with; a config this version cannot read raises CheckpointError
    naming the field."""
    try:
        return RunConfig.from_dict(state["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} was written with a config this version of glowlib cannot read: "
                              f"{e}. It was left as it is.") from e


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
    if dequantizer is not None:
        if "dequantizer" not in state:
            raise CheckpointError(f"checkpoint {path} is of a variational-dequantisation run but holds no "
                                  f"dequantiser; it is incomplete (the file was left as it is)")
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
