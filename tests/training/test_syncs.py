"""The training step never waits for the device: no host sync in a step of any model, invertible backprop's
included (the plan's counter, which also sees the syncs inside torch's own functions)."""
import warnings

import pytest
import torch

from glowlib.layers import revgrad
from glowlib.step_count import StepCounter, count_step
from glowlib.profiles import profile_config

TINY = ["model.depth=2", "model.width=8", "train.batch_size=4", "train.init_batch=8", "train.device='cpu'"]


def celeba_like(**extra):
    """The gpu profile's CelebA model in miniature: L=4, additive, 5-bit, LU 1x1 convolutions, invertible backprop
    on (what the profile chooses at 64x64), on the 8x8 digits so that no data file is needed."""
    sets = TINY + ["model.n_levels=2", "model.coupling='additive'", "model.inv_backprop=True", "model.lu=True"]
    return profile_config("smoke", "digits", overrides=sets + [f"{k}={v!r}" for k, v in extra.items()])


def test_the_counter_sees_the_error_check_inside_torch_linalg_inv():
    w = torch.eye(4) + 0.1
    with StepCounter() as counter:
        torch.linalg.inv(w)
    assert counter.syncs["library error check"] == 1
    with StepCounter() as counter:
        torch.linalg.inv_ex(w)
    assert counter.n_syncs == 0


@pytest.mark.parametrize("lu", [True, False])
def test_an_invertible_backprop_step_has_no_host_sync(lu):
    counter, _ = count_step(celeba_like(**{"model.lu": lu}), batch=4)
    assert counter.n_syncs == 0, dict(counter.syncs)


def test_invertible_backprop_drift_still_warns_in_training(monkeypatch):
    """Inside the training loop the drift of the rebuilt inputs is read with the statistics, not at each level;
    a drift beyond the threshold still warns then."""
    from glowlib.training.loop import _read, session, train_step
    r = session(celeba_like())
    monkeypatch.setattr(revgrad, "DRIFT_WARNING", -1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_step(r)
        assert not [w for w in caught if "rebuilt" in str(w.message)]        # not during the step
        _read(r)
    assert [w for w in caught if "inv_backprop=False" in str(w.message)]
