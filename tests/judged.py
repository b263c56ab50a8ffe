"""Results as the sample-judging notebooks write them, for the tests of their claims: a gates table, a notebook's
tables under a results root, training curves of known answers, and one study's claims decided from them."""
from pathlib import Path

import pandas as pd

from glowlib.analysis.claims import decide_claims

GATE_NAMES = ("classifier confidence on T=1 samples", "share of non-finite draws", "pixel mean of T=1 samples")


def gates_of(*models, fail=()):
    """A gates table of passing gates, with the named models' pixel-mean gate failed."""
    rows = []
    for m in models:
        for g in GATE_NAMES:
            bad = m in fail and g.startswith("pixel")
            rows.append({"model": m, "gate": g, "value": 0.01 if bad else 0.12, "reference": 0.13,
                         "threshold": "within x2 of real", "passed": not bad, "n": 500})
    return pd.DataFrame(rows)


def write(root, notebook, **tables):
    """Tables of a notebook's results under ``root`` as the notebook writes them (CSV), with a provenance file."""
    folder = Path(root) / "smoke" / notebook
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "provenance.json").write_text("{}")
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)


SEED_EFFECT = (0.0, 0.3, -0.2)       # common to every arm of a seed, cancelled by pairing


def run(final: float, seed: int, speed: float = 1.0, jitter: float = 0.0) -> pd.DataFrame:
    """A training run's metrics.csv: three evaluations ending at ``final`` + the seed's effect (+ ``jitter`` on seed
    1), the clock running ``speed`` times as fast as a reference run's."""
    end = final + SEED_EFFECT[seed] + (jitter if seed == 1 else 0.0)
    return pd.DataFrame({"step": [10, 20, 30], "wall_s": [1 / speed, 2 / speed, 3 / speed],
                         "val_bpd": [end + 0.6, end + 0.2, end], "test_bpd": [end + 0.6, end + 0.2, end]})


def claim_of(study, root):
    """The row of the claims table of ``study``'s one claim at the smoke profile under ``root``."""
    table, _ = decide_claims(study.CLAIMS, "smoke", root)
    assert len(table) == 1
    return table.iloc[0]
