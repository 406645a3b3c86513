"""The LR method of validation (Legarra & Reverter 2018; chapter 8).

:func:`lr_validation` compares the predictions of a focal group (the youngest animals, say) from
partial data, without the focal individuals' own records, with their predictions from the whole
data: bias, dispersion, ratio of accuracies and the accuracy itself, without the noisy phenotypes
that cross-validation correlates with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from . import _checks
from .errors import (
    InputError,
    NonFiniteError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
    format_ids,
)

__all__ = ["LRResult", "lr_validation"]


# -------------------------------------------------------------------------------------------------
# The LR method
# -------------------------------------------------------------------------------------------------

_LR_STATISTICS = ("bias", "dispersion", "ratio_accuracies", "ratio_reliabilities",
                  "reliability_partial", "accuracy_partial")
_LR_EXPECTED = {"bias": 0.0, "dispersion": 1.0}


@dataclass(frozen=True, eq=False)
class LRResult:
    """The statistics of the LR method for one focal group.

    Attributes
    ----------
    n_focal : int
        Number of focal individuals.
    bias : float
        mean(u_p) - mean(u_w); 0 when the partial predictions are unbiased.
    dispersion : float
        b_wp = cov(u_w, u_p) / var(u_p), the slope of u_w on u_p; 1 when the partial predictions
        are not inflated, below 1 when they are over-dispersed.
    ratio_accuracies : float
        rho_wp = cor(u_w, u_p), an estimate of acc_p / acc_w.
    ratio_reliabilities : float
        rho_pw = cov(u_p, u_w) / var(u_w), an estimate of acc_p^2 / acc_w^2.
    reliability_partial, accuracy_partial : float or None
        The estimate of the (population) reliability acc_p^2 of the partial predictions and its
        square root (NaN when the estimate is negative; like any estimate it can exceed 1);
        None without ``sigma2_u``.
    F_bar, a_bar : float or None
        Mean inbreeding and mean relationship (all n_focal^2 entries of K_focal, the diagonal
        included) of the focal group; ``a_bar`` is None when only ``F_focal`` was given.
    variance_factor : float or None
        1 + F_bar - a_bar (or 1 - F_bar from ``F_focal`` alone): the expected variance of u among
        the focal individuals, per unit of sigma2_u.
    sigma2_u : float or None
    se : Mapping[str, float] or None
        Bootstrap standard errors of the statistics (read-only), None without a bootstrap.
    n_boot : int
        Bootstrap replicates the standard errors come from (0: none).
    n_boot_failed : int
        Replicates dropped because a statistic was undefined in them (no variance of u_p or
        u_w in the resample).
    boot_unit : {"individual", "group"} or None
        What was resampled.
    """

    n_focal: int
    bias: float
    dispersion: float
    ratio_accuracies: float
    ratio_reliabilities: float
    reliability_partial: float | None
    accuracy_partial: float | None
    F_bar: float | None
    a_bar: float | None
    variance_factor: float | None
    sigma2_u: float | None
    se: Mapping[str, float] | None
    n_boot: int
    n_boot_failed: int
    boot_unit: str | None

    def summary(self) -> pd.DataFrame:
        """One row per statistic: ``estimate``, ``expected`` (its value under a correct model
        where that is a number: 0 for the bias, 1 for the dispersion; NaN otherwise) and ``se``
        (NaN without a bootstrap)."""
        names = [s for s in _LR_STATISTICS if getattr(self, s) is not None]
        se = self.se or {}
        return pd.DataFrame(
            {"estimate": [float(getattr(self, s)) for s in names],
             "expected": [_LR_EXPECTED.get(s, np.nan) for s in names],
             "se": [se.get(s, np.nan) for s in names]},
            index=pd.Index(names, name="statistic"))


def lr_validation(
    u_partial: Any,
    u_whole: Any,
    *,
    ids: Any = None,
    sigma2_u: float | None = None,
    K_focal: Any = None,
    F_focal: Any = None,
    groups: Any = None,
    n_boot: int = 0,
    seed: int | None = None,
) -> LRResult:
    """The LR method of Legarra & Reverter (2018): bias, dispersion and accuracy of predictions.

    Parameters
    ----------
    u_partial, u_whole : (n_focal,) array_like or pandas.Series
        Predictions from the partial data (the focal individuals' own records removed) and from
        the whole data. Two Series are joined by ID (their index); two arrays by position.
    ids : (n_focal,) array_like, optional
        The focal individuals. With Series, they select the focal group among the IDs of both
        (default: all IDs of ``u_partial``, which must then be exactly those of ``u_whole``);
        with arrays, they label the entries.
    sigma2_u : float, optional
        Variance of u (per unit of K) of the model, needed for the accuracy estimate.
    K_focal : (n_focal, n_focal) array_like or pandas.DataFrame, optional
        Relationships among the focal individuals (A or G rows and columns of the focal group).
        A labelled DataFrame may hold more individuals: the focal ones are picked by ID.
    F_focal : float or (n_focal,) array_like or pandas.Series, optional
        Instead of ``K_focal``: the inbreeding coefficients of the focal individuals (or their
        mean). The accuracy then uses the approximation 1 + F_bar - a_bar ~ 1 - F_bar (see Notes).
    groups : (n_focal,) array_like or pandas.Series, optional
        Families (e.g. sires) of the focal individuals: the bootstrap then resamples whole groups,
        which keeps the correlation of relatives' predictions in the standard errors.
    n_boot : int, optional
        Bootstrap replicates for standard errors (default 0: no standard errors).
    seed : int, optional
        Seed of the bootstrap; required when ``n_boot > 0``.

    Returns
    -------
    LRResult

    Raises
    ------
    ShapeMismatchError
        The lengths of u_partial, u_whole, ids, groups or the shape of K_focal disagree.
    UnknownIdError, DuplicateIdError
        A focal ID is not in one of the Series (or in K_focal, F_focal, groups), or is repeated.
    NonFiniteError
        A prediction of a focal individual is NaN or infinite.
    InputError
        Fewer than 3 focal individuals; u_partial or u_whole without variance among them; one
        Series and one array; K_focal and F_focal both; either without sigma2_u, or sigma2_u
        without either; a bootstrap without seed.
    VarianceError
        sigma2_u not positive, or no variance of u left in the focal group (variance_factor <= 0).

    Notes
    -----
    Chapter 8 (the LR method); Legarra & Reverter (2018), Genet Sel Evol 50:53. Over the focal
    group, with cov and var the sample covariance and variance (any common divisor):

    - bias: Delta_p = mean(u_p) - mean(u_w), expected 0;
    - dispersion: b_wp = cov(u_w, u_p) / var(u_p), expected 1;
    - ratio of accuracies: rho_wp = cor(u_w, u_p), expected acc_p / acc_w;
    - ratio of reliabilities: rho_pw = cov(u_p, u_w) / var(u_w), expected acc_p^2 / acc_w^2;
    - reliability of the partial predictions,
      acc_p^2 = u_p' S u_w / (sigma2_u tr(S K_f))
      = cov_n(u_p, u_w) / ((1 + F_bar - a_bar) sigma2_u),

    where S = I - 11'/n_focal centres a vector over the focal group, cov_n divides by n_focal,
    F_bar = mean(diag K_f) - 1 and a_bar = 1'K_f 1 / n_focal^2 (= 2 x the mean coancestry).

    Why: u_p and u_w are best linear predictors of u from nested data, so the whole-data
    prediction averages to the partial one given the partial data, E(u_w | y_p) = u_p; hence
    Cov(u_w, u_p) = Var(u_p) = Cov(u, u_p). The expected cross-product u_p' S u_w is therefore
    that of u_p' S u_p (giving b_wp = 1 and rho_wp = acc_p / acc_w), while the expected spread of
    the true values in the group is E(u' S u) = sigma2_u tr(S K_f) = n_focal (1 + F_bar - a_bar)
    sigma2_u (Legarra 2016's variance of a reference population). Their ratio is the population
    reliability var(u_p) / var(u), which is cor(u, u_p)^2 when Cov(u, u_p) = Var(u_p). The
    numerator and the denominator are both sums over the group here, so no divisor n vs n - 1
    enters: ``cov`` with ``ddof=1`` over 1 + F_bar - a_bar would be n_focal / (n_focal - 1) too
    large. With ``F_focal`` alone the mean relationship is not known, and the classical within-
    line variance (1 - F_bar) sigma2_u (a large group, random mating, slowly changing F, so that
    a_bar ~ 2 F_bar) replaces it.

    These are ratios of quadratic forms: their expectations hold for large focal groups that
    are not dominated by a few families (Legarra & Reverter show the regression of u on u_p is
    then expected below 1). The advantage over correlating u_p with corrected phenotypes is that
    u_w, which is far less noisy than a phenotype, stands in for u; the price is that both
    evaluations share the model, so a wrong model shows in the dispersion and the bias, not
    necessarily in rho_wp.

    Standard errors (``n_boot > 0``): the standard deviation (ddof=1) of each statistic over
    bootstrap resamples of the focal individuals, or of whole ``groups``, with the two
    evaluations held fixed; the accuracy is recomputed in each resample with the resample's own
    F_bar and a_bar. Treat them as lower bounds. Relatives' predictions err together (they share
    parents' information and Mendelian sampling of those parents), which resampling individuals
    ignores: in the simulation of ``tests/test_validation.py`` (250 focal calves of 12 sires) the
    bootstrap over individuals gave about a third of the Monte Carlo standard deviation of the
    dispersion over replicated data, and the bootstrap over sire families (``groups``) about
    three quarters. Analytical standard errors from the prediction error (co)variances of the
    focal group avoid the resampling (Genet Sel Evol 2024, doi:10.1186/s12711-024-00883-w).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> u_w = np.array([1.0, -0.5, 0.3, -0.8, 0.0])
    >>> u_p = 0.5 * u_w + 0.1           # shrunk twice as much, shifted by 0.1
    >>> lr = lmmbook.lr_validation(u_p, u_w, sigma2_u=1.0, K_focal=np.eye(5))
    >>> float(round(lr.bias, 6)), float(lr.dispersion), float(lr.ratio_accuracies)
    (0.1, 2.0, 1.0)
    >>> lr.summary().loc[["bias", "dispersion"], ["estimate", "expected"]]
                estimate  expected
    statistic
    bias             0.1       0.0
    dispersion       2.0       1.0
    """
    focal, u_p, u_w = _focal_predictions(u_partial, u_whole, ids)
    n = len(u_p)
    if n < 3:
        raise InputError(f"the LR method needs at least 3 focal individuals, got {n}.")
    for name, u in (("u_partial", u_p), ("u_whole", u_w)):
        if np.ptp(u) == 0:
            raise InputError(
                f"{name} takes one value ({u[0]:.6g}) for all {n} focal individuals, so the "
                "dispersion and correlations are undefined. Check that the focal individuals "
                "were predicted (and not all missing from the data)."
            )

    if K_focal is not None and F_focal is not None:
        raise InputError("give K_focal (relationships) or F_focal (inbreeding), not both.")
    if (K_focal is not None or F_focal is not None) and sigma2_u is None:
        raise InputError("K_focal and F_focal serve only the accuracy estimate, which needs "
                         "sigma2_u: pass the sigma2_u of the model.")
    s2u = K = F = None
    if sigma2_u is not None:
        s2u = _checks.positive_variance("sigma2_u", sigma2_u)
        if K_focal is None and F_focal is None:
            raise InputError(
                "the accuracy estimate needs the relationships among the focal individuals: "
                "pass K_focal (their A or G), or F_focal (their inbreeding; F_focal=0 for "
                "unrelated, non-inbred individuals)."
            )
        if K_focal is not None:
            K = _focal_matrix(K_focal, focal, n)
        else:
            F = _focal_inbreeding(F_focal, focal, n)

    point = _lr_statistics(u_p, u_w, s2u, K=K, F=F)
    if point["variance_factor"] is not None and not point["variance_factor"] > 0:
        raise VarianceError(
            f"the relationships leave no variance of u among the focal individuals: "
            f"1 + F_bar - a_bar = {point['variance_factor']:.4g}. The focal group must hold "
            "individuals that are not clones of one another."
        )

    se, used, failed, unit = None, 0, 0, None
    if groups is not None and n_boot == 0:
        raise InputError("groups are used only by the bootstrap: set n_boot (e.g. 1000).")
    if n_boot:
        if int(n_boot) != n_boot or n_boot < 2:
            raise InputError(f"n_boot must be 0 or a whole number of at least 2, got {n_boot}.")
        if seed is None:
            raise InputError("a bootstrap needs a seed: pass seed=<int> so that the standard "
                             "errors can be reproduced.")
        members = _bootstrap_units(groups, focal, n)
        unit = "individual" if groups is None else "group"
        se, used, failed = _bootstrap(u_p, u_w, s2u, K, F, members, int(n_boot), seed)

    return LRResult(
        n_focal=n,
        bias=point["bias"],
        dispersion=point["dispersion"],
        ratio_accuracies=point["ratio_accuracies"],
        ratio_reliabilities=point["ratio_reliabilities"],
        reliability_partial=point["reliability_partial"],
        accuracy_partial=point["accuracy_partial"],
        F_bar=point["F_bar"],
        a_bar=point["a_bar"],
        variance_factor=point["variance_factor"],
        sigma2_u=s2u,
        se=None if se is None else MappingProxyType(se),
        n_boot=used,
        n_boot_failed=failed,
        boot_unit=unit,
    )


def _lr_statistics(u_p, u_w, s2u, *, K=None, F=None, counts=None) -> dict:
    """The statistics on one (possibly resampled) focal group. In a bootstrap resample, K is
    the full focal K and ``counts`` the multiplicity of each focal individual: the resample's
    K[idx][:, idx] has trace diag(K)'counts and sum counts'K counts. F is already resampled."""
    n = len(u_p)
    d_p, d_w = u_p - u_p.mean(), u_w - u_w.mean()
    s_pw, s_pp, s_ww = float(d_p @ d_w), float(d_p @ d_p), float(d_w @ d_w)
    out = {
        "bias": float(u_p.mean() - u_w.mean()),
        "dispersion": s_pw / s_pp,
        "ratio_accuracies": s_pw / np.sqrt(s_pp * s_ww),
        "ratio_reliabilities": s_pw / s_ww,
        "reliability_partial": None, "accuracy_partial": None,
        "F_bar": None, "a_bar": None, "variance_factor": None,
    }
    if s2u is None:
        return out
    if K is not None:
        if counts is None:
            F_bar = float(np.trace(K)) / n - 1.0
            a_bar = float(K.sum()) / n**2
        else:
            F_bar = float(np.diag(K) @ counts) / n - 1.0
            a_bar = float(counts @ K @ counts) / n**2
        factor = 1.0 + F_bar - a_bar
    else:
        F_bar, a_bar = float(F.mean()), None
        factor = 1.0 - F_bar
    reliability = (s_pw / n) / (factor * s2u) if factor > 0 else np.nan
    out.update(F_bar=F_bar, a_bar=a_bar, variance_factor=factor,
               reliability_partial=float(reliability),
               accuracy_partial=float(np.sqrt(reliability)) if reliability >= 0 else np.nan)
    return out


def _bootstrap(u_p, u_w, s2u, K, F, members, n_boot, seed):
    rng = np.random.default_rng(seed)
    n_units = len(members)
    names = [s for s in _LR_STATISTICS
             if s2u is not None or s not in ("reliability_partial", "accuracy_partial")]
    draws = {s: [] for s in names}
    failed = 0
    for _ in range(n_boot):
        idx = np.concatenate([members[j] for j in rng.integers(0, n_units, n_units)])
        if np.ptp(u_p[idx]) == 0 or np.ptp(u_w[idx]) == 0:
            failed += 1
            continue
        counts = None if K is None else np.bincount(idx, minlength=len(u_p)).astype(float)
        res = _lr_statistics(u_p[idx], u_w[idx], s2u, K=K, counts=counts,
                             F=None if F is None else F[idx])
        for s in names:
            draws[s].append(res[s])
    if len(draws["bias"]) < 2:
        raise InputError(f"only {len(draws['bias'])} of {n_boot} bootstrap replicates gave "
                         "defined statistics; the focal group (or its number of groups) is too "
                         "small for a bootstrap.")
    se = {s: float(np.nanstd(np.asarray(v, float), ddof=1)) for s, v in draws.items()}
    return se, len(draws["bias"]), failed


def _bootstrap_units(groups, focal, n) -> list[np.ndarray]:
    if groups is None:
        return [np.array([i]) for i in range(n)]
    if isinstance(groups, pd.Series):
        if focal is None:
            raise InputError("groups as a Series needs focal IDs to join on; pass ids, or give "
                             "groups as an array in the order of the predictions.")
        _checks.unique_ids("the index of groups", groups.index)
        missing = focal.difference(groups.index, sort=False)
        if len(missing):
            raise UnknownIdError(f"focal ID(s) {format_ids(missing)} have no group in groups; "
                                 "give every focal individual a group.")
        labels = groups.reindex(focal).to_numpy()
    else:
        labels = np.asarray(groups)
        _checks.same_length("groups", n, "the focal predictions", len(labels), unit="entries")
    if pd.isna(labels).any():
        raise InputError("groups holds missing labels; give every focal individual a group (an "
                         "individual of unknown family can be a group of its own).")
    codes, uniques = pd.factorize(labels)
    if len(uniques) < 2:
        raise InputError("the bootstrap over groups needs at least 2 groups.")
    return [np.flatnonzero(codes == g) for g in range(len(uniques))]


def _focal_predictions(u_partial, u_whole, ids):
    p, p_index = _checks.vector("u_partial", u_partial)
    w, w_index = _checks.vector("u_whole", u_whole)
    if (p_index is None) != (w_index is None):
        raise InputError("give u_partial and u_whole both as pandas Series (joined by ID) or "
                         "both as arrays (matched by position), not one of each.")
    if p_index is not None:
        if ids is None:
            focal = p_index
            w_rows = _checks.join(focal, "u_partial's index", w_index, "u_whole's index")
            p_rows = np.arange(len(focal))
        else:
            focal = pd.Index(np.asarray(ids))
            _checks.unique_ids("ids", focal)
            p_rows = _rows_of(focal, p_index, "u_partial")
            w_rows = _rows_of(focal, w_index, "u_whole")
        p, w = p[p_rows], w[w_rows]
    else:
        _checks.same_length("u_whole", len(p), "u_partial", len(w), unit="entries")
        focal = None
        if ids is not None:
            focal = pd.Index(np.asarray(ids))
            _checks.same_length("ids", len(p), "u_partial", len(focal), unit="entries")
            _checks.unique_ids("ids", focal)
    for name, u in (("u_partial", p), ("u_whole", w)):
        bad = np.flatnonzero(~np.isfinite(u))
        if len(bad):
            where = (f"focal ID(s) {format_ids(focal[bad])}" if focal is not None
                     else f"position(s) {format_ids(bad.tolist())}")
            raise NonFiniteError(f"{name} is NaN at {where}; every focal individual needs a "
                                 "prediction in both evaluations. Drop it from the focal group.")
    return focal, p, w


def _rows_of(focal: pd.Index, index: pd.Index, name: str) -> np.ndarray:
    rows = index.get_indexer(focal)
    if (rows < 0).any():
        raise UnknownIdError(f"focal ID(s) {format_ids(focal[rows < 0])} are not in the index "
                             f"of {name}; predict every focal individual in both evaluations.")
    return rows


def _focal_matrix(K_focal, focal, n) -> np.ndarray:
    Kl = _checks.matrix("K_focal", K_focal)
    K = _checks.dense(Kl.values)
    if Kl.rows is not None and focal is not None:
        cols = Kl.columns if Kl.columns is not None else Kl.rows
        r, c = Kl.rows.get_indexer(focal), cols.get_indexer(focal)
        missing = focal[(r < 0) | (c < 0)]
        if len(missing):
            raise UnknownIdError(f"focal ID(s) {format_ids(missing)} are not among the rows and "
                                 "columns of K_focal; give the relationships of every focal "
                                 "individual.")
        K = K[np.ix_(r, c)]
    elif K.shape != (n, n):
        raise ShapeMismatchError(f"K_focal has shape {K.shape} but there are {n} focal "
                                 f"individuals; it must be ({n}, {n}) in their order, or a "
                                 "DataFrame labelled by ID.")
    _checks.symmetric("K_focal", K)
    return K


def _focal_inbreeding(F_focal, focal, n) -> np.ndarray:
    if np.ndim(F_focal) == 0 and not isinstance(F_focal, pd.Series):
        F = np.full(n, float(F_focal))
    else:
        values, index = _checks.vector("F_focal", F_focal)
        if index is not None and focal is not None:
            values = values[_rows_of(focal, index, "F_focal")]
        else:
            _checks.same_length("F_focal", n, "the focal predictions", len(values),
                                unit="entries")
        F = values
    if not np.isfinite(F).all():
        raise NonFiniteError("F_focal holds NaN; give the inbreeding of every focal individual.")
    if F.mean() >= 1:
        raise InputError(f"the mean inbreeding of the focal group is {F.mean():.4g} >= 1; "
                         "inbreeding coefficients are below 1.")
    return F
