"""glowlib.analysis: image conversion, sampling, interpolation, attributes and manipulation on a tiny perturbed Glow,
and the classifier-based sample-quality measures against known answers."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from glowlib import Glow, GlowConfig
from glowlib import analysis
from glowlib.analysis import (Classifier, attribute_direction, cached_classifier, check_gates, exact_model,
                              failed_gates_of, frechet_distance, image_grid, interpolate, manipulate,
                              measure_attributes, nearest_neighbours, precision_recall, real_halves, reference_set,
                              sample_quality, samples, slant, stroke_thickness, temperature_samples_table, to_uint8)
from glowlib.analysis.judging import GATE_DRAWS, decide_non_inferior, deciding, reference_indices
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE
from glowlib.data import load_dataset, to_float
from flowcheck import perturb

N_BITS = 5   # a model below 8 bits, so that quantisation is exercised


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model(digits):
    """Tiny Glow on the 8x8 digits: ActNorm initialised on real images, every parameter moved off its init (a
    zero-initialised coupling is the identity and would make the checks trivial)."""
    torch.manual_seed(0)
    glow = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16, n_bits=N_BITS))
    glow.initialize(to_float(digits.train_images[:128], N_BITS) + 0.5 / 2 ** N_BITS)
    perturb(glow, scale=0.03)
    return glow.eval()


@pytest.fixture(scope="module")
def classifier(digits):
    """A digits classifier trained on the real training images for a few epochs (cached_classifier uses more)."""
    return Classifier.fit(digits.train_images, digits.train_labels, 10, seed=0, epochs=4)


def quantised(images_uint8, n_bits=N_BITS):
    return (images_uint8 >> (8 - n_bits)) << (8 - n_bits)


def encode_centres(model, images_uint8):
    return model.encode(to_float(images_uint8, N_BITS) + 0.5 / 2 ** N_BITS)[0]


# ---------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("n_bits", [5, 8])
def test_to_uint8_inverts_to_float(n_bits):
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = to_float(u, n_bits)
    assert torch.equal(to_uint8(x, n_bits), quantised(u, n_bits))
    # anywhere inside a bin maps to that bin
    assert torch.equal(to_uint8(x + 0.999 / 2 ** n_bits, n_bits), quantised(u, n_bits))


def test_to_uint8_known_values_and_clamping():
    x = torch.tensor([-0.5, 0.0, 0.49, 0.5, 0.7, -0.9])
    assert to_uint8(x, 5).tolist() == [0, 128, 248, 248, 248, 0]
    assert to_uint8(x, 8).tolist() == [0, 128, 253, 255, 255, 0]


@pytest.mark.parametrize("x, n_bits, match", [(torch.zeros(2, dtype=torch.uint8), 8, "float"),
                                               (torch.tensor([float("nan")]), 8, "NaN"),
                                               (torch.zeros(2), 9, "n_bits")])
def test_to_uint8_rejects_bad_input(x, n_bits, match):
    with pytest.raises(ValueError, match=match):
        to_uint8(x, n_bits)


def test_image_grid_shapes_and_placement():
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    grid = image_grid(images, nrow=3, pad=1)
    assert grid.shape == (1 + 2 * 9, 1 + 3 * 9) and grid.dtype == np.uint8
    assert np.array_equal(grid[1:9, 1:9], images[0, 0].numpy())
    assert np.array_equal(grid[10:18, 10:18], images[4, 0].numpy())      # second row, second column
    assert (grid[10:18, 19:27] == 0).all()                                # unfilled last cell
    rgb = image_grid(images.expand(5, 3, 8, 8), nrow=5, pad=2)
    assert rgb.shape == (2 + 10, 2 + 5 * 10, 3)
    with pytest.raises(ValueError, match="C=2"):
        image_grid(images.expand(5, 2, 8, 8), nrow=2)
    with pytest.raises(ValueError, match="4-D"):
        image_grid(images[0], nrow=2)


# ---------------------------------------------------------------------------------------------------- sampling
def test_samples_are_seeded_and_quantised(model):
    a = samples(model, 5, 0.7, seed=1, batch_size=2)
    assert a.shape == (5, 1, 8, 8) and a.dtype == torch.uint8
    assert torch.equal(a, samples(model, 5, 0.7, seed=1, batch_size=2))
    assert not torch.equal(a, samples(model, 5, 0.7, seed=2, batch_size=2))
    assert torch.equal(a, quantised(a))                                  # on the model's 5-bit grid
    # T = 0 is the mode: no randomness left
    assert torch.equal(samples(model, 3, 0.0, seed=1), samples(model, 3, 0.0, seed=2))


@pytest.mark.parametrize("kw, match", [(dict(n=0), "n=0"), (dict(temperature=-1.0), "temperature=-1.0"),
                                       (dict(y=torch.zeros(2, dtype=torch.long)), "y must")])
def test_samples_rejects_bad_arguments(model, kw, match):
    with pytest.raises(ValueError, match=match):
        samples(model, **{**dict(n=3, temperature=1.0, seed=0), **kw})


# ---------------------------------------------------------------------------------------------------- interpolation
def test_interpolate_endpoints_are_the_inputs(model, digits):
    x_a, x_b = digits.test_images[:4], digits.test_images[4:8]
    path, error = interpolate(model, x_a, x_b, n_points=3, batch_size=3)
    assert path.shape == (4, 3, 1, 8, 8) and path.dtype == torch.uint8
    assert error < 1e-4
    assert torch.equal(path[:, 0], quantised(x_a)) and torch.equal(path[:, -1], quantised(x_b))
    # the middle is the decoded average of the latents, worked out by hand
    with torch.no_grad():
        middle = model.decode([(za + zb) / 2 for za, zb in zip(encode_centres(model, x_a), encode_centres(model, x_b))])
    assert torch.equal(path[:, 1], to_uint8(middle, N_BITS))
    assert not torch.equal(path[:, 1], path[:, 0])


def test_bf16_model_interpolates_and_manipulates_through_its_float64_copy(model, digits):
    """A bf16-network model (float32 flow) round-trips only to bf16 accuracy; interpolate and manipulate run its
    float64 copy (networks still bf16), so the endpoints are exact and alpha = 0 gives the images back, while the
    caller's model is left in float32."""
    low = Glow(model.config.replace(precision="bf16"))
    low.load_state_dict(model.state_dict())
    low.eval()
    copy = exact_model(low)
    assert copy is not low and next(copy.parameters()).dtype == torch.float64
    nets = [m for m in copy.modules() if hasattr(m, "net_dtype")]
    assert nets and all(m.net_dtype == torch.bfloat16 for m in nets)           # the networks stay bf16
    assert exact_model(model) is model                                   # fp32: nothing to do
    x_a, x_b = digits.test_images[:4], digits.test_images[4:8]
    path, error = interpolate(low, x_a, x_b, n_points=3)
    assert error < 1e-9 and torch.equal(path[:, 0], quantised(x_a))
    assert next(low.parameters()).dtype == torch.float32
    images = digits.test_images[:6]
    direction = attribute_direction(low, images, torch.arange(6) % 2 == 0)
    assert torch.equal(manipulate(low, images, direction, [0.0])[:, 0], quantised(images))


def test_interpolate_rejects_mismatched_pairs(model, digits):
    with pytest.raises(ValueError, match="same shape"):
        interpolate(model, digits.test_images[:2], digits.test_images[:3], 3)
    with pytest.raises(ValueError, match="n_points"):
        interpolate(model, digits.test_images[:2], digits.test_images[2:4], 1)


# ---------------------------------------------------------------------------------------------------- attributes
def bar(width, length, vertical=True, size=16):
    image = np.zeros((size, size), np.uint8)
    top, left = (size - length) // 2, (size - width) // 2
    image[top: top + length, left: left + width] = 255
    image = image if vertical else image.T
    return torch.from_numpy(image.copy())[None, None]


def diagonal(leaning_right, size=16):
    image = np.zeros((size, size), np.uint8)
    for row in range(2, 14):
        image[row, size - 1 - row if leaning_right else row] = 255     # "/" has its top to the right
    return torch.from_numpy(image)[None, None]


def test_stroke_thickness_known_answers():
    thin, thick = bar(1, 12), bar(3, 12)
    # 2·area / outline = 2wL / (2L + 2w)
    assert stroke_thickness(thin).item() == pytest.approx(12 / 13)
    assert stroke_thickness(thick).item() == pytest.approx(2.4)
    assert stroke_thickness(bar(3, 12, vertical=False)).item() == pytest.approx(2.4)
    assert stroke_thickness(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)).item() == 0


def test_slant_signs_and_known_answers():
    assert slant(diagonal(leaning_right=True)).item() == pytest.approx(1.0)
    assert slant(diagonal(leaning_right=False)).item() == pytest.approx(-1.0)
    assert slant(bar(2, 10)).item() == pytest.approx(0.0, abs=1e-12)
    assert slant(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)).item() == 0


def test_attributes_of_real_digits():
    images = load_dataset("mnist5k").test_images[:20]
    table = measure_attributes(images)
    assert list(table.columns) == ["thickness", "slant"] and len(table) == 20
    assert np.isfinite(table.to_numpy()).all()
    assert table.thickness.between(1, 6).all()
    # dilating every stroke by a pixel on each side makes it thicker; mirroring left-right flips the slant
    dilated = torch.nn.functional.max_pool2d(images.float(), 3, stride=1, padding=1).to(torch.uint8)
    assert (stroke_thickness(dilated) > stroke_thickness(images)).all()
    assert torch.allclose(slant(images.flip(-1)), -slant(images), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- manipulation
def test_attribute_direction_is_the_difference_of_means(model, digits):
    base = digits.test_images[:20]
    brighter = (base.int() * 3 // 2).clamp(max=255).to(torch.uint8)
    images = torch.cat([base, brighter])
    bright = torch.arange(40) >= 20
    direction = attribute_direction(model, images, bright, batch_size=7)
    with torch.no_grad():
        by_hand = [zb.mean(0) - za.mean(0) for za, zb in zip(encode_centres(model, base),
                                                               encode_centres(model, brighter))]
    assert [tuple(d.shape) for d in direction] == model.config.latent_shapes
    for d, h in zip(direction, by_hand):
        assert torch.allclose(d, h, atol=1e-5)
    with pytest.raises(ValueError, match="all False"):
        attribute_direction(model, images, torch.zeros(40, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        attribute_direction(model, images, bright.long())


def test_manipulate_alpha_zero_gives_back_the_images(model, digits):
    images = digits.test_images[:6]
    direction = attribute_direction(model, images, torch.arange(6) % 2 == 0)
    out = manipulate(model, images, direction, torch.linspace(-1, 1, 3), batch_size=4)
    assert out.shape == (6, 3, 1, 8, 8) and out.dtype == torch.uint8
    assert torch.equal(out[:, 1], quantised(images))
    assert not torch.equal(out[:, 0], out[:, 1])
    with pytest.raises(ValueError, match="direction must be a list of 2"):
        manipulate(model, images, direction[:1], [0.0])


# ---------------------------------------------------------------------------------------------------- classifier
def test_classifier_is_accurate(classifier, digits):
    assert classifier.accuracy(digits.test_images, digits.test_labels) > 0.85
    probs = classifier.predict_proba(digits.test_images[:7])
    assert probs.shape == (7, 10) and torch.allclose(probs.sum(1), torch.ones(7))
    assert classifier.features(digits.test_images[:7]).shape == (7, classifier.settings.n_features)


def test_cached_classifier_trains_once_and_stores_its_test_accuracy(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    fit = Classifier.fit.__func__
    # one epoch instead of the default settings: this test is about the cache, not the training
    monkeypatch.setattr(Classifier, "fit", classmethod(lambda cls, *a, **k: fit(cls, *a, **k, epochs=1)))
    trained = cached_classifier("digits", seed=2)
    path = analysis.classifier_path("digits", seed=2)
    assert path.parent == tmp_path / "classifiers" and path.name.startswith("digits-2-") and path.is_file()
    assert trained.test_accuracy == pytest.approx(trained.accuracy(digits.test_images, digits.test_labels))
    assert Classifier.load(path).test_accuracy == trained.test_accuracy


def test_cached_classifier_is_reused_without_retraining(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    first = Classifier.fit(digits.train_images[:200], digits.train_labels[:200], 10, epochs=1)
    first.test_accuracy = 0.5
    first.save(analysis.classifier_path("digits", seed=3))
    assert analysis.classifier_path("digits", seed=3).parent == tmp_path / "classifiers"
    monkeypatch.setattr(Classifier, "fit", classmethod(lambda *a, **k: pytest.fail("retrained a cached classifier")))
    again = cached_classifier("digits", seed=3)
    assert again.test_accuracy == 0.5
    assert torch.equal(again.predict_proba(digits.test_images), first.predict_proba(digits.test_images))


def test_classifier_save_load_round_trip(classifier, digits, tmp_path):
    path = tmp_path / "sub" / "clf.pt"
    classifier.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["clf.pt"]         # no temporary file left behind
    loaded = Classifier.load(path)
    assert torch.equal(loaded.predict_proba(digits.test_images), classifier.predict_proba(digits.test_images))
    assert torch.equal(loaded.features(digits.test_images), classifier.features(digits.test_images))
    assert loaded.settings == classifier.settings and loaded.test_accuracy is None


def test_classifier_is_deterministic_given_seed(digits):
    images, labels = digits.train_images[:300], digits.train_labels[:300]
    fit = lambda seed: Classifier.fit(images, labels, 10, seed=seed, epochs=1).predict_proba(digits.test_images)
    assert torch.equal(fit(0), fit(0))
    assert not torch.equal(fit(0), fit(1))


def test_classifier_takes_any_image_shape_and_checks_its_input(digits):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 12, 16), dtype=torch.uint8, generator=g)
    clf = Classifier.fit(images, torch.arange(40) % 3, 3, epochs=1, n_features=32)
    assert clf.features(images[:5]).shape == (5, 32)
    with pytest.raises(ValueError, match=r"trained on \(3, 12, 16\)"):
        clf.predict_proba(digits.test_images)
    with pytest.raises(ValueError, match="setting='epoch'"):
        Classifier.fit(images, torch.arange(40) % 3, 3, epoch=1)
    with pytest.raises(ValueError, match="labels in"):
        Classifier.fit(images, torch.arange(40), 3)


# ---------------------------------------------------------------------------------------------------- measures
def with_moments(n, mean, cov, seed=0):
    """n points whose sample mean and covariance (N − 1 denominator) are exactly ``mean`` and ``cov``."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(x, rowvar=False)))).T     # now cov = I
    return mean + x @ np.linalg.cholesky(cov).T


def test_frechet_distance_known_answers():
    a = with_moments(50, np.zeros(1), np.eye(1))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    # N(0, 1) vs N(3, 4): (0 - 3)² + 1 + 4 - 2·√4 = 10
    assert frechet_distance(a, with_moments(60, np.full(1, 3.0), np.full((1, 1), 4.0), seed=1)) == pytest.approx(10)
    # general case against the textbook formula: tr (Σa Σb)^½ = Σ √λ over the (real, positive) eigenvalues of Σa Σb
    rng = np.random.default_rng(2)
    m_a, m_b = rng.standard_normal(4), rng.standard_normal(4)
    c_a, c_b = (m @ m.T + 0.1 * np.eye(4) for m in rng.standard_normal((2, 4, 4)))
    cross = np.sqrt(np.linalg.eigvals(c_a @ c_b).real).sum()
    expected = np.sum((m_a - m_b) ** 2) + np.trace(c_a) + np.trace(c_b) - 2 * cross
    got = frechet_distance(torch.tensor(with_moments(30, m_a, c_a)), with_moments(40, m_b, c_b, seed=3))
    assert got == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="features"):
        frechet_distance(np.zeros((4, 3)), np.zeros((5, 2)))


def test_nearest_neighbours_finds_exact_copies(classifier, digits):
    reference = digits.test_images
    for space in ("pixel", "feature"):
        distances, indices = nearest_neighbours(reference[[5, 17]], reference, space, classifier, k=3)
        assert distances.shape == indices.shape == (2, 3)
        assert indices[:, 0].tolist() == [5, 17] and np.allclose(distances[:, 0], 0, atol=1e-5)
        assert (np.diff(distances, axis=1) >= 0).all()
    with pytest.raises(ValueError, match="'pixel', 'feature'"):
        nearest_neighbours(reference[:2], reference, "latent")
    with pytest.raises(ValueError, match="needs classifier"):
        nearest_neighbours(reference[:2], reference, "feature")


def test_sample_quality_of_real_images_against_themselves(classifier, digits):
    quality = sample_quality(classifier, digits.test_images, digits.test_images)
    assert set(quality) == {"confidence", "class_entropy", "mean_entropy", "frechet", "precision", "recall"}
    assert quality["frechet"] == pytest.approx(0, abs=1e-6)
    assert quality["precision"] == quality["recall"] == 1.0
    label_freq = torch.bincount(digits.test_labels).double() / len(digits.test_labels)
    label_entropy = -(label_freq * label_freq.log()).sum().item()               # 2.28 nats, log 10 = 2.30
    assert quality["class_entropy"] == pytest.approx(label_entropy, abs=0.05)
    assert quality["class_entropy"] > 0.95 * math.log(10)
    assert quality["confidence"] > 0.8 and 0 <= quality["mean_entropy"] < 0.5


class UniformClassifier:
    """Stand-in with known outputs: every image gets p = 1/4 for each of 4 classes (argmax is class 0)."""

    def predict_proba(self, images):
        return torch.full((len(images), 4), 0.25)

    def features(self, images):
        return images.flatten(1).float()


def test_sample_quality_known_answers():
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    quality = sample_quality(UniformClassifier(), images, images)
    assert quality["confidence"] == pytest.approx(0.25)
    assert quality["mean_entropy"] == pytest.approx(math.log(4))
    assert quality["class_entropy"] == 0                                 # every sample predicted as class 0


# ---------------------------------------------------------------------------------------------------- precision, recall
def test_precision_recall_known_answers():
    real = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}          # identical sets
    assert precision_recall(real, real + 100) == {"precision": 0.0, "recall": 0.0}    # disjoint, far apart
    # on a line, k = 3: the real points 0..9 have balls of radius 3 at the ends and 2 inside; the samples 0..4 lie
    # on real points, 100..104 far away (precision 5/10); the samples' balls (radius 3 at 0 and 4, 2 at 1..3)
    # reach the real points 0..7 (recall 8/10)
    line = torch.arange(10.0)[:, None]
    fake = torch.cat([torch.arange(5.0), torch.arange(100.0, 105.0)])[:, None]
    assert precision_recall(line, fake, k=3) == {"precision": 0.5, "recall": 0.8}
    # fidelity and diversity apart: samples collapsed onto a quarter of the data are faithful but not diverse
    collapsed = real[:15].repeat(4, 1)
    pr = precision_recall(real, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] < 0.5


def test_precision_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="more than 3"):
        precision_recall(torch.zeros(3, 2), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="features"):
        precision_recall(torch.zeros(10, 2), torch.zeros(10, 3))
    with pytest.raises(ValueError, match="non-finite"):
        precision_recall(torch.full((10, 2), float("nan")), torch.zeros(10, 2))


# ---------------------------------------------------------------------------------------------------- references
def test_reference_sets_are_random_class_balanced_draws_not_prefixes():
    # mnist5k's file is sorted by label: a prefix of its file order is the digits 0-4 only
    ordered = load_dataset("mnist5k", order="file")
    assert set(ordered.test_labels[:500].tolist()) <= {0, 1, 2, 3, 4}
    for data in (ordered, load_dataset("mnist5k")):
        index = reference_indices(data.test_labels, 500, seed=3)
        assert torch.bincount(data.test_labels[index], minlength=10).tolist() == [50] * 10   # exactly equal
        assert torch.equal(reference_set(data.test_images, data.test_labels, 500, 3), data.test_images[index])
    data = load_dataset("mnist5k")
    a, b = (reference_indices(data.test_labels, 500, seed=s) for s in (0, 1))
    assert not torch.equal(a.sort().values, b.sort().values)                       # the seed draws another set
    reference, held = real_halves(data.test_images, data.test_labels, 500, seed=0)
    as_rows = lambda x: {bytes(im.numpy()) for im in x}
    assert not as_rows(reference) & as_rows(held)                                   # disjoint halves
    with pytest.raises(ValueError, match="n=501"):
        real_halves(data.test_images, data.test_labels, 501, seed=0)


# ---------------------------------------------------------------------------------------------------- gates
class Drawer(torch.nn.Module):
    """A stand-in model whose "samples" are given images (float, on the 8-bit scale): real images fed as samples, or
    a generator of faint blobs; ``overflow`` of each batch's first draw decode to NaN, none of its redraws (the
    sampler draws a batch, then redraws its non-finite images once each: calls alternate)."""

    def __init__(self, images, overflow=0.0):
        super().__init__()
        from types import SimpleNamespace
        self.config = SimpleNamespace(n_bits=8)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.images, self.overflow, self.first = to_float(images, 8), overflow, True

    def sample(self, n, temperature, generator, y=None):
        x = self.images[torch.randint(len(self.images), (n,), generator=generator)].clone()
        if self.first:
            x[: round(self.overflow * n)] = float("nan")
        self.first = not self.first if self.overflow else False
        return x


def near_black(digits):
    """What the undertrained models drew: a faint blob in the middle of a black image (pixel mean ~0.01)."""
    x = torch.zeros(100, 1, 8, 8, dtype=torch.uint8)
    x[:, :, 3:5, 3:5] = torch.randint(20, 60, (100, 1, 2, 2), generator=torch.Generator().manual_seed(0),
                                      dtype=torch.uint8)
    return x


def test_gates_pass_real_images_fed_as_samples(classifier, digits):
    real = reference_set(digits.test_images, digits.test_labels, 150, seed=0)
    pool = reference_set(digits.train_images, digits.train_labels, 500, seed=0)
    rows, x = check_gates("real", Drawer(pool), classifier, real, 150, seed=0)
    assert [r["gate"] for r in rows] == ["classifier confidence on T=1 samples", "share of non-finite draws",
                                         "pixel mean of T=1 samples", "recall of T=1 samples",
                                         "classes found among T=1 samples"]
    assert all(r["passed"] for r in rows) and x.shape == (150, 1, 8, 8)
    assert {r["n"] for r in rows} == {GATE_DRAWS} and GATE_DRAWS > 150   # the gates read more draws than they return
    assert failed_gates_of(pd.DataFrame(rows)) == []


def test_gates_fail_a_model_that_draws_near_black_images_or_overflows(classifier, digits):
    real = reference_set(digits.test_images, digits.test_labels, 150, seed=0)
    rows, _ = check_gates("blobs", Drawer(near_black(digits)), classifier, real, 150, seed=0)
    gates = pd.DataFrame(rows).set_index("gate")
    assert not gates.loc["pixel mean of T=1 samples", "passed"]
    assert gates.loc["pixel mean of T=1 samples", "value"] < 0.02 < 0.2 < gates.loc["pixel mean of T=1 samples",
                                                                                    "reference"]
    failed = failed_gates_of(pd.DataFrame(rows))
    assert failed and all(f.startswith("blobs: ") for f in failed) and "pixel mean" in " ".join(failed)
    pool = reference_set(digits.train_images, digits.train_labels, 500, seed=0)
    rows, _ = check_gates("overflows", Drawer(pool, overflow=0.2), classifier, real, 150, seed=0)
    share = pd.DataFrame(rows).set_index("gate").loc["share of non-finite draws"]
    assert share.value == pytest.approx(0.2, abs=0.01) and not share.passed
    # read back from a CSV, the gates still fail
    assert failed_gates_of(pd.read_csv(__import__("io").StringIO(pd.DataFrame(rows).to_csv(index=False)))) != []


# ---------------------------------------------------------------------------------------------------- decisions
def test_non_inferiority_reports_the_difference_and_decides_against_the_margin():
    a, b = np.array([0.9, 0.92, 0.91, 0.9]), np.ones(4)
    d = decide_non_inferior(a, b, 0.5)
    assert d.verdict == CONFIRMED and d.difference == pytest.approx(-0.0925) and d.ci_high < 0
    assert decide_non_inferior(a - 0.8, b, 0.5).verdict == CONTRADICTED
    assert decide_non_inferior(np.array([0.3, 0.9, 0.5]), np.ones(3), 0.5).verdict == INCONCLUSIVE
    gated = decide_non_inferior(a, b, 0.5, failed=["m: pixel mean = 0.01"])
    assert gated.verdict == NOT_TESTABLE and "pixel mean" in gated.gate
    from glowlib.analysis.stats import Decision
    verdicts = [Decision(CONFIRMED), Decision(INCONCLUSIVE), Decision(CONTRADICTED)]
    assert deciding(verdicts) == 2 and deciding(verdicts[:2]) == 1 and deciding(verdicts[:1]) == 0


def test_temperature_samples_table(model, classifier, digits):
    table = temperature_samples_table(model, classifier, digits.test_images, [0.0, 0.7], n=12, seeds=[4, 5])
    assert list(table.columns) == ["temperature", "sampling_seed", "confidence", "class_entropy", "mean_entropy",
                                   "frechet", "precision", "recall", "n", "nonfinite_first_draw",
                                   "nonfinite_redrawn"]
    assert table.temperature.tolist() == [0.0, 0.0, 0.7, 0.7] and table.sampling_seed.tolist() == [4, 5, 4, 5]
    assert (table.n == 12).all()
    assert table.class_entropy[0] == 0                                   # T = 0: twelve copies of the mode
    direct = sample_quality(classifier, samples(model, 12, 0.7, seed=4), digits.test_images)
    pd.testing.assert_series_equal(table.iloc[2][list(direct)], pd.Series(direct, name=2), check_dtype=False)
    with pytest.raises(ValueError, match="temperature=-0.5"):
        temperature_samples_table(model, classifier, digits.test_images, [1.0, -0.5], n=4, seeds=0)


def test_samples_redraw_and_count_draws_that_decode_to_nan():
    from types import SimpleNamespace
    from glowlib.analysis import samples

    class Flaky(torch.nn.Module):
        """Every first draw of a batch decodes its first two images to NaN, as an overflowing inverse would."""
        config = SimpleNamespace(n_bits=8)

        def __init__(self, again=False):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.calls, self.again = 0, again

        def sample(self, n, temperature, generator, y=None):
            self.calls += 1
            x = torch.rand(n, 1, 2, 2, generator=generator) - 0.5
            if (self.calls <= 2) if self.again else (self.calls % 2 == 1):   # again: the first redraw fails too
                x[:2] = float("nan")
            return x

    counts = {}
    x = samples(Flaky(), 6, 0.7, seed=0, batch_size=3, counts=counts)
    assert x.shape == (6, 1, 2, 2) and x.dtype == torch.uint8
    assert counts == {"nonfinite_first_draw": 4, "nonfinite_redrawn": 4}          # two per batch, two batches
    counts = {}
    samples(Flaky(again=True), 3, 0.7, seed=0, batch_size=3, counts=counts)       # the redraw overflows again
    assert counts["nonfinite_first_draw"] == 2 and counts["nonfinite_redrawn"] == 4

    class Broken(Flaky):
        def sample(self, n, temperature, generator, y=None):
            return torch.full((n, 1, 2, 2), float("nan"))

    with pytest.raises(ValueError, match="still decode to inf/NaN after 100 redraws.*lower one"):
        samples(Broken(), 2, 1.0, seed=0)
