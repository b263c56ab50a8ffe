"""glowlib's command line: ``python -m glowlib train | evaluate | plan | models | check-params | studies`` (see
README).

Every user error prints one line ``error: ...`` and exits with status 2.

``check-params`` checks a notebook's parameters as ``make notebook NB=name PARAMS="..."`` hands them to papermill,
before the notebook runs. Papermill takes parameters in five forms: ``-p NAME VALUE`` (the value read as a bool,
None, int or float where it is one, else a string), ``-r NAME VALUE`` (a string), ``-y YAML``, ``-f FILE.yaml`` and
``-b BASE64-YAML`` (``--parameters``, ``--parameters_raw``, ``--parameters_yaml``, ``--parameters_file``,
``--parameters_base64``). :func:`papermill_parameters` reads them as papermill does, in its order of precedence,
and :func:`check_papermill_args` checks every one by name and value with the notebook's own check, on top of the
defaults of its parameters cell. make sets ``profile`` and ``out_dir`` itself: a ``profile`` other than make's
PROFILE, or any ``out_dir``, is refused.
"""
from __future__ import annotations

import argparse
import ast
import base64
import binascii
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

from . import plan as planning
from .analysis import cached_classifier, classifier_path
from .config import DEQUANTIZATIONS, MODEL_TYPES, check_choice
from .profiles import DATASET_SHAPES, PROFILES, profile_config
from .results import repo_root
from .studies import STUDIES, all_runs, check_parameters
from .studies.base import classifier_datasets, classifier_settings
from .training import (evaluate, load_checkpoint, load_trained_with_dequantizer, prepare_splits, run_config_of,
                       train)
from .runtime import check_workers, default_workers
from .workers import order_for, run_workers, train_here


# papermill's parameter options: (short, long) -> (how many values follow, form)
OPTIONS = {("-p", "--parameters"): (2, "p"), ("-r", "--parameters_raw"): (2, "r"),
           ("-y", "--parameters_yaml"): (1, "y"), ("-f", "--parameters_file"): (1, "f"),
           ("-b", "--parameters_base64"): (1, "b")}
FORMS = {flag: spec for flags, spec in OPTIONS.items() for flag in flags}


def resolve_type(value: str):
    """A ``-p`` value as papermill reads it: True, False, None, an int, a float, else the string itself."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class _NoDates(yaml.SafeLoader):
    """YAML as papermill loads it: dates stay strings."""


_NoDates.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
                                    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _yaml(text, where: str) -> dict:
    try:
        values = yaml.load(text, Loader=_NoDates) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{where} is not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"{where} must be a YAML mapping of parameter names to values, got {values!r}")
    return values


def papermill_parameters(args) -> dict:
    """The parameters a papermill command line gives, by name, as the notebook receives them.

    Papermill applies ``-b``, then ``-f``, ``-y``, ``-p`` and ``-r``, each form in the order given, a later value
    of a name replacing an earlier one. Any other option is an error: PARAMS is for parameters only.
    """
    args = list(args)
    found = {form: [] for form in "bfypr"}
    i = 0
    while i < len(args):
        token = args[i]
        flag, _, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        if flag not in FORMS:
            raise ValueError(f"{token!r} is not a papermill parameter option; give parameters with -p NAME VALUE, "
                             f"-r NAME VALUE, -y YAML, -f FILE or -b BASE64 (profile and out_dir are make's)")
        n, form = FORMS[flag]
        values = ([attached] if attached else []) + args[i + 1:i + 1 + n - bool(attached)]
        if len(values) < n:
            raise ValueError(f"{flag} needs {'a name and a value' if n == 2 else 'a value'}; got {values}")
        found[form].append(values)
        i += 1 + n - bool(attached)
    params = {}
    for (text,) in found["b"]:
        try:
            decoded = base64.b64decode(text)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"-b {text!r} is not base64 ({e})") from e
        params.update(_yaml(decoded, f"-b {text!r}"))
    for (path,) in found["f"]:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ValueError(f"-f {path!r}: the parameters file cannot be read ({e.strerror})") from e
        params.update(_yaml(text, f"-f {path!r}"))
    for (text,) in found["y"]:
        params.update(_yaml(text, f"-y {text!r}"))
    params.update({name: resolve_type(value) for name, value in found["p"]})
    params.update({name: value for name, value in found["r"]})
    return params


def notebook_defaults(notebook: str, folder=None) -> dict:
    """The values of the parameters cell of ``notebooks/<notebook>.py``."""
    path = Path(folder or repo_root() / "notebooks") / f"{notebook}.py"
    cells = [c for c in path.read_text().split("# %%") if c.startswith(' tags=["parameters"]')]
    if len(cells) != 1:
        raise ValueError(f"{path} has {len(cells)} parameters cells; a notebook has one")
    body = ast.parse(cells[0].split("\n", 1)[1])
    return {node.targets[0].id: ast.literal_eval(node.value) for node in body.body}


def check_papermill_args(notebook: str, profile: str, args) -> SimpleNamespace:
    """Check the parameters that papermill arguments ``args`` give ``notebook`` when make runs it at ``profile``:
    each must be one of the notebook's, ``profile`` must be make's and ``out_dir`` is make's alone, and the
    notebook's defaults with these values must pass its study's check. Returns the checked parameters."""
    given = papermill_parameters(args)
    if "out_dir" in given:
        raise ValueError(f"out_dir={given['out_dir']!r}: make writes notebook {notebook!r} into "
                         f"results/{profile}/{notebook}/; run papermill yourself to write elsewhere")
    if "profile" in given and given["profile"] != profile:
        raise ValueError(f"profile={given['profile']!r} contradicts make's PROFILE={profile}; set the profile with "
                         f"PROFILE={given['profile']}, not in PARAMS")
    defaults = notebook_defaults(notebook)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"notebook {notebook!r} has no parameter {unknown}; its parameters are {sorted(defaults)}")
    return check_parameters(notebook, **{**defaults, **given, "profile": profile, "out_dir": ""})


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: ...``, and exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def train_models(profile: str, progress=True, workers: int | None = None, worker_index: int = 0,
                 n_workers: int = 1, only_mine: bool = False) -> int:
    """Train (or find in the cache) every model the notebooks of ``profile`` use (``studies.all_runs``), one line
    per run with its estimate (``glowlib.plan``'s kept measurements) and its progress; then the measuring
    classifiers they use. ``workers`` > 1: that many processes (``glowlib.workers``); default: one per visible GPU,
    else one per core (``runtime.default_workers``). ``worker_index``/``n_workers``: this process is one of several
    (say on the nodes of a Slurm array) sharing the cache; ``only_mine``: train only this worker's share. Returns the exit status."""
    check_choice("profile", profile, PROFILES)
    # the arguments are checked in a moment, before the run list (minutes at the gpu profile)
    workers = default_workers() if workers is None else check_workers(workers)
    if workers > 1 and n_workers > 1:
        raise ValueError("--workers N starts N workers on this machine; with --n-workers (several machines) "
                         "start one per machine (--workers 1)")
    runs = all_runs(profile)
    if workers > 1:
        status = run_workers(planning.longest_first(runs, planning.measured_seconds), workers,
                             progress="lines" if progress else False, retry=f"make models PROFILE={profile}")
        if status:
            return status
    else:
        name = f"worker {worker_index} of {n_workers}" if n_workers > 1 else ""
        status = train_here(order_for(runs, worker_index, n_workers, only_mine), progress, name=name,
                            retry=f"python -m glowlib models --profile {profile} (or make models PROFILE={profile})")
        if status:
            return status
    settings = classifier_settings(profile)
    for dataset in classifier_datasets(profile):
        if not classifier_path(dataset, settings=settings).is_file():
            print(f"training the measuring classifier of {dataset}", flush=True)
        cached_classifier(dataset, settings=settings)
    return 0


def parser() -> Parser:
    top = Parser(prog="python -m glowlib", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a model; resumable; under torchrun --nproc_per_node=N each process "
                                      "trains on its own GPU with train.batch_size images (the global batch is N "
                                      "times that)")
    tr.add_argument("--profile", choices=PROFILES, default="cpu")
    tr.add_argument("--dataset", choices=sorted(DATASET_SHAPES), default="mnist5k")
    tr.add_argument("--model", choices=MODEL_TYPES, default="glow")
    tr.add_argument("--dequantization", choices=DEQUANTIZATIONS, default="uniform",
                    help="variational: a learned q(u | x) trained with the model on the ELBO")
    tr.add_argument("--out", required=True, help="run folder: metrics.csv, last.pt, best.pt")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    tr.add_argument("--restart", action="store_true",
                    help="move OUT's checkpoints and metrics aside (into OUT/replaced-<date>/) and start over")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    tr.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override config fields, e.g. --set model.depth=16 --set train.lr=5e-4 data.n_bits=5 "
                         "(every one given applies)")
    tr.add_argument("--no-progress", action="store_true")
    ev = sub.add_parser("evaluate", help="bits/dim of a checkpoint's Polyak weights on a dataset split")
    ev.add_argument("checkpoint")
    ev.add_argument("--split", choices=("test", "val", "train"), default="test")
    ev.add_argument("--samples", type=int, default=1, help="dequantisation samples per image (importance-weighted; "
                    "with a variational-dequantisation checkpoint, 1 is its ELBO)")
    pl = sub.add_parser("plan", help="every training of a profile: size, measured cost, cached or not, total, "
                                     "missing data")
    pl.add_argument("--profile", required=True, choices=PROFILES)
    pl.add_argument("--check-data", action="store_true", help="exit with status 2 when data is missing")
    pl.add_argument("--no-measure", action="store_true", help="list the runs without measuring their steps")
    pl.add_argument("--remeasure", action="store_true", help="measure every step again (not the kept figures)")
    pl.add_argument("--workers", type=int, default=None,
                    help="plan for this many training processes (default: as `models` starts them: one per "
                         "visible GPU, else one per core)")
    md = sub.add_parser("models", help="train (or find in the cache) every model the notebooks of a profile use")
    md.add_argument("--profile", required=True, choices=PROFILES)
    md.add_argument("--no-progress", action="store_true")
    md.add_argument("--workers", type=int, default=None,
                    help="worker processes on this machine (default: one per visible GPU, else one per core, "
                         "each with its share of the cores as threads)")
    md.add_argument("--worker-index", type=int, default=0,
                    help="this process's index among --n-workers sharing the cache (a Slurm array task)")
    md.add_argument("--n-workers", type=int, default=1)
    md.add_argument("--only-mine", action="store_true",
                    help="train only this worker's share (runs i, i+N, ...), for file systems without locks")
    cp = sub.add_parser("check-params", allow_abbrev=False,
                        help="check a notebook's papermill parameters (-p, -r, -y, -f, -b) before it runs",
                        usage="python -m glowlib check-params --profile PROFILE NOTEBOOK [papermill parameter "
                              "options]")
    cp.add_argument("--profile", required=True, choices=PROFILES, help="the profile make runs the notebook at")
    cp.add_argument("notebook", choices=STUDIES)
    cp.add_argument("papermill_args", nargs=argparse.REMAINDER)
    sub.add_parser("studies", help="the notebooks (one study each), in the book's order")
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "train":
            overrides = [f"train.dequantization={args.dequantization!r}"] + list(args.set) + \
                ([f"train.device={args.device!r}"] if args.device else [])
            run = profile_config(args.profile, args.dataset, args.model, args.seed, overrides)
            result = train(run, args.out, resume=args.resume, restart=args.restart,
                           progress=not args.no_progress)
            print(json.dumps({"out": str(result.out_dir), "step": result.step, "best_val_bpd": result.best_val_bpd,
                              "test_bpd_at_best_val": result.test_bpd_at_best, "wall_s": round(result.wall_s, 1),
                              "nonfinite_events": len(result.nonfinite_events),
                              **({"stopped": result.stopped} if result.stopped else {})}))
        elif args.command == "evaluate":
            run = run_config_of(load_checkpoint(args.checkpoint), args.checkpoint)
            splits = prepare_splits(run)
            images = {"test": splits.test_x, "val": splits.val_x, "train": splits.train_x}[args.split]
            labels = {"test": splits.test_y, "val": splits.val_y, "train": splits.train_y}[args.split]
            model, dequantizer = load_trained_with_dequantizer(args.checkpoint)
            bpd, sem = evaluate(model, images, run.data.n_bits, n_samples=args.samples,
                                labels=labels if run.model.n_classes else None, dequantizer=dequantizer)
            print(json.dumps({"split": args.split, "bpd": bpd, "sem": sem, "n_images": len(images)}))
        elif args.command == "plan":
            return planning.main(args.profile, args.check_data, not args.no_measure, args.remeasure, args.workers)
        elif args.command == "models":
            return train_models(args.profile, not args.no_progress, args.workers, args.worker_index, args.n_workers,
                                args.only_mine)
        elif args.command == "check-params":
            check_papermill_args(args.notebook, args.profile, args.papermill_args)
        else:
            print("\n".join(STUDIES))
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
