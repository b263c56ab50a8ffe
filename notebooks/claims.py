# %% [markdown]
# # Claims and verdicts
# % lead table claims
#
# At this profile: {glue:text}`n_confirmed` confirmed, {glue:text}`n_contradicted` contradicted,
# {glue:text}`n_inconclusive` inconclusive and {glue:text}`n_not_testable` not testable at this scale, of
# {glue:text}`n_claims` claims; {glue:text}`n_not_run` were not run at this profile, for their cost. Each claim is declared once, with a stable id (`<study>.<name>`), in the study of
# the page that decides it; the table below gives its verdict, the paired difference with its interval where a
# comparison decides it, and the command that reruns the deciding page.
#
# Every claim of the paper (Kingma & Dhariwal 2018 {cite}`kingma2018glow`), every question its reviewers (and
# MaCow's {cite}`ma2019macow`) raised, and what
# users of the peer repositories ask for, each with one of four verdicts:
#
# - **confirmed**: the 95% interval of the paired difference excludes 0 on the side the claim predicts;
# - **contradicted**: it excludes 0 on the other side: here the paper's claim does not hold;
# - **inconclusive**: the interval contains 0: at this scale and number of seeds we cannot tell;
# - **not testable at this scale**: the comparison has fewer than 3 seeds, the data are not on this machine, or the
#   model failed a sanity gate (its samples do not resemble the data); the reason is named.
#
# A claim whose study this profile leaves out for its cost has no verdict: it reads **not run at this profile**,
# with what running it would cost on this machine and the command that runs it.
#
# A comparison of models is decided over training seeds, paired by seed (models with the same seed share their data
# order, noise and initialisation stream), by a Student-t interval of the per-seed differences; the table gives the
# mean difference, its interval, the number of seeds and the test. A general claim ("affine beats additive") spans
# several cells (each permutation, each dataset): it is decided on the per-seed difference averaged over its cells,
# and each cell's own interval is kept with the claim's numbers (`claim_numbers.csv`) and on its page. A claim that
# needs several relations to hold at once ("1x1 < shuffle < reverse": two) widens each relation's interval for
# their number (Bonferroni), so that the claim's error rate stays at 5%: {glue:text}`n_paired_claims` claims are
# decided by paired comparisons over seeds, {glue:text}`n_corrected` of them rest on more than one relation
# ({glue:text}`n_relations` relations in all), and "contradicted" always needs a corrected interval on the other
# side. A test set's standard error, which measures how
# precisely one trained network is evaluated, never decides: two seeds of one model differ by far more. The
# verdicts are computed from the results tables of the other notebooks of this profile, by the same code for
# every claim, never typed by hand; each row links to the page whose figure or table decides it. At
# the `smoke` profile the models are trained for seconds, so the verdicts only show that the pipeline works.

# %% [markdown]
# :::{dropdown} How this was computed
# - the verdicts: `glowlib.studies.claims`, from the claims each study declares in `glowlib/studies/<study>.py`.
# :::

# %% tags=["parameters"]
profile = "smoke"
out_dir = ""
# the verdicts to list changes against: "" the baseline the last run kept (at first, the claims it replaces); a git
# revision, the claims committed there
baseline = ""

# %%
from IPython.display import HTML, Markdown, display

from glowlib.analysis.presentation import csv_link, show
from glowlib.left_out import costed_left_out
from glowlib.results import Recorder
from glowlib.studies import claims as study

p = study.check_parameters(profile=profile, out_dir=out_dir, baseline=baseline)
rec = Recorder("claims", p.out_dir, p.profile, None, vars(p), study.device())

# %%
previous = study.baseline_table(p.profile, p.baseline)
table, numbers = study.claims_and_numbers(p.profile, left_out_reasons=costed_left_out(p.profile))
display(HTML(study.claims_html(table)))
display(Markdown(csv_link("claims")))

# %% [markdown]
# ## What changed since the baseline
# {glue:text}`n_changed` verdicts differ from the baseline's ({glue:text}`baseline_from`); each is listed with how
# it was decided before and now. The baseline is kept with the results, so a rerun of this page lists the same
# changes until a new baseline is named (for example `make notebook NB=claims PARAMS="-p baseline HEAD~1"`).

# %%
changes = study.verdict_changes(previous, table)
study.publish(rec, **study.verdict_counts(table), **study.correction_counts(numbers), n_changed=len(changes),
              baseline_from=previous.baseline_from.iloc[0] if previous is not None and len(previous) else "none")
if not changes.empty:
    show(changes, "changes")

# %% [markdown]
# ## Verdicts at a glance
# % caption verdicts: How many claims of each source (the paper, its reviewers, users of the peer repositories)
# %   got each verdict.

# %%
fig = study.plot_verdicts(table)
rec.figure(fig, "verdicts")

# %%
rec.table(table, "claims", keys=["id"])
if len(numbers):
    rec.table(numbers, "claim_numbers", keys=["id", "name"])
left_out = study.left_out_table(p.profile)
if len(left_out):
    rec.table(left_out, "left_out", keys=["study"])
if not changes.empty:
    rec.table(changes, "changes", keys=["id"])
if previous is not None:
    rec.table(previous, study.BASELINE, keys=["id"])
wall_s = rec.finish()["wall_s"]
