"""The configuration leaf: its dataset names agree with the loaders, cache keys cannot drift when a field is
added, and values that no run can use are refused on construction, naming the field."""
import dataclasses
import math

import pytest

from glowlib import data
from glowlib.config import (DATASET_NAMES, KEYED_FIELDS, LEGACY_VALUES, DataConfig, GlowConfig, MaCowConfig,
                            RunConfig, TrainConfig)


def test_config_names_exactly_the_datasets_the_loaders_load():
    assert DATASET_NAMES == tuple(data.DATASETS)


def test_keyed_fields_are_fields_of_their_sections():
    """Every frozen keyed field still exists (a rename would silently change keys; it must be a decision)."""
    names = {cls: {f.name for f in dataclasses.fields(cls)} for cls in (GlowConfig, MaCowConfig, DataConfig,
                                                                          TrainConfig)}
    assert set(KEYED_FIELDS["model"]["glow"]) <= names[GlowConfig]
    assert set(KEYED_FIELDS["model"]["realnvp"]) <= names[GlowConfig]
    assert set(KEYED_FIELDS["model"]["macow"]) <= names[MaCowConfig]
    assert set(KEYED_FIELDS["data"]) <= names[DataConfig]
    assert set(KEYED_FIELDS["train"]) <= names[TrainConfig]


@pytest.mark.parametrize("section, base", [("model", GlowConfig), ("train", TrainConfig), ("data", DataConfig)])
def test_a_new_field_with_a_default_leaves_every_key_unchanged(section, base):
    """A config class extended by a field with a default (as precision, y_weight and dequantization once were)
    gives the key it had without the field; a non-default value of the new field gets a key of its own."""
    extended = dataclasses.make_dataclass(base.__name__, [("new_knob", float, 0.5)], bases=(base,), frozen=True)
    for run in (RunConfig(), RunConfig(model=GlowConfig(depth=4, width=16)), RunConfig(model_type="realnvp")):
        values = dataclasses.asdict(getattr(run, section))
        with_field = dataclasses.replace(run, **{section: extended(**values)})
        assert with_field.key() == run.key()
        changed = dataclasses.replace(run, **{section: extended(**values, new_knob=0.25)})
        assert changed.key() != run.key()


def test_a_new_macow_field_with_a_default_leaves_macow_keys_unchanged():
    extended = dataclasses.make_dataclass("MaCowConfig", [("new_knob", int, 3)], bases=(MaCowConfig,), frozen=True)
    run = RunConfig(model=MaCowConfig(depth=4), model_type="macow")
    same = dataclasses.replace(run, model=extended(**dataclasses.asdict(run.model)))
    assert same.key() == run.key()


def test_execution_fields_never_change_the_key():
    run = RunConfig(model=GlowConfig(depth=4))
    for name in ("inv_backprop", "fused", "channels_last"):
        other = dataclasses.replace(run, model=run.model.replace(**{name: not getattr(run.model, name)}))
        assert other.key() == run.key()


@pytest.mark.parametrize("make, field", [
    (lambda v: TrainConfig(lr=v), "lr"),
    (lambda v: TrainConfig(grad_clip=v), "grad_clip"),
    (lambda v: TrainConfig(ema_decay=v), "ema_decay"),
    (lambda v: TrainConfig(y_weight=v), "y_weight"),
])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_refused_naming_the_field(make, field, value):
    with pytest.raises(ValueError, match=rf"{field}={value!r}.*finite"):
        make(value)


def test_a_validation_part_is_required():
    """Checkpoints are chosen on validation bits/dim; with no validation images "best" would mean nothing."""
    with pytest.raises(ValueError, match=r"n_val=0.*validation"):
        DataConfig(n_val=0)
    with pytest.raises(ValueError, match=r"n_val=0"):
        RunConfig().override(["data.n_val=0"])


def test_a_field_whose_default_changes_the_numbers_gets_new_keys():
    """data.order's default (stratified splits) trains on other images than the files' order did: a model cached
    under the old key must not be taken for it, while the legacy value keeps the old key."""
    legacy = RunConfig(data=DataConfig(order="file"))
    assert legacy.key() == "9e438c941681"                 # the key of the default config before the field existed
    assert RunConfig().key() != legacy.key()
    assert set(LEGACY_VALUES["data"]) <= {f.name for f in dataclasses.fields(DataConfig)}
    for section, legacy_values in LEGACY_VALUES.items():
        assert not set(legacy_values) & set(KEYED_FIELDS[section]), "a keyed field needs no legacy value"
