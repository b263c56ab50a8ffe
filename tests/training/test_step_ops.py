"""A training step that never makes the host wait for the device, and dispatches few operations beyond the model's.

On a GPU every aten operation is a kernel the host has to queue (some microseconds each), and every read of a
device value (``.item()``, ``bool(t)``, a copy to the host) stalls the host until the GPU has caught up. These
tests count both on the CPU with ``step_count.StepCounter`` (a ``TorchDispatchMode``) for one step of the paper's
CIFAR-10 model (L=3, K=32, affine coupling, LU 1x1 convolutions, learned top prior) at batch 2.

Reduction: width 16 instead of 512. The operations a step dispatches do not depend on the coupling networks'
width (``test_the_operation_count_does_not_depend_on_width`` checks it on a shallower model), and width 512 takes
minutes a step on a 2-core CPU under the counter.

Measured on a 2-core CPU: the step as it was (per-parameter Polyak ``lerp_`` and buffer ``copy_``, per-parameter
Adamax, the host reading its loss, invertible backprop with its 96 ``linalg.inv`` a step) dispatched 40,771
operations and read the device 7 times (beside 1,351 reads of the optimizer's host step counts); now 20,050
operations: 18,639 of the model's forward and backward pass (1,351 of them the accumulation of each gradient into
the flat buffer), 1,351 reads of the CPU optimizer's host step counts (on CUDA the optimizer is ``capturable`` and
counts on the device), about 60 of the loop's own, and no read of the device.
"""
import pytest
import torch

from glowlib.models import DequantizedModel, Glow, MaCow, RealNVP, make_dequantizer
from glowlib.step_count import StepCounter, count_step
from glowlib.profiles import profile_config
from glowlib.training.device import optimizer_options
from glowlib.training.step import Likelihood, log_likelihood

OPS_BOUND = 21_000              # 20,050 measured
HOST_STEP_COUNT_OPS = 1         # per parameter tensor, CPU only (module docstring)
LOOP_OPS_BOUND = 120            # the loop's own operations beyond the model's and the CPU step counts (~60)


def paper_cifar(width=16, **sets):
    overrides = [f"model.width={width}", "model.precision='fp32'", "train.device='cpu'"]
    return profile_config("paper", "cifar10", overrides=overrides + [f"{k}={v!r}" for k, v in sets.items()])


def test_the_paper_step_dispatches_few_operations_and_never_waits_for_the_device():
    run = paper_cifar()
    assert run.model.inv_backprop is False          # 32x32 stores its activations (profiles.ACTIVATION_BUDGET)
    counter, flops = count_step(run, batch=2)
    assert counter.n_syncs == 0, dict(counter.syncs)
    assert counter.n_ops <= OPS_BOUND, counter.n_ops
    assert counter.ops["lerp_"] == 0 and counter.ops["linalg_inv_ex"] == 0 and counter.ops["copy_"] <= 4
    with torch.device("meta"):
        n_tensors = len(list(Glow(run.model).parameters()))
    forward_backward = model_only_ops(run)
    loop_ops = counter.n_ops - forward_backward - HOST_STEP_COUNT_OPS * n_tensors
    assert 0 < loop_ops <= LOOP_OPS_BOUND, (counter.n_ops, forward_backward, loop_ops)


def model_only_ops(run, batch=2) -> int:
    """Operations of the model's forward and backward pass alone, as the training step computes them."""
    torch.manual_seed(0)
    model = Glow(run.model)
    x = torch.rand(batch, 3, 32, 32) - 0.5
    model.initialize(x)
    for _ in range(2):                              # as count_step: the third pass is counted
        counter = StepCounter()
        with counter:
            log_likelihood(model, x).mean().backward()
    return counter.n_ops


def test_the_operation_count_does_not_depend_on_width():
    narrow, _ = count_step(paper_cifar(16, **{"model.depth": 2}), batch=2)
    wide, _ = count_step(paper_cifar(96, **{"model.depth": 2}), batch=2)
    assert narrow.n_ops == wide.n_ops


def test_on_cuda_the_optimizer_counts_its_steps_on_the_device():
    assert optimizer_options(torch.device("cuda")) == {"foreach": True, "capturable": True}
    assert optimizer_options(torch.device("cpu")) == {"foreach": True, "capturable": False}


def test_the_counter_counts_flops_as_flop_counter_mode_does():
    from torch.utils.flop_counter import FlopCounterMode
    run = profile_config("smoke", "digits", overrides=["model.depth=2", "model.width=8"])
    torch.manual_seed(0)
    model = Glow(run.model)
    x = torch.rand(4, 1, 8, 8) - 0.5
    model.initialize(x)
    with FlopCounterMode(display=False) as reference:
        log_likelihood(model, x).sum().backward()
    with StepCounter() as ours:
        log_likelihood(model, x).sum().backward()
    assert ours.flops == reference.get_total_flops() > 0


def test_the_counter_sees_what_would_stall_a_gpu():
    x = torch.ones(3)
    with StepCounter() as counter:
        x.sum().item()
        bool((x > 0).all())
        torch.nonzero(x)
    assert dict(counter.syncs) == {"value read": 2, "size from values": 1}


@pytest.mark.parametrize("model_class, sets", [
    (Glow, {}), (RealNVP, {}), (MaCow, {"model_type": "macow"}), (Glow, {"model.n_classes": 10})])
def test_the_step_computes_exactly_log_prob(model_class, sets):
    """``log_likelihood`` is ``log_prob`` without the input checks that read the batch back: the same numbers,
    bit for bit, and the same gradients."""
    overrides = [f"{k}={v!r}" for k, v in sets.items()] + ["model.depth=2", "model.width=8"]
    run = profile_config("smoke", "digits", "macow" if model_class is MaCow else "glow", overrides=overrides)
    torch.manual_seed(0)
    model = model_class(run.model)
    x = torch.rand(6, 1, 8, 8) - 0.5
    y = torch.arange(6) if run.model.n_classes else None
    model.initialize(x, y) if y is not None else model.initialize(x)
    ours = log_likelihood(model, x, y)
    theirs = model.log_prob(x, y)
    assert torch.equal(ours, theirs)
    g1 = torch.autograd.grad(ours.sum(), list(model.parameters()), allow_unused=True)
    g2 = torch.autograd.grad(model.log_prob(x, y).sum(), list(model.parameters()), allow_unused=True)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g1, g2))


def test_the_step_computes_exactly_the_elbo_integrand():
    run = profile_config("smoke", "digits", overrides=["model.depth=2", "model.width=8"])
    torch.manual_seed(0)
    model, q, bits = Glow(run.model), make_dequantizer("variational", 1), run.data.n_bits
    x = torch.randint(0, 2 ** bits, (6, 1, 8, 8)).float() / 2 ** bits - 0.5
    model.initialize(x + 1 / 2 ** (bits + 1))
    noise = q.draw_noise(x, torch.Generator().manual_seed(1))
    assert torch.equal(Likelihood(model, q, bits)(x, noise=noise), DequantizedModel(model, q, bits)(x, noise=noise))
