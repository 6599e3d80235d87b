"""Correlation studies: which measure predicts the generalization gap, and how well?

Input is a tidy table with one row per checkpoint: measure columns, gap columns (``gap_loss``,
``gap_acc``) and hyperparameter columns (``algorithm``, ``lr``, ``seed``, ...).
:func:`wide_table` makes one from the long table ``genmeasures score`` writes (whole-model
rows; ``measure[options]`` columns when a measure was scored with several options), and
:func:`correlate` accepts either. Every function returns DataFrames with one row per measure,
so they read well in a notebook:

- :func:`rank_correlations`: Pearson r, Spearman rho, Kendall tau-b; scipy's p-values;
  percentile-bootstrap CIs over checkpoints (seeded).
- :func:`granulated_kendall`: Jiang et al.'s Psi: per axis, the mean Kendall tau over groups
  where only that axis varies; Psi = mean over axes. Incomplete grids: groups with fewer than
  two levels are skipped and counted. Seeds of one configuration averaged first (option).
  Default tau-b, constant groups left out; ``psi_variant="jiang"``: Jiang et al.'s formula
  (their tau-a, constant groups count 0).
- :func:`conditional_mutual_information`: Jiang et al.'s K = min over axis subsets S
  (|S| <= 2, the empty set included) of I(V_mu; V_g | U_S) / H(V_g | U_S);
  ``cmi_variant="pgdl"``: the PGDL competition's score, as its scoring program computes it
  (:func:`pgdl_conditional_mutual_information`).
- :func:`regression`: statsmodels OLS gap ~ measure: slope, intercept, CIs, R^2.
- :func:`cross_validated_r2`: out-of-fold R^2 with group K-fold over a hyperparameter.
- :func:`scale_agreement`: measure / gap, median and IQR (a bound on the gap's scale, as Ju et
  al. claim, or vacuous).
- :func:`correlate`: all of the above -> :class:`CorrelationReport`.

The CMI variant (Jiang et al., ICLR 2020, "Fantastic generalization measures and where to
find them"): over all ordered pairs (i, j) of checkpoints, V_mu = sign(mu_i - mu_j)
and V_g = sign(g_i - g_j) in {-1, 0, +1}; a pair's cell is the *ordered* pair of the two
checkpoints' levels on the axes in S; cells are weighted by their share of pairs; logs are
base 2; a subset whose cells leave V_g determined (H = 0) is left out of the minimum. K is 0
for a measure independent of the gap given the hyperparameters and 1 for one whose changes
always share (or always oppose) the gap's sign. The PGDL scoring program differs in five
ways (pairs of axes only; pairs (i, i) included; binary signs, ties counted as -; possible
cells weighted uniformly; its degenerate cases), each listed in
:func:`pgdl_conditional_mutual_information`.

Bad input raises :class:`~genmeasures.errors.DataError` (or ``OptionError``) with one line
naming the column, measure or axis: a missing gap column, fewer than three checkpoints, a
hyperparameter axis with a single level. Checkpoints with NaN are dropped per measure and
counted (``n_dropped``, and a warning); a constant measure gets NaN statistics and a ``note``
unless it is the only measure asked for, which is an error.
"""

from genmeasures.correlation.cmi import (
    conditional_mutual_information,
    pgdl_conditional_mutual_information,
)
from genmeasures.correlation.granulated import granulated_kendall
from genmeasures.correlation.rank import rank_correlations
from genmeasures.correlation.regression import cross_validated_r2, regression
from genmeasures.correlation.report import CorrelationReport, correlate
from genmeasures.correlation.scale import scale_agreement
from genmeasures.correlation.tables import hyperparameter_axes, wide_table

__all__ = [
    "CorrelationReport",
    "conditional_mutual_information",
    "correlate",
    "cross_validated_r2",
    "granulated_kendall",
    "hyperparameter_axes",
    "pgdl_conditional_mutual_information",
    "rank_correlations",
    "regression",
    "scale_agreement",
    "wide_table",
]
