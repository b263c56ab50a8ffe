"""Every profile's run list, built as a CUDA machine with every dataset present would build it, is valid against its
data before anything trains: validation part below the training images, image shape against levels, bit depths,
batch against what is left to train on. And the gpu profile, shrunk (``$GLOWLIB_OVERRIDES``) and on a fake
CIFAR-10 in the real pickle format, runs its bits/dim table notebook end to end on the CPU.

Only the bpd_table notebook is executed end to end here: it trains every row of the table (RealNVP, Glow, MaCow,
both dequantisations, three seeds, four datasets: 33 trainings) and is the one that decides the table's claims;
all twelve notebooks at the shrunk gpu profile would take several times the CI's budget on 2 cores.
"""
import dataclasses
import pickle
from pathlib import Path

import jupytext
import numpy as np
import pytest
import torch

import glowlib.data as gd
import glowlib.profiles
from glowlib.config import DataConfig
from glowlib.profiles import DATASET_SHAPES, PROFILES, profile_config
from glowlib.profiles import profile as profile_of
from glowlib.studies import all_runs
from glowlib.studies import precision as precision_study

ROOT = Path(__file__).resolve().parents[2]
# training images of each dataset as glowlib loads it (celeba: CelebA's train and valid partitions)
TRAIN_IMAGES = {"mnist5k": 4_000, "fashion_mnist": 60_000, "digits": 1_497, "mnist": 60_000, "cifar10": 50_000,
                "celeba": 182_637, "patches": 5_928}


@pytest.fixture
def cuda_machine_with_all_data(monkeypatch):
    """What a GPU box with bf16 tensor cores and every dataset would see; nothing is read or run on a GPU."""
    for name in ("fashion_mnist", "mnist", "cifar10", "celeba"):
        monkeypatch.setitem(gd._LOCATORS, name, lambda root: {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.delenv("GLOWLIB_PRECISION", raising=False)


def check_against_data(run) -> None:
    dataset, m, tc = run.data.dataset, run.model, run.train
    channels, size = DATASET_SHAPES[dataset]
    n_train = TRAIN_IMAGES[dataset]
    assert 1 <= run.data.n_val < n_train // 2, (dataset, run.data.n_val)
    assert m.in_channels == channels and (m.image_size == size or dataset == "celeba"), (dataset, m.image_size)
    assert m.image_size % 2 ** m.n_levels == 0 and m.image_size // 2 ** m.n_levels >= 1
    assert m.n_bits == run.data.n_bits and 1 <= m.n_bits <= 8
    assert tc.batch_size <= n_train - run.data.n_val, (dataset, tc.batch_size)
    assert tc.eval_every <= tc.steps and tc.ckpt_every <= tc.steps
    if run.model.n_classes:
        assert run.model.n_classes == 10 and dataset != "celeba"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_run_of_every_profile_is_valid_for_its_data(profile, cuda_machine_with_all_data):
    runs = all_runs(profile)
    assert runs and len({r.key() for r in runs}) == len(runs)
    for run in runs:
        check_against_data(run)
    datasets = {r.data.dataset for r in runs}
    assert {"mnist5k", "fashion_mnist", "digits"} <= datasets
    if profile in ("gpu", "paper"):
        assert {"cifar10", "mnist", "celeba"} <= datasets
        cifar = [r for r in runs if r.data.dataset == "cifar10" and r.model_type == "glow"]
        assert {(r.model.n_levels, r.model.depth) for r in cifar} >= {(3, 32)}
        fp32 = [r for r in runs if r.model.precision == "fp32"]            # tensor cores: bf16 networks, but
        assert {r.train.steps for r in fp32} == {profile_of(profile).precision_steps} and len(fp32) == 2  # the baseline
        assert not any(r.model.inv_backprop for r in cifar)               # 32x32 stores its activations
    if profile == "gpu":
        ablation = [r for r in runs if r.data.dataset == "cifar10" and r.model.width == 512 and r.model.depth == 32
                    and r.train.y_weight == 0 and r.model.n_classes == 0 and r.model.n_bits == 8
                    and r.model.actnorm and r.model.learned_prior and r.train.dequantization == "uniform"
                    and r.model_type == "glow"]
        assert {(r.model.permutation, r.model.coupling, r.train.seed) for r in ablation} >= {
            (p, c, s) for p in ("reverse", "shuffle", "conv1x1") for c in ("additive", "affine") for s in (0, 1, 2)}


def test_validation_parts_are_capped_below_each_dataset(cuda_machine_with_all_data):
    assert profile_config("paper", "mnist5k").data.n_val == 500          # 5,000 would exceed its 4,000 images
    assert profile_config("gpu", "digits").data.n_val == 200
    assert profile_config("paper", "cifar10").data.n_val == 5_000
    assert DataConfig().n_val == 500


# ---------------------------------------------------------------------------------------------------- end to end
SHRINK = ";".join(["model.depth=2", "model.width=8", "train.steps=4", "train.eval_every=2", "train.ckpt_every=2",
                   "train.batch_size=8", "train.init_batch=16", "train.n_train_eval=16", "data.n_val=16",
                   "train.n_test_eval=32", "train.eval_batch=64", "train.device='cpu'"])


def write_fake_cifar(folder: Path, n_per_batch: int) -> None:
    """CIFAR-10's python batches as distributed (protocol-2 pickles of dicts with bytes keys), random pixels."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n_per_batch).tolist(),
                 b"data": rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8),
                 b"filenames": [b"x.png"] * n_per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": n_per_batch, b"num_vis": 3072,
            b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
                             b"ship", b"truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def execute_notebook(name: str, **parameters) -> dict:
    """Run ``notebooks/<name>.py`` cell by cell in this process (so the test's stand-ins hold), its parameters
    cell replaced by ``parameters``; returns the notebook's namespace."""
    notebook = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    namespace = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            exec(source, namespace)
            namespace.update(parameters)
            continue
        exec(compile(source, f"{name}.py", "exec"), namespace)
    return namespace


@pytest.mark.skipif(not gd.is_available("fashion_mnist"), reason="Fashion-MNIST is not on this machine")
def test_the_shrunk_gpu_profile_runs_the_bits_per_dim_notebook_end_to_end(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    write_fake_cifar(tmp_path / "data" / "cifar10" / "cifar-10-batches-py", 40)
    monkeypatch.setitem(gd.EXPECTED_COUNTS, "cifar10", {"data_batch": 40, "test_batch": 40})
    monkeypatch.setenv("GLOWLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GLOWLIB_OVERRIDES", SHRINK)
    monkeypatch.setenv("GLOWLIB_PRECISION", "fp32")
    # the importance-weighted bound's sizes are the profile's, not a run's, so SHRINK leaves them: at gpu's 16
    # samples of 5,000 Fashion-MNIST test images per row it took most of this test; the smoke profile's sizes
    # still compute the bound (k > 1) for every row
    monkeypatch.setitem(glowlib.profiles._BY_NAME, "gpu",
                        dataclasses.replace(profile_of("gpu"), iw_samples=profile_of("smoke").iw_samples))
    out = tmp_path / "results" / "gpu" / "bpd_table"
    ns = execute_notebook("bpd_table", profile="gpu", out_dir=str(out))
    table = ns["ours"]
    assert {"cifar10", "mnist5k", "fashion_mnist", "digits"} <= set(table.dataset)
    cifar = table[table.dataset == "cifar10"]
    assert len(cifar) == 5 and cifar.test_bpd.notna().all()            # realnvp, glow, macow, both +vardeq
    assert (out / "provenance.json").is_file() and (out / "bpd.csv").is_file()
    study = ns["study"]
    assert all(r.model.width == 8 for r in study.runs("gpu"))                                  # shrunk, all
    # every row at the shrunk 4 steps, and the rows whose steps cost another FLOPs at their dataset's Glow budget
    rows = [(d, m) for d in set(table.dataset) for m in study.table_models("gpu", d)]
    assert {study.table_run("gpu", d, m).train.steps for d, m in rows} == {4}
    iw = ns["result"].tables["iw"]                                     # every seed-0 row's importance-weighted bound
    assert len(iw) == len(rows) and (iw.iw_k == profile_of("smoke").iw_samples[0]).all()


def test_the_gpu_profile_fits_one_h100_overnight_and_40_gb_with_every_dataset_but_celeba(cuda_machine_with_all_data):
    """The gpu profile as a GPU box with CIFAR-10 and MNIST (`make data`) trains it, counted as `make plan` counts it
    (operations and FLOPs on the meta device, the H100 arithmetic of ``plan.GPU_SCENARIOS``, one worker a GPU):
    at most 16 hours in the central case and 40 GB of disk. CelebA, fetched by hand, adds its rows beyond both."""
    from glowlib import plan
    from glowlib.step_count import count_key
    runs = [r for r in all_runs("gpu") if r.data.dataset != "celeba"]
    assert {"cifar10", "mnist"} <= {r.data.dataset for r in runs}
    costs = plan.measured(runs, timed=False)
    cases = {case: sum(plan.gpu_run_seconds(r, r.train.steps, costs[count_key(r)], case) for r in runs) / 3600
             for case in plan.GPU_SCENARIOS}
    assert cases["optimistic"] <= cases["central"] <= 16 < cases["pessimistic"], cases
    assert plan.disk_needed([plan.run_disk(r) for r in runs], 1) <= 40e9
    macow = [r for r in runs if r.model_type == "macow" and r.data.dataset == "cifar10"]
    assert min(r.train.steps for r in macow) == profile_of("gpu").steps["cifar10"], "equal steps means Glow's steps"
