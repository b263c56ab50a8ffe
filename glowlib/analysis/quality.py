"""Objective sample-quality measures the paper does not have, from the measuring classifier (``classifier``):
confidence, the entropy of the predicted-class histogram, a Fréchet distance between its features of samples and
of real images (the FID formula with our classifier in place of Inception), precision and recall in its feature
space (Kynkäänniemi et al. 2019: fidelity and diversity measured apart), and nearest neighbours for the
memorisation check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..config import check_choice, check_range
from .classifier import Classifier
from .images import check_images, check_temperature
from .sampling import samples

SPACES = ("pixel", "feature")


def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) (the FID formula of Heusel et al.
    2017): |μa − μb|² + tr(Σa) + tr(Σb) − 2·tr((Σa Σb)^½), covariances with the N − 1 denominator.

    tr((Σa Σb)^½) is computed as Σ √λ over the eigenvalues λ of Σa^½ Σb Σa^½, which is similar to Σa Σb but
    symmetric positive semi-definite: the eigenvalues are real (round-off negatives clipped to 0), so no complex
    matrix square root, and singular covariances (N ≤ F) are fine.
    """
    a, b = (np.asarray(f.detach().cpu() if isinstance(f, Tensor) else f, dtype=np.float64) for f in (feat_a, feat_b))
    for name, f in (("feat_a", a), ("feat_b", b)):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"{name} has shape {f.shape}; expected (N, F) with N >= 2 to fit a Gaussian")
        if not np.isfinite(f).all():
            raise ValueError(f"{name} contains non-finite values")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat_a has {a.shape[1]} features and feat_b {b.shape[1]}; they must match")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    sqrt_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(max(mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


PR_NEIGHBOURS = 3    # k of the k-NN manifolds (Kynkäänniemi et al. 2019 use k = 3)


def _as_features(f, name: str) -> Tensor:
    f = (f.detach().cpu() if isinstance(f, Tensor) else torch.as_tensor(np.asarray(f))).double()
    if f.ndim != 2:
        raise ValueError(f"{name} has shape {tuple(f.shape)}; expected (N, F)")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains non-finite values")
    return f


def _knn_radii(f: Tensor, k: int) -> Tensor:
    """Distance of each point to its k-th nearest neighbour among the others (itself excluded)."""
    return torch.cdist(f, f).sort(1).values[:, k]


def _covered(points: Tensor, centres: Tensor, radii: Tensor, batch: int = 1024) -> Tensor:
    """For each point, whether it lies inside at least one ball (centre, radius): the k-NN manifold's cover."""
    return torch.cat([(torch.cdist(part, centres) <= radii).any(1) for part in points.split(batch)])


def precision_recall(real_features, sample_features, k: int = PR_NEIGHBOURS) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of samples against real images, in a feature space.

    Each set's manifold is the union of balls around its points, each ball reaching the point's k-th nearest
    neighbour within its own set. ``precision``: the share of samples inside the real manifold (fidelity: do the
    samples look like real images?); ``recall``: the share of real images inside the samples' manifold (diversity:
    does the model cover the data?). Known answers: identical sets give (1, 1); sets far apart give (0, 0). Both
    sets need more than k points; equal sizes make the two numbers comparable (each ball grows as its set thins).
    """
    check_range("k", k, 1)
    real, fake = _as_features(real_features, "real_features"), _as_features(sample_features, "sample_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features has {real.shape[1]} features and sample_features {fake.shape[1]}; they must "
                         f"match")
    for name, f in (("real_features", real), ("sample_features", fake)):
        if len(f) <= k:
            raise ValueError(f"{name} has {len(f)} points; the k={k} nearest-neighbour manifold needs more than {k}")
    precision = _covered(fake, real, _knn_radii(real, k)).double().mean().item()
    recall = _covered(real, fake, _knn_radii(fake, k)).double().mean().item()
    return {"precision": precision, "recall": recall}


def _entropy(p: Tensor) -> Tensor:
    """Entropy in nats along the last dimension, with 0·log 0 = 0."""
    p = p.double()
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)


def sample_quality(classifier: Classifier, samples_uint8: Tensor, reference_uint8: Tensor) -> dict:
    """Objective sample-quality measures from a classifier of the real data.

    ``confidence``: mean max-probability (a sanity gate, not a verdict: a smudge can be classified confidently);
    ``class_entropy``: entropy (nats) of the histogram of predicted classes, log(n_classes) when every class is
    equally common; ``mean_entropy``: mean per-sample predictive entropy; ``frechet``: Fréchet distance between the
    classifier features of the samples and of ``reference_uint8`` (real images); ``precision`` and ``recall``:
    :func:`precision_recall` in the same features. Real images measured against a disjoint real reference of the
    same size give each measure's real-vs-real baseline (``analysis.judging.real_halves``).

    The classifier reads every image intensity-normalised and was trained with ink changes (``classifier``), so the
    measures follow shapes, not ink: dimming real test images by 0.6-0.9 moves precision, recall and confidence by
    at most 0.01, thinning or thickening their strokes to 0.8 or 1.2 of the ink moves precision and recall by a few
    hundredths (``tests/analysis/test_sample_measures.py`` holds both within stated bounds). Precision alone
    still rates class-mean images and a two-class generator near real; recall does not (the recall gate).
    """
    if len(samples_uint8) <= PR_NEIGHBOURS or len(reference_uint8) <= PR_NEIGHBOURS:
        raise ValueError(f"sample_quality needs more than {PR_NEIGHBOURS} samples and reference images (the "
                         f"k-NN manifolds of precision and recall), got {len(samples_uint8)} and "
                         f"{len(reference_uint8)}")
    probs = classifier.predict_proba(samples_uint8)
    histogram = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double() / len(probs)
    fake, real = classifier.features(samples_uint8), classifier.features(reference_uint8)
    return {"confidence": probs.max(1).values.double().mean().item(),
            "class_entropy": _entropy(histogram).item(),
            "mean_entropy": _entropy(probs).mean().item(),
            "frechet": frechet_distance(fake, real), **precision_recall(real, fake)}


def nearest_neighbours(queries_uint8: Tensor, reference_uint8: Tensor, space: str,
                       classifier: Classifier | None = None, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference images of each query (the memorisation check): Euclidean distance on pixels in
    [0, 1] (``space="pixel"``) or on ``classifier.features`` (``space="feature"``). Returns (distances (N, k),
    indices into ``reference_uint8`` (N, k)), nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    check_choice("space", space, SPACES)
    check_images(queries_uint8, "queries_uint8")
    check_images(reference_uint8, "reference_uint8")
    if queries_uint8.shape[1:] != reference_uint8.shape[1:]:
        raise ValueError(f"queries {tuple(queries_uint8.shape[1:])} and reference {tuple(reference_uint8.shape[1:])} "
                         f"images must have the same (C, H, W)")
    check_range("k", k, 1, len(reference_uint8))
    if space == "feature":
        if classifier is None:
            raise ValueError("space='feature' needs classifier=...; e.g. cached_classifier(dataset)")
        queries, reference = classifier.features(queries_uint8).numpy(), classifier.features(reference_uint8).numpy()
    else:
        queries, reference = (x.flatten(1).double().numpy() / 255 for x in (queries_uint8, reference_uint8))
    distances, indices = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(queries)
    return distances, indices


def temperature_samples_table(model, classifier: Classifier, reference_uint8: Tensor, temperatures, n: int,
                              seeds) -> pd.DataFrame:
    """Sample quality against temperature (Sec. 5, Fig. 8 made quantitative): one row per temperature and sampling
    seed with ``temperature, sampling_seed,`` the measures of :func:`sample_quality`, ``n`` and the non-finite
    draw counts of ``samples``.

    Every temperature uses the same seeds, so the same standard-normal draws are scaled by each T: rows of one seed
    differ by the temperature alone (common random numbers for a comparison of two temperatures paired by seed).
    """
    temperatures = torch.as_tensor(temperatures, dtype=torch.float64).flatten().tolist()
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not temperatures:
        raise ValueError("temperatures is empty; pass e.g. [0, 0.5, 0.7, 1.0]")
    if not seeds:
        raise ValueError("seeds is empty; pass e.g. [0, 1, 2, 3, 4]")
    for t in temperatures:
        check_temperature(t)
    rows = []
    for t in temperatures:
        for seed in seeds:
            counts = {}
            x = samples(model, n, t, seed, counts=counts)
            rows.append({"temperature": float(t), "sampling_seed": seed,
                         **sample_quality(classifier, x, reference_uint8), "n": n, **counts})
    return pd.DataFrame(rows)
