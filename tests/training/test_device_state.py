"""The process-wide state a run's device sets, simulated without a GPU: the warning that CUDA is not usable said
once per command (not once per worker or run), CUBLAS_WORKSPACE_CONFIG in the environment before the process's first
CUDA call, and deterministic algorithms switched off again for a run that follows a deterministic one."""
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

import glowlib.workers as workers
from glowlib.profiles import profile_config
from glowlib.training import device

REASON = "nvidia-smi lists 1 GPU(s) (GPU 0: NVIDIA H100), but torch cannot use them"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unusable_gpu(monkeypatch):
    """A machine whose nvidia-smi lists a GPU that torch cannot use, in a process that has said nothing yet."""
    monkeypatch.setattr(device, "cuda_unavailable_reason", lambda: REASON)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(device.CUDA_WARNING_SAID, raising=False)
    device._say_once.cache_clear()
    yield
    device._say_once.cache_clear()


def auto_runs(n=2):
    return [profile_config("smoke", "digits", seed=s, overrides=["train.device='auto'"]) for s in range(n)]


def test_two_runs_of_one_process_say_it_once(unusable_gpu, capsys):
    assert device.training_device("auto").type == "cpu"
    assert device.training_device("auto").type == "cpu"
    assert capsys.readouterr().err.count(REASON) == 1


def test_make_models_with_two_workers_says_it_once(unusable_gpu, monkeypatch, capsys):
    """run_workers says it in the parent; each worker (simulated: a fresh process's state, the environment it is
    started with) trains on the CPU without saying it again."""
    started = []

    class Worker:
        def __init__(self, command, env):
            started.append(env)
            with mock.patch.dict(os.environ, env, clear=True):
                device._say_once.cache_clear()                   # a new process has said nothing
                assert device.training_device("auto").type == "cpu"

        def wait(self):
            return 0

    monkeypatch.setattr(workers, "visible_gpus", lambda: [])
    monkeypatch.setattr(subprocess, "Popen", Worker)
    assert workers.run_workers(auto_runs(2), 2) == 0
    assert len(started) == 2 and all(env[device.CUDA_WARNING_SAID] == "1" for env in started)
    assert capsys.readouterr().err.count(REASON) == 1


def test_a_worker_started_alone_still_says_it(unusable_gpu, capsys):
    """Without the parent's marker (python -m glowlib.workers run by hand, a Slurm node) the process says it."""
    device.training_device("auto")
    assert REASON in capsys.readouterr().err


def fake_cuda(monkeypatch, seen):
    """torch.cuda answering as on a one-GPU machine; each call records CUBLAS_WORKSPACE_CONFIG as it is then."""
    def recording(name, value):
        def call(*args, **kwargs):
            seen.append((name, os.environ.get("CUBLAS_WORKSPACE_CONFIG")))
            return value
        return call
    monkeypatch.setattr(torch.cuda, "is_available", recording("is_available", True))
    monkeypatch.setattr(torch.cuda, "device_count", recording("device_count", 1))
    monkeypatch.setattr(torch.cuda, "current_device", recording("current_device", 0))
    monkeypatch.setattr(torch.cuda, "set_device", recording("set_device", None))


@pytest.fixture
def recorded_switches(monkeypatch):
    """torch.use_deterministic_algorithms recorded instead of switched; the cuDNN flags restored afterwards."""
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on, **kw: calls.append(on))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", torch.backends.cudnn.deterministic)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    return calls


def test_the_cublas_workspace_is_set_before_the_first_cuda_call(monkeypatch, recorded_switches):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []
    fake_cuda(monkeypatch, seen)
    cuda = device.training_device("auto")
    assert cuda == torch.device("cuda", 0)
    assert seen and all(value == device.CUBLAS_WORKSPACE for _, value in seen), seen
    assert device.set_deterministic(True, cuda)["cublas_workspace_config"] == device.CUBLAS_WORKSPACE
    assert recorded_switches == [True]


def test_a_workspace_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert device.set_cublas_workspace() == ":16:8"


def test_importing_glowlib_sets_the_workspace_before_anything_touches_cuda():
    """In a fresh process: the variable is in the environment once glowlib.training is imported, before any run
    has chosen its device."""
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    script = ("import os, torch; import glowlib.training; "
              "print(os.environ.get('CUBLAS_WORKSPACE_CONFIG'), torch.cuda.is_initialized())")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [device.CUBLAS_WORKSPACE, "False"]


def test_a_run_after_a_deterministic_one_in_the_same_process_is_not_deterministic(recorded_switches):
    cuda = torch.device("cuda", 0)
    device.set_deterministic(True, cuda)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    device.set_deterministic(False, cuda)
    assert recorded_switches == [True, False]
    assert not torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    device.set_deterministic(True, torch.device("cpu"))               # the CPU's kernels are deterministic anyway
    assert recorded_switches == [True, False, False]
