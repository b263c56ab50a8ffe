"""Training that fails safely: checkpoints that cannot run code or load wrong numbers, one writer per run folder,
a folder checked before the first step and left tidy, runs without a finite evaluation reported (and retried by
the cache), and clear errors for a missing device or a config this version cannot read."""
import errno
import io
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from glowlib.profiles import profile_config
from glowlib.training import (CheckpointError, CheckpointWriteError, RunFolderBusy, TrainingFailed, load_checkpoint,
                              load_trained, load_trained_with_dequantizer, resolve_device, run_config_of, run_dir,
                              save_checkpoint, train, trained)
from glowlib.training.checkpoint import FORMAT


def tiny_run(**train_overrides):
    sets = ["model.depth=1", "model.width=8", "train.steps=8", "train.eval_every=4", "train.ckpt_every=4",
            "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=32", "data.n_val=32",
            "train.n_test_eval=64", "train.warmup_steps=3", "train.device='cpu'"] + \
        [f"train.{k}={v!r}" for k, v in train_overrides.items()]
    return profile_config("smoke", "digits", overrides=sets)


# ------------------------------------------------------------------ checkpoints that would run code
class WritesAMarker:
    """An object whose unpickling opens (creates) a file: what a tampered checkpoint could do with any callable."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def tampered_state(marker, run):
    return {"model": WritesAMarker(marker), "ema": {}, "optimizer": {}, "step": 0, "config": run.to_dict()}


def wrapped(state) -> bytes:
    """``state`` in the checksummed wrapper with a correct checksum: only the unpickling itself can refuse it."""
    import hashlib
    inner = io.BytesIO()
    torch.save(state, inner)
    payload = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}, outer)
    return outer.getvalue()


@pytest.mark.parametrize("layout", ["plain", "checksummed"])
def test_a_checkpoint_whose_unpickling_would_run_code_is_refused(tmp_path, layout):
    run, marker = tiny_run(), tmp_path / "marker"
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    if layout == "plain":
        torch.save(tampered_state(marker, run), path)
    else:
        path.write_bytes(wrapped(tampered_state(marker, run)))
    for load in (load_checkpoint, load_trained, load_trained_with_dequantizer):   # what `glowlib evaluate` calls
        with pytest.raises(CheckpointError, match=rf"{path}.*could run code"):
            load(path)
    assert not marker.exists()


def test_the_cache_refuses_a_tampered_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))
    run, marker = tiny_run(), tmp_path / "marker"
    folder = run_dir(run)
    folder.mkdir(parents=True)
    torch.save(tampered_state(marker, run), folder / "last.pt")          # an unfinished run: trained() resumes it
    tampered = (folder / "last.pt").read_bytes()
    trained(run, progress=False)                                         # set aside whole, then trained afresh
    assert not marker.exists(), "loading the tampered checkpoint ran its code"
    assert (folder / "done.json").exists()
    kept = [p for p in folder.parent.glob(folder.name + ".set-aside-*/last.pt")]
    assert len(kept) == 1 and kept[0].read_bytes() == tampered            # moved aside, never deleted


# ------------------------------------------------------------------ checksums and starting over
def test_a_damaged_checkpoint_is_refused_with_advice_that_works(tmp_path):
    run = tiny_run()
    train(run, tmp_path, stop_after=4, progress=False)
    last = tmp_path / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["format"] == FORMAT and isinstance(state["payload"], bytes)
    payload = bytearray(state["payload"])
    payload[len(payload) // 2] ^= 0xFF                                 # one flipped byte, as a bad sector
    state["payload"] = bytes(payload)
    torch.save(state, last)
    damaged = last.read_bytes()
    with pytest.raises(CheckpointError, match="do not match the checksum") as refused:
        train(run, tmp_path, resume=True, progress=False)
    message = str(refused.value)
    assert f"move {tmp_path / 'last.pt'} and {tmp_path / 'best.pt'} aside" in message
    assert f"python -m glowlib train --restart --out {tmp_path}" in message
    assert last.read_bytes() == damaged
    result = train(run, tmp_path, restart=True, progress=False)        # the advice: start over, nothing lost
    assert result.step == 8 and load_checkpoint(last)["step"] == 8
    (aside,) = tmp_path.glob("replaced-*")
    assert (aside / "last.pt").read_bytes() == damaged and (aside / "metrics.csv").exists()


def test_bytes_flipped_anywhere_in_the_file_are_caught(tmp_path):
    run = tiny_run()
    train(run, tmp_path, stop_after=4, progress=False)
    good = (tmp_path / "last.pt").read_bytes()
    for where in (len(good) // 3, len(good) // 2, 2 * len(good) // 3):
        bad = bytearray(good)
        bad[where:where + 8] = bytes(b ^ 0xFF for b in bad[where:where + 8])
        (tmp_path / "last.pt").write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match="--restart"):
            load_checkpoint(tmp_path / "last.pt")


def test_checkpoints_written_before_the_checksum_still_load(tmp_path):
    """An older checkpoint: the state itself, unwrapped, with torch_version as torch's TorchVersion object."""
    run = tiny_run()
    train(run, tmp_path / "new", progress=False)
    state = load_checkpoint(tmp_path / "new" / "best.pt")
    assert type(state["torch_version"]) is str
    state["torch_version"] = torch.__version__                         # a TorchVersion, as older versions saved
    assert type(state["torch_version"]) is not str
    (tmp_path / "old").mkdir()
    torch.save(state, tmp_path / "old" / "best.pt")
    old = load_trained(tmp_path / "old" / "best.pt")
    new = load_trained(tmp_path / "new" / "best.pt")
    x = torch.rand(3, 1, 8, 8) - 0.5
    assert torch.equal(old.log_prob(x), new.log_prob(x))


def test_resume_and_restart_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="exclude each other"):
        train(tiny_run(), tmp_path, resume=True, restart=True, progress=False)


# ------------------------------------------------------------------ one writer per run folder
def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nos.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0)\n"
         "print('held', flush=True)\ntime.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with pytest.raises(RunFolderBusy, match=rf"{out} is being written by another process \(pid {holder.pid}\)"):
            train(tiny_run(), out, progress=False)
        assert time.perf_counter() - started < 30                      # at once, not after waiting
        assert not (out / "last.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    result = train(tiny_run(), out, progress=False)                   # the holder died: its lock went with it
    assert result.step == 8
    assert (out / ".lock").read_text().strip() == str(os.getpid())


# ------------------------------------------------------------------ the folder is checked and kept tidy
def test_an_unwritable_out_folder_fails_before_the_first_step(tmp_path, monkeypatch):
    import glowlib.training.loop as loop
    monkeypatch.setattr(loop, "_step", lambda *a: pytest.fail("a step ran before the folder was checked"))
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CheckpointWriteError, match=rf"{tmp_path / 'a-file' / 'run'} as a run folder: Not a dir"):
        train(tiny_run(), tmp_path / "a-file" / "run", progress=False)
    import glowlib.files as files

    def read_only(fd):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.os, "fsync", read_only)                 # a folder that exists but takes no writes
    with pytest.raises(CheckpointWriteError, match=rf"could not write {tmp_path}/run/.write-probe-\d+: Read-only") \
            as e:
        train(tiny_run(), tmp_path / "run", progress=False)
    assert "\n" not in str(e.value)
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]


def test_a_failed_write_removes_its_temporary_and_names_path_and_reason(tmp_path, monkeypatch):
    import glowlib.files as files

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(CheckpointWriteError) as e:
        save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert str(e.value) == f"could not write {tmp_path / 'last.pt'}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_killed_writes_are_removed_on_the_next_start(tmp_path):
    train(tiny_run(), tmp_path, stop_after=4, progress=False)
    orphans = [tmp_path / ".last.pt.99999.tmp", tmp_path / ".metrics.csv.123.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("kept")
    train(tiny_run(), tmp_path, resume=True, progress=False)
    assert not any(orphan.exists() for orphan in orphans)
    assert (tmp_path / "notes.txt").read_text() == "kept"


# ------------------------------------------------------------------ runs without a finite evaluation
def test_a_run_without_a_finite_evaluation_fails_and_the_cache_retrains(tmp_path, monkeypatch):
    import glowlib.training.step as step              # what the training step computes log p(x) with
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    run = tiny_run(nonfinite_policy="skip")
    plain = step.log_likelihood
    monkeypatch.setattr(step, "log_likelihood", lambda model, x, y=None, latents=False: plain(model, x, y) * math.nan)
    with pytest.raises(TrainingFailed, match="without a finite validation bits/dim"):
        trained(run, progress=False)
    folder = run_dir(run)
    assert not (folder / "done.json").exists() and not (folder / "last.pt").exists()
    assert len(list(folder.glob("failed-*/last.pt"))) == 1               # set aside, not deleted
    monkeypatch.setattr(step, "log_likelihood", plain)
    model = trained(run, progress=False)                                # the next call trains again
    assert (folder / "done.json").exists() and model.summary["steps"] == 8


# ------------------------------------------------------------------ devices and configs this machine cannot use
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="train.device='cuda' but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(tiny_run(device="cuda"), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_with_an_unknown_config_field_names_it(tmp_path):
    train(tiny_run(), tmp_path, stop_after=4, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    state["config"]["model"]["attention_heads"] = 4                   # written by a later version
    save_checkpoint(tmp_path / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last.pt.*unknown field model.attention_heads"):
        load_trained(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="model.attention_heads"):
        train(tiny_run(), tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="model.attention_heads"):
        run_config_of(state, tmp_path / "last.pt")
