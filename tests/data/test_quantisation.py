"""A dataset is modelled at the bit depth its images carry: the 8x8 digits have 17 ink levels, and at 8 bits
uniform dequantisation would leave empty bins between them, where a flow's likelihood runs away (one validation
image scored 4,663 bits/dim that way). The loader stores them as 4-bit images and the profiles train them at 4 bits;
a finer depth is refused, naming the fix."""
import numpy as np
import pytest
import torch

from glowlib import data
from glowlib.profiles import PROFILES, profile_config
from glowlib.training import prepare_splits


def test_the_digits_fill_every_4_bit_level_and_keep_their_ink():
    from sklearn.datasets import load_digits
    d = data.load_dataset("digits", None, order="file")
    used, spanned = data.quantisation_gaps(d.train_images, 4)
    assert (used, spanned) == (16, 16)
    four = torch.div(torch.cat([d.train_images, d.test_images]), 16, rounding_mode="floor")
    raw = np.minimum(load_digits().images, 15)
    # the same multiset of levels as scikit-learn's, the darkest two merged (the split reorders the images)
    assert np.array_equal(np.bincount(four.numpy().ravel(), minlength=16), np.bincount(raw.astype(int).ravel(),
                                                                                        minlength=16))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_trains_the_digits_at_their_own_depth(profile):
    run = profile_config(profile, "digits")
    assert run.model.n_bits == run.data.n_bits == data.BIT_DEPTH["digits"] == 4
    assert profile_config(profile, "fashion_mnist").model.n_bits in (5, 8)


def test_a_depth_finer_than_the_images_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"'digits' uses 16 of the 256 levels .* model.n_bits=4"):
        prepare_splits(profile_config("smoke", "digits", overrides=["model.n_bits=8"]))
    coarse = torch.arange(0, 256, 32, dtype=torch.uint8).repeat(10)             # 8 levels of 256
    with pytest.raises(ValueError, match="train it at fewer bits"):
        data.check_quantisation("made_up", coarse, 8)
    data.check_quantisation("made_up", coarse, 3)                               # its own depth: every bin filled


def test_natural_8_bit_images_pass():
    for name in ("mnist5k", "fashion_mnist"):
        images = data.load_dataset(name, None).train_images[:2000]
        data.check_quantisation(name, images, 8)
