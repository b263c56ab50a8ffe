"""The trained-model cache serves an entry only when it is whole and this config's: anything else is set aside
(moved, never deleted) and trained again, with one line saying so; a finished entry is served without writing."""
import json
import shutil

import pytest
import torch

from glowlib.training import cache, run_dir, trained
from glowlib.training.cache import is_cached, train_if_free
from glowlib.training.checkpoint import CheckpointError, load_checkpoint
from test_train_robustness import tiny_run


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))


def set_aside_folders(run):
    folder = run_dir(run)
    return sorted(folder.parent.glob(folder.name + ".set-aside-*"))


def test_a_best_pt_of_another_config_is_not_served_as_this_run(capsys):
    narrow, wide = tiny_run(), tiny_run().override(["model.width=16"])
    trained(narrow, progress=False)
    trained(wide, progress=False)
    foreign = (run_dir(wide) / "best.pt").read_bytes()
    (run_dir(narrow) / "best.pt").write_bytes(foreign)        # a copy into the wrong folder
    capsys.readouterr()
    model = trained(narrow, progress=False)
    assert model.model.config.width == 8 and model.run.key() == narrow.key()
    assert load_checkpoint(run_dir(narrow) / "best.pt")["config"]["model"]["width"] == 8
    (aside,) = set_aside_folders(narrow)
    assert (aside / "best.pt").read_bytes() == foreign and (aside / "done.json").exists()   # kept, not deleted
    lines = [line for line in capsys.readouterr().err.splitlines() if "set aside" in line]
    assert len(lines) == 1 and "another config" in lines[0] and str(aside) in lines[0]


def test_an_entry_that_lost_its_best_pt_is_not_cached_and_trains_again(capsys):
    run = tiny_run()
    trained(run, progress=False)
    (run_dir(run) / "best.pt").unlink()                       # as the old advice said, or a cleanup mid-run
    assert not is_cached(run)
    assert train_if_free(run, progress=False) == "trained"
    assert is_cached(run) and train_if_free(run, progress=False) == "cached"
    (aside,) = set_aside_folders(run)
    assert (aside / "done.json").exists() and not (aside / "best.pt").exists()
    assert "has no best.pt" in capsys.readouterr().err
    assert trained(run, progress=False).summary["steps"] == 8


def test_a_damaged_best_pt_in_the_cache_is_set_aside_and_retrained():
    run = tiny_run()
    trained(run, progress=False)
    best = run_dir(run) / "best.pt"
    raw = bytearray(best.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 40] = bytes(b ^ 0xFF for b in raw[len(raw) // 2:len(raw) // 2 + 40])
    best.write_bytes(bytes(raw))
    model = trained(run, progress=False)
    x = torch.rand(2, 1, 8, 8) - 0.5
    assert torch.isfinite(model.model.log_prob(x)).all()
    (aside,) = set_aside_folders(run)
    assert (aside / "best.pt").read_bytes() == bytes(raw)


def test_a_garbage_done_json_is_named_and_the_run_trained_again(capsys):
    run = tiny_run()
    trained(run, progress=False)
    done = run_dir(run) / "done.json"
    done.write_text("{not json")
    capsys.readouterr()
    assert trained(run, progress=False).summary["key"] == run.key()
    err = capsys.readouterr().err
    assert str(done) in err and "not a readable run summary" in err
    (aside,) = set_aside_folders(run)
    assert (aside / "done.json").read_text() == "{not json"
    assert json.loads(done.read_text())["key"] == run.key()


def test_done_json_is_not_written_when_best_pt_vanished_during_training(monkeypatch):
    run = tiny_run()
    plain = cache.train

    def train_then_lose_best(*args, **kwargs):
        result = plain(*args, **kwargs)
        (run_dir(run) / "best.pt").unlink()                  # someone removed the folder's files meanwhile
        return result

    monkeypatch.setattr(cache, "train", train_then_lose_best)
    with pytest.raises(CheckpointError, match="no best.pt; no done.json was written"):
        trained(run, progress=False)
    assert not (run_dir(run) / "done.json").exists()
    monkeypatch.setattr(cache, "train", plain)
    assert trained(run, progress=False).summary["steps"] == 8


def test_a_finished_entry_is_served_from_a_read_only_cache(monkeypatch):
    run = tiny_run()
    trained(run, progress=False)

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "_locked", unwritable)         # opening the lock for writing fails, as read-only
    served = trained(run, progress=False)
    assert served.summary["steps"] == 8 and served.model.config.width == 8
    shutil.move(run_dir(run) / "best.pt", run_dir(run).parent / "elsewhere.pt")
    with pytest.raises(CheckpointError, match="cannot be written to train it.*Permission denied"):
        trained(run, progress=False)


def test_a_damaged_last_pt_of_an_unfinished_entry_is_set_aside(capsys):
    run = tiny_run()
    folder = run_dir(run)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"not a checkpoint")
    assert trained(run, progress=False).summary["steps"] == 8
    (aside,) = set_aside_folders(run)
    assert (aside / "last.pt").read_bytes() == b"not a checkpoint"
    assert "cannot be resumed" in capsys.readouterr().err


def test_make_models_and_the_plan_do_not_list_an_entry_without_best_pt_as_cached():
    from glowlib import plan, workers
    run = tiny_run()
    trained(run, progress=False)
    assert plan.status(run) == ("cached", 0)
    (run_dir(run) / "best.pt").unlink()
    assert plan.status(run)[0] != "cached"
    lines = []
    outcomes = workers.work_through([run], progress=False, log=lines.append)
    assert outcomes[run.key()] == "trained" and not any(" cached " in line for line in lines)
    assert plan.status(run) == ("cached", 0)
