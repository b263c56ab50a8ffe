"""The measuring classifier's cache file is a checkpoint like the models': checksummed, checked on load, a damaged
one set aside and retrained (its room would be tests/analysis; it is here with the other checkpoint files)."""
import torch

import pytest

from glowlib.analysis import classifier as cl
from glowlib.data import load_dataset
from glowlib.training.checkpoint import FORMAT, CheckpointError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))
    plain = cl.Classifier.fit.__func__                       # one epoch: the file is what is tested, not the fit
    monkeypatch.setattr(cl.Classifier, "fit", classmethod(lambda c, *a, **k: plain(c, *a, **{**k, "epochs": 1})))


def flip(path, n=40):
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + n] = bytes(b ^ 0xFF for b in raw[middle:middle + n])
    path.write_bytes(bytes(raw))
    return bytes(raw)


def test_a_classifier_file_with_flipped_bytes_is_set_aside_and_retrained(capsys):
    first = cl.cached_classifier("digits")
    path = cl.classifier_path("digits")
    assert torch.load(path, weights_only=True)["format"] == FORMAT
    damaged = flip(path)
    with pytest.raises(CheckpointError, match=rf"{path} is corrupt"):
        cl.Classifier.load(path)
    capsys.readouterr()
    again = cl.cached_classifier("digits")
    (aside,) = path.parent.glob(path.name + ".set-aside-*")
    assert aside.read_bytes() == damaged
    assert "set aside" in capsys.readouterr().err
    data = load_dataset("digits")
    assert again.test_accuracy == first.test_accuracy == again.accuracy(data.test_images, data.test_labels)


def test_a_classifier_file_of_before_checksums_is_checked_and_rewritten_with_one():
    classifier = cl.cached_classifier("digits")
    path = cl.classifier_path("digits")
    torch.save(classifier._state(), path)                    # the layout before checksums
    loaded = cl.Classifier.load(path)
    assert torch.load(path, weights_only=True)["format"] == FORMAT
    x = load_dataset("digits").test_images[:50]
    assert torch.equal(loaded.predict_proba(x), classifier.predict_proba(x))
    state = classifier._state()
    state["state_dict"]["head.weight"] = torch.full_like(state["state_dict"]["head.weight"], float("nan"))
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="non-finite"):
        cl.Classifier.load(path)


def test_setting_aside_twice_in_one_second_keeps_both_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(cl.time, "strftime", lambda fmt: "20260101-000000")      # the same second, twice
    path = tmp_path / "classifier.pt"
    names = []
    for content in (b"first", b"second"):
        path.write_bytes(content)
        aside = cl.set_aside_name(path)
        path.replace(aside)
        names.append(aside)
    assert names[0] != names[1] and [n.read_bytes() for n in names] == [b"first", b"second"]
