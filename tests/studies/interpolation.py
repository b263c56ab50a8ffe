"""The interpolation study's claim (glowlib.studies.interpolation): decoded endpoints are the real images, a
property: one endpoint pixel in another bin, or a decode error of half a bin, contradicts it."""
import pandas as pd

from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.studies import interpolation
from judged import claim_of, write


def reconstruction(error=1e-6, differing=0):
    return pd.DataFrame([{"pair": p, "pixels_differing_a": differing if p == 0 else 0, "pixels_differing_b": 0,
                          "max_abs_error_all_pairs": error, "half_bin": 0.5 / 256} for p in range(3)])


def test_exact_endpoints_confirm_and_one_differing_pixel_contradicts(tmp_path):
    write(tmp_path, "interpolation", reconstruction=reconstruction())
    claim = claim_of(interpolation, tmp_path)
    assert claim.id == "interpolation.exact_reconstruction" and claim.verdict == CONFIRMED
    for bad in (reconstruction(differing=1), reconstruction(error=0.5 / 256)):
        write(tmp_path, "interpolation", reconstruction=bad)
        assert claim_of(interpolation, tmp_path).verdict == CONTRADICTED
    assert claim_of(interpolation, tmp_path / "none").verdict == NOT_TESTABLE
