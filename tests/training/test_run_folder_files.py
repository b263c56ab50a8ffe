"""A run folder keeps what glowlib did not write: another program's hidden temporaries, another run's metrics;
and a run that fails again and again keeps one failed-* folder."""
import math

import pytest

from glowlib.__main__ import main
from glowlib.training import TrainingFailed, run_dir, train, trained
from test_train_robustness import tiny_run


def test_train_keeps_hidden_tmp_files_it_did_not_write(tmp_path):
    foreign = [tmp_path / ".notes.txt.tmp", tmp_path / ".draft.tmp", tmp_path / ".last.pt.tmp"]
    for f in foreign:
        f.write_text("an editor's")
    own = tmp_path / ".last.pt.4242.tmp"                   # what a killed write of glowlib leaves
    own.write_bytes(b"half")
    train(tiny_run(), tmp_path, stop_after=4, progress=False)
    assert all(f.read_text() == "an editor's" for f in foreign)
    assert not own.exists()


def test_train_does_not_overwrite_a_foreign_metrics_csv(tmp_path, capsys):
    (tmp_path / "metrics.csv").write_text("step,val_bpd\n100,3.1\n")
    with pytest.raises(FileExistsError, match="already holds metrics.csv"):
        train(tiny_run(), tmp_path, progress=False)
    assert (tmp_path / "metrics.csv").read_text() == "step,val_bpd\n100,3.1\n"
    rc = main(["train", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path), "--no-progress",
               "--set", "train.steps=2", "model.depth=1", "model.width=8", "train.device='cpu'"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "metrics.csv" in err
    assert (tmp_path / "metrics.csv").read_text() == "step,val_bpd\n100,3.1\n"


def test_a_diverging_cached_run_keeps_one_failed_folder(tmp_path, monkeypatch):
    import glowlib.training.step as step
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    run = tiny_run(nonfinite_policy="skip")
    plain = step.log_likelihood
    monkeypatch.setattr(step, "log_likelihood", lambda model, x, y=None, latents=False: plain(model, x, y) * math.nan)
    for _ in range(3):
        with pytest.raises(TrainingFailed):
            trained(run, progress=False)
    failed = list(run_dir(run).glob("failed-*"))
    assert len(failed) == 1 and (failed[0] / "last.pt").exists()
