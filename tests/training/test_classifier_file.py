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


def test_max_images_trains_on_the_first_training_images_only():
    data = load_dataset("digits")
    x, y = data.train_images, data.train_labels
    capped = cl.Classifier.fit(x, y, 10, max_images=300)
    first = cl.Classifier.fit(x[:300], y[:300], 10)
    probe = data.test_images[:50]
    assert torch.equal(capped.predict_proba(probe), first.predict_proba(probe))
    assert capped.settings.max_images == 300
    with pytest.raises(ValueError, match="max_images"):
        cl.ClassifierSettings(max_images=0)


def test_every_page_of_a_profile_measures_with_the_profile_s_own_classifier():
    """Profile.classifier sets the measuring classifier of a profile's pages (smoke's is small: its numbers mean
    nothing); its settings name its cache file, and the default settings keep the name they had before max_images
    existed, so that no classifier trained on every image is trained again."""
    from glowlib.studies.base import classifier_provenance, classifier_settings
    smoke = classifier_settings("smoke")
    assert smoke.max_images and classifier_settings("cpu") == cl.ClassifierSettings()
    assert cl.classifier_path("digits").name == "digits-0-5e4a41c57958.pt"
    record = classifier_provenance("digits", "smoke")
    path = cl.classifier_path("digits", settings=smoke)
    assert record["cache_file"] == path.name != cl.classifier_path("digits").name
    assert record["settings"]["max_images"] == smoke.max_images and record["settings"]["epochs"] == smoke.epochs
    assert path.is_file() and not cl.classifier_path("digits").is_file()
