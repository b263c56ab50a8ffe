"""The 5-bit study (glowlib.studies.bits_5v8): bits/dim across bit depths by known answers, how n-bit images are
shown, and its claim: the low-bit model's Fréchet distance against the high-bit model's shown at the low depth,
paired over training seeds, never past a failed gate."""
import numpy as np
import pandas as pd
import pytest
import torch

from glowlib.analysis import to_uint8
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.data import to_float
from glowlib.objective import bits_per_dim
from glowlib.studies import bits_5v8
from judged import claim_of, gates_of, write


def test_bits_per_dim_across_bit_depths_known_answers():
    d = 64
    uniform = torch.zeros(3, dtype=torch.float64)                    # log-density of U[-0.5, 0.5]^D
    bpd5, bpd8 = bits_per_dim(uniform, d, 5), bits_per_dim(uniform, d, 8)
    torch.testing.assert_close(bpd5, torch.full_like(bpd5, 5.0))
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(bpd5, 5, 8), bpd8)
    # a non-uniform 1-D density, constant on each 5-bit bin with probabilities pi: the 8-bit bins inside a 5-bit
    # bin share its probability equally, so scoring the same density with 8-bit bins must give bpd_5 + 3
    pi = torch.softmax(torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 0)
    pixels = torch.arange(256)
    log_density = torch.log(32 * pi[pixels // 8])
    b5 = bits_per_dim(log_density, 1, 5)
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(b5, 5, 8), bits_per_dim(log_density, 1, 8))
    torch.testing.assert_close(b5, -torch.log2(pi[pixels // 8]))
    with pytest.raises(ValueError):
        bits_5v8.bpd_at_more_bits(8.0, 8, 5)


def test_reduce_bits_is_how_n_bit_images_are_shown():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    for n in (1, 5, 8):
        assert torch.equal(bits_5v8.reduce_bits(images, n), to_uint8(to_float(images, n), n))


def bits_quality(n_seeds, low=100.0, high=150.0):
    rows = [{"source": "real vs real", "model_bits": np.nan, "seed": np.nan, "shown_bits": b, "temperature": np.nan,
             "frechet": 2.0, "precision": 0.9, "recall": 0.9} for b in (5, 8)]
    for bits, fd in ((5, low), (8, high)):
        for s in range(n_seeds):
            for shown in [b for b in (5, 8) if b <= bits]:
                for t in (0.7, 1.0):
                    rows.append({"source": "model", "model_bits": bits, "seed": s, "shown_bits": shown,
                                 "temperature": t, "frechet": fd + 3 * s + t, "precision": 0.5, "recall": 0.4})
    return pd.DataFrame(rows)


def test_bits_5v8_is_paired_over_training_seeds(tmp_path):
    names = [bits_5v8.model_name(b, s) for b in (5, 8) for s in range(3)]
    d = bits_5v8.decisions(bits_quality(3), gates_of(*names))
    assert d.verdict.tolist() == [CONFIRMED, CONFIRMED] and (d.n == 3).all()
    assert d.difference.tolist() == pytest.approx([-50.0, -50.0]) and (d.frechet_real_vs_real == 2.0).all()
    assert bits_5v8.decisions(bits_quality(2), gates_of(*names)).verdict.tolist() == [NOT_TESTABLE] * 2
    gated = bits_5v8.decisions(bits_quality(3), gates_of(*names, fail=["8bit-seed1"]))
    assert (gated.verdict == NOT_TESTABLE).all() and gated.gate.str.contains("8bit-seed1").all()
    bpd = pd.DataFrame([{"model_bits": m, "eval_bits": e, "bpd": 1.0 + e, "seed": 0} for m in (5, 8) for e in (5, 8)])
    write(tmp_path, "bits_5v8", quality=bits_quality(3, low=200.0), bpd=bpd, gates=gates_of(*names))
    claim = claim_of(bits_5v8, tmp_path)
    assert claim.verdict == CONTRADICTED and claim.source == "reviewers" and claim.n_seeds == 3
    assert claim.evidence == "temperature 0.7" and claim.difference == pytest.approx(50.0)
    write(tmp_path, "bits_5v8", quality=bits_quality(3).query("model_bits != 8"), bpd=bpd, gates=gates_of(*names))
    claim = claim_of(bits_5v8, tmp_path)
    assert claim.verdict == NOT_TESTABLE and claim.evidence == bits_5v8.TWO_DEPTHS
