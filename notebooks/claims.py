# %% [markdown]
# # Claims and verdicts
#
# Every claim of the paper (Kingma & Dhariwal 2018) and every question its reviewers (and MaCow's) raised, each
# with a verdict: **confirmed**, **not confirmed**, or **not testable here** (with why). The verdicts are
# computed from the results tables of the other notebooks of this profile by `glowlib.studies.claims`, never
# typed by hand; each row links to the page whose figure or table decides it. The rule behind each verdict is
# stated in its evidence. At the `smoke` profile the models are trained for seconds, so the verdicts only show
# that the pipeline works.

# %% tags=["parameters"]
profile = "smoke"
out_dir = ""

# %%
from IPython.display import HTML, Markdown, display

from glowlib.results import Recorder
from glowlib.studies import claims as study

p = study.check_parameters(profile=profile, out_dir=out_dir)
rec = Recorder("claims", p.out_dir, p.profile, None, vars(p), study.device())

# %%
table = study.claims_table(p.profile)
counts = table.verdict.value_counts()
display(Markdown(f"**Profile `{p.profile}`:** " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."))
display(HTML(study.claims_html(table)))

# %% [markdown]
# ## Verdicts at a glance

# %%
fig = study.plot_verdicts(table)
rec.figure(fig, "verdicts")

# %%
rec.table(table, "claims", keys=["id"])
rec.finish()["wall_s"]
