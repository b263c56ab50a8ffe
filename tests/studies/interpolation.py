"""The interpolation study's claim (glowlib.studies.interpolation): decoded endpoints are the real images, a
property: one endpoint pixel in another bin, or a decode error of half a bin, contradicts it."""
import pandas as pd
import pytest

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


def _frames(html: str, div_id: str) -> list[dict]:
    """The animation frames a plotly HTML fragment adds to its figure."""
    import json
    start = html.index(f"Plotly.addFrames('{div_id}', ") + len(f"Plotly.addFrames('{div_id}', ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_the_path_point_by_point_gives_one_explorer_frame_per_point():
    """Each point of the path is a grid of every pair (real a, decoded point, real b); the explorer built from
    them has one frame and one slider step per point, named by t, each frame the pixels of its grid."""
    import torch

    from glowlib.analysis.presentation import image_explorer, image_trace
    n_pairs, n_points = 2, 5
    x_a = torch.zeros(n_pairs, 1, 4, 4, dtype=torch.uint8)
    x_b = torch.full((n_pairs, 1, 4, 4), 255, dtype=torch.uint8)
    path = torch.stack([torch.full((n_pairs, 1, 4, 4), 50 * k, dtype=torch.uint8) for k in range(n_points)], 1)
    steps = interpolation.path_steps(x_a, path, x_b)
    assert list(steps) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(grid.shape == (1 + n_pairs * 5, 1 + 3 * 5) for grid in steps.values())
    assert steps[0.5][1:5, 6:10].tolist() == [[100] * 4] * 4, "the middle column is the decoded point"
    labels = [f"{t:g}" for t in steps]
    html = image_explorer([grid.tolist() for grid in steps.values()], labels, "t = ", "t = {label}", "path-div",
                          start=2)
    frames = _frames(html, "path-div")
    assert [f["name"] for f in frames] == labels
    assert [f["data"][0]["z"][1][7] for f in frames] == [0, 50, 100, 150, 200]
    assert html.count('"method":"animate"') == n_points and '"active":2' in html
    assert image_trace([[[1, 2, 3]]]).type == "image" and image_trace([[1]]).type == "heatmap"
    with pytest.raises(ValueError, match="one image per label"):
        image_explorer([grid.tolist() for grid in steps.values()], labels[:2], "t = ", "{label}", "d")
