"""Config sizes are bounded and values typed, so that a mistyped --set fails at once with one line instead of
growing memory without bound or crashing later."""
import pytest

from glowlib.__main__ import main
from glowlib.config import LIMITS, DataConfig, GlowConfig, MaCowConfig, TrainConfig


@pytest.mark.parametrize("make, field, value", [
    (GlowConfig, "depth", 10 ** 7), (GlowConfig, "width", 10 ** 9), (GlowConfig, "n_levels", 40),
    (MaCowConfig, "n_units", 10 ** 6), (TrainConfig, "batch_size", 10 ** 9), (TrainConfig, "steps", 10 ** 12),
    (DataConfig, "n_val", 10 ** 12)])
def test_sizes_beyond_their_bound_are_refused_at_once(make, field, value):
    with pytest.raises(ValueError, match=rf"{field}={value} is out of range; allowed: \[\d+, {LIMITS[field]}\]"):
        make(**{field: value})


@pytest.mark.parametrize("setting, named", [
    ("data.data_root=5", "data.data_root=5 must be a folder's path"),
    ("data.data_root=''", "data.data_root='' must be a folder's path"),
    ("train.lr=1e300", "lr=1e+300 is out of range"),
    ("model.depth=10000000", "depth=10000000 is out of range")])
def test_bad_settings_on_the_command_line_are_one_line_errors(tmp_path, capsys, setting, named):
    rc = main(["train", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path / "out"),
               "--no-progress", "--set", setting])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and named in err
    assert not (tmp_path / "out").exists()
