"""train.compile: the step's objective through torch.compile computes what the eager step computes (loss, gradients),
and a compiled run stopped and resumed ends where the eager run ends. On the CPU (inductor's C++ kernels); CUDA
graphs ("reduce-overhead") need a GPU: bench/gpu_check.sh."""
import torch

from glowlib.profiles import profile_config
from glowlib.training import load_checkpoint, train
from glowlib.training.device import compile_mode
from glowlib.training.loop import session, train_step

# the smallest Glow, one level of one step (ActNorm, 1x1 convolution, coupling, the top prior): every layer the
# compiled objective holds, at half the compile time of two levels of two steps (inductor builds a C++ kernel for
# each fused operation, and the kernels grow with the layers)
SETS = ["model.depth=1", "model.width=8", "model.n_levels=1", "train.batch_size=8", "train.init_batch=16",
        "train.device='cpu'", "train.steps=6", "train.eval_every=3", "train.ckpt_every=3", "train.n_train_eval=16",
        "data.n_val=16", "train.n_test_eval=16", "train.warmup_steps=2"]


def tiny(mode):
    return profile_config("smoke", "digits", overrides=SETS + [f"train.compile={mode!r}"])


def test_compile_mode_follows_the_field_the_device_and_invertible_backprop():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_mode("off", cuda) is None and compile_mode("auto", cuda) == "reduce-overhead"
    assert compile_mode("auto", cuda, inv_backprop=True) is None
    assert compile_mode("default", cpu) == "default"
    assert tiny("off").key() == tiny("default").key()            # execution only: the same cache entry


def test_the_compiled_step_matches_the_eager_step_and_a_compiled_resume_matches(tmp_path):
    eager, compiled = session(tiny("off")), session(tiny("default"))
    for _ in range(2):
        train_step(eager)
        train_step(compiled)
    torch.testing.assert_close(compiled.record.rows[:2], eager.record.rows[:2], rtol=1e-5, atol=1e-5)
    for a, b in zip(compiled.grads.buffers, eager.grads.buffers):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    train(tiny("off"), tmp_path / "eager", progress=False)
    train(tiny("default"), tmp_path / "compiled", stop_after=3, progress=False)
    result = train(tiny("default"), tmp_path / "compiled", resume=True, progress=False)
    assert result.step == 6
    done, whole = load_checkpoint(tmp_path / "compiled" / "last.pt"), load_checkpoint(tmp_path / "eager" / "last.pt")
    for name in ("model", "ema"):
        for key, value in whole[name].items():
            torch.testing.assert_close(done[name][key], value, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
