"""Every flow layer through the shared exactness check (round trip, log-det shape, brute-force Jacobian)."""
import pytest
import torch

from glowlib.layers import (ActNorm, Coupling, InvConv1x1, InvConv1x1LU, MaskedCoupling, Permute, Squeeze,
                           gaussian_log_prob, make_permutation)
from flowcheck import check_exact, prepare

LAYERS = {
    "actnorm": lambda c, s: ActNorm(c),
    "conv1x1": lambda c, s: InvConv1x1(c),
    "conv1x1_lu": lambda c, s: InvConv1x1LU(c),
    "rotation": lambda c, s: make_permutation("rotation", c, lu=False),
    "reverse": lambda c, s: Permute(c, "reverse"),
    "shuffle": lambda c, s: Permute(c, "shuffle"),
    "affine": lambda c, s: Coupling(c, 8, "affine"),
    "additive": lambda c, s: Coupling(c, 8, "additive"),
    "checkerboard0": lambda c, s: MaskedCoupling(c, s, 8, "checkerboard", 0),
    "checkerboard1": lambda c, s: MaskedCoupling(c, s, 8, "checkerboard", 1),
    "channel0": lambda c, s: MaskedCoupling(c, s, 8, "channel", 0),
    "channel1": lambda c, s: MaskedCoupling(c, s, 8, "channel", 1),
    "squeeze": lambda c, s: Squeeze(),
}


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_is_exact(name, channels, exactness_log):
    torch.manual_seed(channels)
    x = torch.randn(3, channels, 4, 4, dtype=torch.float64)
    layer = prepare(LAYERS[name](channels, 4), x)
    rt, ld = check_exact(layer, layer.reverse, x)
    exactness_log[f"layer/{name}/c{channels}"] = {"round_trip": rt, "logdet": ld}


def test_actnorm_initialises_to_zero_mean_unit_variance_once():
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(64, 3, 5, 5)
    norm = ActNorm(3)
    y, _ = norm(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    before = [p.clone() for p in norm.parameters()]
    norm(torch.randn(8, 3, 5, 5))  # a second batch must not re-initialise
    assert all(torch.equal(a, b) for a, b in zip(before, norm.parameters()))


def test_lu_conv_starts_as_a_rotation_and_its_logdet_is_sum_log_s():
    torch.manual_seed(0)
    conv = InvConv1x1LU(6)
    w = conv._compose()
    assert torch.allclose(w @ w.T, torch.eye(6), atol=1e-5)
    with torch.no_grad():
        conv.log_s.add_(0.3)
    assert torch.allclose(torch.linalg.slogdet(conv._compose())[1], conv.log_s.sum(), atol=1e-5)


@pytest.mark.parametrize("make", [lambda: InvConv1x1(4), lambda: InvConv1x1LU(4)])
def test_cached_inverse_follows_weight_changes(make):
    torch.manual_seed(0)
    conv = make().eval()
    x = torch.randn(2, 4, 3, 3)
    y, _ = conv(x)
    assert torch.allclose(conv.reverse(y), x, atol=1e-5)           # fills the cache
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(0.2 * torch.randn_like(p))                       # an optimizer step, in place
    y2, _ = conv(x)
    assert not torch.allclose(y2, y, atol=1e-3)
    assert torch.allclose(conv.reverse(y2), x, atol=1e-5)          # the stale inverse would fail here
    other = make()
    other.load_state_dict(conv.state_dict())
    other.eval()
    assert torch.allclose(other(x)[0], y2, atol=1e-6)


def test_rotation_is_not_trained():
    rot = make_permutation("rotation", 4, lu=False)
    assert list(rot.parameters()) == []
    assert "weight" in rot.state_dict()


def test_coupling_rejects_one_channel():
    with pytest.raises(ValueError, match="channels=1"):
        Coupling(1, 8)


def test_squeeze_layout():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    # each output channel is one of the four positions in a 2x2 block
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]


def test_gaussian_log_prob_known_answer():
    z = torch.tensor([[1.0, -2.0]])
    mean, log_std = torch.zeros(1, 2), torch.log(torch.tensor([[1.0, 2.0]]))
    # log N(1; 0, 1) + log N(-2; 0, 4) computed by hand
    expected = (-0.5 * torch.log(torch.tensor(2 * torch.pi)) - 0.5) + \
               (-0.5 * torch.log(torch.tensor(2 * torch.pi)) - torch.log(torch.tensor(2.0)) - 0.5)
    assert torch.allclose(gaussian_log_prob(z, mean, log_std), expected.reshape(1))
