"""Standard errors of fold-level estimates, paired comparisons, and the expected accuracy
(chapters 5, 7 and 8).

:func:`fold_se` and :func:`compare_folds` summarise the per-fold measures of
:func:`lmmbook.cross_validate` with a standard error that accounts for the correlation between
the folds of one data set (Nadeau & Bengio 2003), and compare two models or designs evaluated on
the same folds by their paired differences. The LR method is in :mod:`lmmbook.lrmethod`.

:func:`expected_accuracy` and :func:`effective_segments` give the accuracy expected of a
genomic prediction from the number of records, the heritability and the population's size and
genome length (Daetwyler et al. 2008; Goddard 2009), to compare with what a validation measures.

Sample variances and standard deviations use ``ddof=1`` everywhere in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from . import _checks
from .crossval import CVResult
from .errors import (
    InputError,
    NonFiniteError,
    UnknownIdError,
    format_ids,
)

__all__ = ["FoldEstimate", "fold_se", "compare_folds", "effective_segments", "expected_accuracy"]


# -------------------------------------------------------------------------------------------------
# Fold-level estimates and paired comparisons
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FoldEstimate:
    """The mean of per-fold values (of one design, or of paired differences) with its SE.

    Attributes
    ----------
    estimate : float
        Mean over all train/validation splits (every fold of every repeat).
    se : float
        Its standard error by the chosen ``correction`` (see :func:`fold_se`).
    se_naive : float
        sd / sqrt(n_splits), which treats the splits as independent: shown for comparison, too
        small for folds of one data set.
    sd : float
        Standard deviation (ddof=1) of the per-split values: the spread of the splits of this data
        set, which understates the spread of one split's estimate over samples, and is not a
        standard error of their mean.
    n_splits : int
        Number of per-split values (n_f folds times the number of repeats).
    n_repeats : int or None
        Repeats, when the values came with a ``repeat`` column.
    test_train_ratio : float or None
        n_valid / n_train of the correction.
    correction : str
    values : (n_splits,) ndarray
        The per-split values (the differences a - b for :func:`compare_folds`), read-only.
    """

    estimate: float
    se: float
    se_naive: float
    sd: float
    n_splits: int
    n_repeats: int | None
    test_train_ratio: float | None
    correction: str
    values: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Confidence interval estimate +- t_{n_splits - 1} se (Nadeau & Bengio's t)."""
        if not 0 < level < 1:
            raise InputError(f"level must be between 0 and 1, got {level}.")
        half = float(stats.t.ppf(0.5 + level / 2, self.n_splits - 1)) * self.se
        return self.estimate - half, self.estimate + half

    def p_value(self) -> float:
        """Two-sided p-value of estimate = 0 with t = estimate / se on n_splits - 1 degrees of
        freedom (the corrected resampled t-test when ``correction="nadeau_bengio"``)."""
        if self.se == 0:
            return 0.0 if self.estimate != 0 else 1.0
        return float(2 * stats.t.sf(abs(self.estimate / self.se), self.n_splits - 1))


_Correction = Literal["nadeau_bengio", "none"]


def fold_se(
    values: Any,
    *,
    measure: str = "predictive_ability",
    test_train_ratio: float | None = None,
    correction: _Correction = "nadeau_bengio",
) -> FoldEstimate:
    """Mean of a per-fold measure over all folds and repeats, with a standard error.

    Parameters
    ----------
    values : CVResult, pandas.DataFrame or (n_splits,) array_like
        A :class:`lmmbook.CVResult`, its ``per_fold`` table (or any table with ``repeat``,
        ``fold`` and the measure), or the per-split values themselves.
    measure : str
        The column of a table to summarise (default ``"predictive_ability"``).
    test_train_ratio : float, optional
        n_valid / n_train of one split: 1 / (n_f - 1) for n_f-fold cross-validation. Taken from
        the ``n_valid`` and ``n_train`` columns of a table when absent; needed for plain arrays
        with the default correction.
    correction : {"nadeau_bengio", "none"}
        "nadeau_bengio" (default): Var = (1 / n_splits + n_valid / n_train) sd^2. "none":
        sd^2 / n_splits, for values that really are independent (separate data sets).

    Returns
    -------
    FoldEstimate

    Raises
    ------
    InputError
        Fewer than 2 values; an unknown measure or correction; no test_train_ratio for arrays.
    NonFiniteError
        A per-fold value is NaN (the message names the repeat and fold).
    DuplicateIdError
        A (repeat, fold) pair occurs twice.

    Notes
    -----
    Chapter 7. The between-fold standard deviation ``sd`` is the spread of the folds of this one
    data set, which understates the spread of a single fold's estimate; dividing it by
    sqrt(n_splits) would give the standard error of their mean only if the splits were
    independent samples. They are not: within one repeat the training sets share
    (n_f - 2) / (n_f - 1) of their individuals and all folds come from one data set, and repeats
    re-use the same individuals, so more repeats remove only the noise of the random partition
    while sd / sqrt(n_splits) keeps falling towards 0. No unbiased estimator of the variance of
    k-fold cross-validation exists (Bengio & Grandvalet 2004). Nadeau & Bengio (2003) correct the
    variance of the mean of J resampled splits to (1/J + n_valid/n_train) sd^2, the value for
    splits whose estimates correlate by n_valid / (n_valid + n_train); the correction does not
    vanish as J grows. Bouckaert & Frank (2004) use it for repeated k-fold cross-validation, where
    it kept the type I error of the t-test near its nominal level. It is a heuristic and
    approximate: it does not model the extra correlation of relatives spread across folds, and
    it answers "how much would this mean change with another sample of the same size", not
    "how much with another random partition". Standard deviations use ddof=1.

    Examples
    --------
    >>> import lmmbook
    >>> r = [0.42, 0.55, 0.47, 0.50, 0.38, 0.52, 0.45, 0.49, 0.44, 0.51]  # 2 x 5-fold
    >>> est = lmmbook.fold_se(r, test_train_ratio=1 / 4)
    >>> round(est.estimate, 3), round(est.se_naive, 4), round(est.se, 4)
    (0.473, 0.0162, 0.0303)
    """
    v, labels, table, _ = _fold_values(values, measure, "values")
    ratio = _ratio(test_train_ratio, correction, [table])
    return _estimate(v, labels, ratio, correction)


def compare_folds(
    a: Any,
    b: Any,
    *,
    measure: str = "predictive_ability",
    test_train_ratio: float | None = None,
    correction: _Correction = "nadeau_bengio",
) -> FoldEstimate:
    """Paired comparison of two models or designs evaluated on the same folds: mean of a - b.

    Parameters
    ----------
    a, b : CVResult, pandas.DataFrame or (n_splits,) array_like
        Per-fold results of the two (both of one kind). Tables are joined on (``repeat``,
        ``fold``); two :class:`lmmbook.CVResult` must also hold the same validation IDs in each
        fold, and tables with ``n_train`` and ``n_valid`` the same sizes. Arrays are paired by
        position.
    measure, test_train_ratio, correction
        As in :func:`fold_se`.

    Returns
    -------
    FoldEstimate
        Of the per-split differences d = a - b; ``p_value()`` is the corrected resampled t-test
        of Nadeau & Bengio (2003) (the paired t-test with ``correction="none"``).

    Raises
    ------
    UnknownIdError
        A (repeat, fold) of one is not in the other.
    InputError
        The folds differ (sizes or validation IDs); one table and one array; see also
        :func:`fold_se`.

    Notes
    -----
    Chapter 8. Pairing removes what both models share in a fold (its individuals, their
    relationships to the training set): the differences vary much less than either measure, so
    a paired comparison sees differences that two separate intervals would hide. The standard
    error of the mean difference follows :func:`fold_se`'s correction applied to the
    differences, sd(d) sqrt(1/J + n_valid/n_train); sd(d)/sqrt(J) (``se_naive``) treats the folds
    as independent and is too small.

    Examples
    --------
    >>> import lmmbook
    >>> a = [0.47, 0.52, 0.44, 0.50, 0.49]
    >>> b = [0.45, 0.49, 0.43, 0.46, 0.48]
    >>> d = lmmbook.compare_folds(a, b, test_train_ratio=1 / 4)
    >>> round(d.estimate, 3), round(d.se, 4), round(d.p_value(), 3)
    (0.022, 0.0087, 0.066)
    """
    va, la, ta, pa = _fold_values(a, measure, "a")
    vb, lb, tb, pb = _fold_values(b, measure, "b")
    if (la is None) != (lb is None):
        raise InputError("give a and b both as per-fold tables (joined on repeat and fold) or "
                         "both as arrays (paired by position), not one of each.")
    if la is None:
        _checks.same_length("b", len(va), "a", len(vb), unit="values")
    else:
        order = _join_folds(la, lb)
        vb, lb, tb = vb[order], lb[order], tb.iloc[order]
        _same_folds(ta, tb, la, pa, pb)
    ratio = _ratio(test_train_ratio, correction, [ta, tb])
    return _estimate(va - vb, la, ratio, correction)


def _fold_values(x, measure, name):
    """Per-split values, their (repeat, fold) labels, the table and the predictions (or None)."""
    predictions = None
    if isinstance(x, CVResult):
        predictions, x = x.predictions, x.per_fold
    if isinstance(x, pd.DataFrame):
        missing = [c for c in ("repeat", "fold", measure) if c not in x.columns]
        if missing:
            raise InputError(f"{name} lacks the column(s) {format_ids(missing)}; a per-fold table "
                             "has repeat, fold and the measure (e.g. CVResult.per_fold).")
        labels = pd.MultiIndex.from_frame(x[["repeat", "fold"]])
        _checks.unique_ids(f"the (repeat, fold) pairs of {name}", labels)
        values = x[measure].to_numpy(dtype=float)
        table = x.reset_index(drop=True)
    else:
        values, _ = _checks.vector(name, x)
        labels = table = None
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        where = (f"(repeat, fold) {format_ids(labels[bad])}" if labels is not None
                 else f"position(s) {format_ids(bad.tolist())}")
        raise NonFiniteError(f"{name} has no value of {measure!r} at {where}: the fold was too "
                             "small or its predictions constant. Use larger folds, or drop the "
                             "fold from both designs.")
    if len(values) < 2:
        raise InputError(f"{name} holds {len(values)} per-fold value(s); a standard error needs "
                         "at least 2 folds (a single forward split has none: see "
                         "lmmbook.lr_validation's bootstrap).")
    return values, labels, table, predictions


def _join_folds(la: pd.MultiIndex, lb: pd.MultiIndex) -> np.ndarray:
    only_a, only_b = la.difference(lb, sort=False), lb.difference(la, sort=False)
    if len(only_a) or len(only_b):
        side = (f"(repeat, fold) {format_ids(only_a)} of a are not in b" if len(only_a)
                else f"(repeat, fold) {format_ids(only_b)} of b are not in a")
        raise UnknownIdError(f"{side}; a paired comparison needs both evaluated on the same "
                             "folds (the same kfold table).")
    return lb.get_indexer(la)


def _same_folds(ta, tb, labels, pa, pb) -> None:
    for column in ("n_train", "n_valid"):
        if column in ta.columns and column in tb.columns:
            differ = np.flatnonzero(ta[column].to_numpy() != tb[column].to_numpy())
            if len(differ):
                j = differ[0]
                raise InputError(
                    f"a and b were not evaluated on the same folds: (repeat, fold) "
                    f"{format_ids(labels[[j]])} "
                    f"has {column} {ta[column].iloc[j]} in a and {tb[column].iloc[j]} in b. "
                    "Run both on one kfold table.")
    if pa is not None and pb is not None:
        ids_a = pa.groupby(["repeat", "fold"])["id"].agg(frozenset)
        ids_b = pb.groupby(["repeat", "fold"])["id"].agg(frozenset)
        ids_b = ids_b.reindex(ids_a.index)
        differ = [key for key, x, y in zip(ids_a.index, ids_a, ids_b, strict=True) if x != y]
        if differ:
            raise InputError(
                f"a and b validate different individuals in (repeat, fold) "
                f"{format_ids(differ)}; a paired comparison needs the same folds. Run both on "
                "one kfold table.")


def _ratio(test_train_ratio, correction, tables) -> float | None:
    if correction not in ("nadeau_bengio", "none"):
        raise InputError(f"correction must be 'nadeau_bengio' or 'none', got {correction!r}.")
    if test_train_ratio is not None:
        ratio = float(test_train_ratio)
        if not np.isfinite(ratio) or ratio <= 0:
            raise InputError(f"test_train_ratio must be positive, got {test_train_ratio}.")
        return ratio
    table = tables[0]
    if table is not None and {"n_train", "n_valid"} <= set(table.columns):
        return float(table["n_valid"].sum() / table["n_train"].sum())
    if correction == "none":
        return None
    raise InputError("the Nadeau-Bengio correction needs n_valid / n_train: pass "
                     "test_train_ratio (1 / (n_f - 1) for n_f-fold cross-validation), or "
                     "correction='none' for values that are really independent.")


def _estimate(values, labels, ratio, correction) -> FoldEstimate:
    J = len(values)
    sd = float(np.std(values, ddof=1))
    se_naive = sd / np.sqrt(J)
    se = sd * np.sqrt(1.0 / J + ratio) if correction == "nadeau_bengio" else se_naive
    n_repeats = None if labels is None else int(labels.get_level_values(0).nunique())
    return FoldEstimate(estimate=float(np.mean(values)), se=float(se), se_naive=float(se_naive),
                        sd=sd, n_splits=J, n_repeats=n_repeats, test_train_ratio=ratio,
                        correction=correction, values=_checks.frozen(values))


# -------------------------------------------------------------------------------------------------
# The expected accuracy of genomic prediction
# -------------------------------------------------------------------------------------------------


def effective_segments(Ne: Any, L: Any) -> Any:
    """Number of effectively independent chromosome segments, M_e = 2 Ne L / ln(Ne L).

    Parameters
    ----------
    Ne : float or array_like
        Effective population size.
    L : float or array_like
        Genome length in morgans, summed over the chromosomes (cattle: about 30).

    Returns
    -------
    float or ndarray
        M_e, broadcast over the inputs (a float for scalar inputs).

    Raises
    ------
    InputError
        Ne or L not positive and finite, or Ne L <= 1, where the logarithm is not positive.

    Notes
    -----
    Chapter 5. Goddard (2009), Genetica 136:245-257: in a population of effective size Ne,
    the marker genotypes of a genome of L morgans vary like those of about M_e independent
    segments, the number that sets how many records a genomic prediction needs
    (:func:`expected_accuracy`). Other papers use 2 Ne L (Hayes, Visscher & Goddard 2009) or
    2 Ne L / ln(4 Ne L) (Goddard, Hayes & Meuwissen 2011); they differ by a factor of 1 to 10
    and all are rough: they ignore the population's history (its Ne is not one number) and
    family structure.

    Examples
    --------
    >>> import lmmbook
    >>> round(lmmbook.effective_segments(100, 30.0), 1)    # 6000 / ln(3000)
    749.4
    """
    Ne_, L_ = np.broadcast_arrays(np.asarray(Ne, float), np.asarray(L, float))
    for name, value in (("Ne", Ne_), ("L", L_)):
        if not np.all(np.isfinite(value) & (value > 0)):
            raise InputError(f"{name} must be positive and finite, got {value.tolist()}.")
    x = Ne_ * L_
    if np.any(x <= 1):
        raise InputError(f"Ne * L must exceed 1 (ln(Ne L) > 0), got {x.tolist()}; the formula "
                         "is meant for populations and genomes far larger than that.")
    M_e = 2.0 * x / np.log(x)
    return float(M_e) if M_e.ndim == 0 else M_e


def expected_accuracy(n_train: Any, h2: Any, M_e: Any) -> Any:
    """Expected accuracy of a genomic prediction, r = sqrt(n h2 / (n h2 + M_e)).

    Parameters
    ----------
    n_train : float or array_like
        Number of training records (individuals with a phenotype), n >= 0.
    h2 : float or array_like
        Heritability of those records, 0 <= h2 <= 1 (for progeny-tested sires, the reliability
        of their daughter-yield deviations).
    M_e : float or array_like
        Number of effectively independent chromosome segments (:func:`effective_segments`).

    Returns
    -------
    float or ndarray
        The expected correlation of GEBV and true breeding value of an individual outside the
        training set, broadcast over the inputs (a float for scalar inputs).

    Raises
    ------
    InputError
        n_train negative, h2 outside [0, 1], M_e not positive, or any of them not finite.

    Notes
    -----
    Chapter 5. Daetwyler, Villanueva & Woolliams (2008), PLoS ONE 3:e3395, with the M_e of
    Goddard (2009) in place of the number of loci (Daetwyler et al. 2010, Genetics 185:1021).
    Each of M_e independent segments carries an effect estimated from n records, each record
    telling h2 / M_e of the genetic variance: the reliability is r^2 = n h2 / (n h2 + M_e).
    It assumes that the markers capture all the genetic variance and that the predicted
    individuals are not close relatives of the training set; close relatives (in a pedigree
    of a few generations) are predicted better than this, and markers that miss part of the
    variance (QTL not in LD with any marker) do worse.

    Examples
    --------
    >>> import lmmbook
    >>> M_e = lmmbook.effective_segments(100, 30.0)
    >>> round(lmmbook.expected_accuracy(2000, 0.3, M_e), 3)   # sqrt(600 / 1349.4)
    0.667
    """
    n_, h2_, M_e_ = np.broadcast_arrays(np.asarray(n_train, float), np.asarray(h2, float),
                                        np.asarray(M_e, float))
    if not np.all(np.isfinite(n_) & (n_ >= 0)):
        raise InputError(f"n_train must be a finite number >= 0, got {n_.tolist()}.")
    if not np.all(np.isfinite(h2_) & (h2_ >= 0) & (h2_ <= 1)):
        raise InputError(f"h2 must lie in [0, 1], got {h2_.tolist()}.")
    if not np.all(np.isfinite(M_e_) & (M_e_ > 0)):
        raise InputError(f"M_e must be positive and finite, got {M_e_.tolist()}.")
    information = n_ * h2_
    r = np.sqrt(information / (information + M_e_))
    return float(r) if r.ndim == 0 else r
