"""Cross-validation of genomic predictions without leakage (chapters 7 and 8).

Folds are a table of IDs; everything learned (allele frequencies and centring, variance
components, fixed effects, marker effects) is learned on the training IDs of each fold only, and
the validation phenotypes never reach the training fit.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import _checks
from .errors import InputError, RankDeficientError, UnknownIdError, format_ids
from .genomic import gblup, genomic_relationship
from .markers import as_genotypes
from .snpblup import snp_blup

__all__ = ["kfold", "forward_split", "cross_validate", "CVResult"]


def _ids(ids: Any) -> pd.Index:
    index = pd.Index(np.asarray(ids))
    _checks.unique_ids("ids", index)
    return index


def kfold(ids: Any, k: int, *, repeats: int = 1, groups: Any = None, seed: int) -> pd.DataFrame:
    """Assign IDs to k validation folds, possibly repeatedly, possibly keeping groups together.

    Parameters
    ----------
    ids : (n,) array_like
        The IDs to split, normally those with a phenotype.
    k : int
        Number of folds, 2 <= k <= number of IDs (or of groups).
    repeats : int, optional
        Independent random partitions.
    groups : (n,) array_like, optional
        A group label per ID (a family, a herd): a group is never split between folds; groups are
        dealt to folds largest first, each to the fold with the fewest IDs so far.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``repeat`` and ``fold`` (both from 0): in each repeat every ID is in
        exactly one validation fold; the others of that repeat form its training set.

    Examples
    --------
    >>> folds = kfold(["a", "b", "c", "d", "e"], 2, seed=1)
    >>> sorted(folds.groupby("fold").size().tolist())
    [2, 3]
    """
    index = _ids(ids)
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}.")
    if groups is not None:
        labels = np.asarray(groups)
        _checks.same_length("groups", len(index), "ids", len(labels), unit="entries")
        _present("groups", labels, index)
        units = pd.unique(labels)
        what = "groups"
    else:
        labels, units, what = np.arange(len(index)), np.arange(len(index)), "IDs"
    if not 2 <= k <= len(units):
        raise InputError(f"k must be between 2 and the number of {what} ({len(units)}), got {k}.")
    rng = np.random.default_rng(seed)
    sizes = pd.Series(labels).value_counts()
    frames = []
    for r in range(repeats):
        order = rng.permutation(len(units))
        shuffled = [units[i] for i in order]
        fold_of_unit, load = {}, np.zeros(k)
        # largest groups first (stable for equal sizes, so the shuffle decides ties)
        for unit in sorted(shuffled, key=lambda u: -sizes[u]):
            f = int(np.argmin(load))
            fold_of_unit[unit] = f
            load[f] += sizes[unit]
        frames.append(pd.DataFrame({"id": index, "repeat": r,
                                    "fold": [fold_of_unit[u] for u in labels]}))
    return pd.concat(frames, ignore_index=True)


def _present(what: str, values: np.ndarray, index: pd.Index) -> None:
    """Refuse a missing group or generation: counts and groupby would drop it silently."""
    lacking = np.flatnonzero(pd.isna(values))
    if len(lacking):
        i = int(lacking[0])
        raise InputError(
            f"{what} is missing for {format_ids([index[i]])} (position {i}): every ID needs a "
            f"{'group' if what == 'groups' else what} ({len(lacking)} missing in all). Give it "
            "one or leave the ID out."
        )


def _check_folds(folds: Any) -> None:
    """A folds table has id, repeat and fold, none missing (groupby would drop such rows)."""
    columns = ["id", "repeat", "fold"]
    if not isinstance(folds, pd.DataFrame) or not set(columns) <= set(folds.columns):
        raise InputError("folds needs the columns 'id', 'repeat' and 'fold' (as made by kfold or "
                         "forward_split).")
    for column in columns:
        lacking = np.flatnonzero(folds[column].isna().to_numpy())
        if len(lacking):
            i = int(lacking[0])
            raise InputError(
                f"folds has a missing {column} at row {i} (ID {format_ids([folds['id'].iloc[i]])})"
                "; every row needs an id, a repeat and a fold (-1 for training only)."
            )


def forward_split(ids: Any, generation: Any, *, validate: Any = None) -> pd.DataFrame:
    """Train on earlier generations, validate on later ones (by default the latest).

    Returns the table of :func:`kfold` with one repeat: the validation IDs in fold 0 and the
    training IDs in fold -1 (training only, never validated). No ID of a generation at or after
    the earliest validated one is used for training.

    Examples
    --------
    >>> forward_split([1, 2, 3], [0, 1, 1])["fold"].tolist()
    [-1, 0, 0]
    """
    index = _ids(ids)
    gen = np.asarray(generation)
    _checks.same_length("generation", len(index), "ids", len(gen), unit="entries")
    _present("generation", gen, index)
    chosen = [gen.max()] if validate is None else list(np.atleast_1d(validate))
    valid = np.isin(gen, chosen)
    train = gen < min(chosen)
    if not valid.any() or not train.any():
        raise InputError("forward_split needs at least one earlier generation to train on and "
                         "one to validate.")
    keep = valid | train
    return pd.DataFrame({"id": index[keep], "repeat": 0, "fold": np.where(valid[keep], 0, -1)})


@dataclass(frozen=True, eq=False)
class CVResult:
    """Cross-validation results.

    Attributes
    ----------
    per_fold : pandas.DataFrame
        ``repeat``, ``fold``, ``n_train``, ``n_valid``, ``predictive_ability`` (r of GEBV and the
        corrected phenotype y_c = y - X b_hat), ``accuracy`` (that / sqrt(h2) of the training fit),
        ``slope`` (regression of y_c on GEBV), ``bias`` (mean of y_c - GEBV), ``mse`` (of y against
        X b_hat + GEBV), ``h2`` (of the training fit).
    predictions : pandas.DataFrame
        ``id``, ``repeat``, ``fold``, ``gebv``, ``y_c``.
    model : str
    """

    per_fold: pd.DataFrame
    predictions: pd.DataFrame
    model: str

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation of each measure over folds and repeats."""
        measures = ["predictive_ability", "accuracy", "slope", "bias", "mse", "h2"]
        return self.per_fold[measures].agg(["mean", "std"]).T


def cross_validate(
    y: Any,
    X: Any,
    folds: pd.DataFrame,
    *,
    M: Any = None,
    G: Any = None,
    ids: Any = None,
    model: Literal["gblup", "snp_blup"] = "gblup",
    refit_variances: bool = True,
    sigma2_u: float | None = None,
    sigma2_e: float | None = None,
    progress: bool = False,
) -> CVResult:
    """Cross-validate GBLUP or SNP-BLUP on the given folds, learning everything on training IDs.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        Phenotypes; a Series is joined to ``ids`` by ID.
    X : (n, p) array_like or pandas.DataFrame
        Fixed effects, rows as ``ids`` (a DataFrame is joined by ID).
    folds : pandas.DataFrame
        From :func:`kfold` or :func:`forward_split`: ``id``, ``repeat``, ``fold``.
    M : (n, m) genotypes, optional
        With M, each fold rebuilds G (or centres the markers) with allele frequencies of its
        training IDs; the validation individuals are predicted from their genotypes.
    G : (n, n) array_like, optional
        With G instead, the masking form: validation phenotypes are set to NaN and the whole G
        (rows of the fold's IDs) is kept. Only for ``model="gblup"``.
    ids : (n,) array_like, optional
        IDs of the rows of y, X, M or G (taken from a labelled M or G when absent).
    model : {"gblup", "snp_blup"}
    refit_variances : bool
        Estimate the variances by REML on each training set (default). False uses ``sigma2_u`` and
        ``sigma2_e`` given (for SNP-BLUP, sigma2_u is converted with the training frequencies).
    progress : bool
        Print one line per fold to stdout (off by default: the book's outputs must not change).

    Raises
    ------
    UnknownIdError
        IDs in ``folds`` that are not in the data.
    InputError
        A validation fold without a phenotyped individual; M and G both or neither given; a
        ``folds`` table without ``id``, ``repeat`` and ``fold``, or with a missing value in them.
    RankDeficientError
        A fixed-effect level without a record in a training set (the message names the level and
        the fold: stratify the folds).

    Notes
    -----
    Chapters 7 and 8. y_c uses b_hat from the training fit, so that nothing of the validation
    phenotypes enters the prediction. ``accuracy`` can exceed 1: h2 is estimated.
    """
    if (M is None) == (G is None):
        raise InputError("give M (genotypes) or G (a relationship matrix), one of them.")
    if model not in ("gblup", "snp_blup"):
        raise InputError(f"model must be 'gblup' or 'snp_blup', got {model!r}.")
    if model == "snp_blup" and M is None:
        raise InputError("snp_blup needs genotypes M, not G.")
    if not refit_variances and (sigma2_u is None or sigma2_e is None):
        raise InputError("refit_variances=False needs sigma2_u and sigma2_e.")
    _check_folds(folds)
    geno = as_genotypes(M) if M is not None else None
    Gl = _checks.matrix("G", G) if G is not None else None
    if ids is None:
        ids = geno.ids if geno is not None and geno.ids is not None else (
            Gl.rows if Gl is not None else None)
    if ids is None:
        raise InputError("ids are needed to match the folds to the rows of the data.")
    index = _ids(ids)
    n = len(index)
    y_all = _checks.align_to_ids(y, index, n, of="M" if M is not None else "G")
    X_all, names = _checks.design_to_ids(X, index, n, y_all, of="M" if M is not None else "G")
    G_all = None if Gl is None else _checks.dense(Gl.values)
    unknown = pd.Index(folds["id"]).difference(index, sort=False)
    if len(unknown):
        raise UnknownIdError(f"folds name {format_ids(unknown)}, not among the IDs of the data.")

    per_fold, predictions = [], []
    for (rep, fold), valid_ids in folds[folds["fold"] >= 0].groupby(["repeat", "fold"])["id"]:
        in_repeat = folds.loc[folds["repeat"] == rep, "id"]
        train_ids = in_repeat[~in_repeat.isin(valid_ids)]
        rows = index.get_indexer(pd.concat([train_ids, valid_ids]))
        n_train = len(train_ids)
        valid = np.zeros(len(rows), bool)
        valid[n_train:] = True
        y_fold = y_all[rows].copy()
        y_valid = y_fold[valid].copy()
        if not np.isfinite(y_valid).any():
            raise InputError(f"fold {fold} of repeat {rep} has no phenotyped individual to "
                             "validate on.")
        y_fold[valid] = np.nan  # the validation phenotypes never reach the fit
        X_fold = X_all[rows]
        _check_levels(X_fold[~valid & np.isfinite(y_fold)], names, fold, rep)
        variances = {} if refit_variances else {"sigma2_u": sigma2_u, "sigma2_e": sigma2_e}
        if model == "gblup":
            if geno is not None:
                train_rows = rows[:n_train]
                p_train = np.nanmean(geno.M[train_rows], axis=0) / 2.0
                G_fold = genomic_relationship(geno.M[rows], allele_freq=p_train)
            else:
                G_fold = G_all[np.ix_(rows, rows)]
            # the fold's fit is dropped after its predictions: no eigenvectors kept for gwas
            fit = gblup(y_fold, X_fold, G_fold, keep_rotation=False, **variances)
            gebv, b, h2 = fit.u[valid], fit.b, fit.h2
        else:
            train = ~valid
            if not refit_variances:
                p_train = np.nanmean(geno.M[rows[train]], axis=0) / 2.0
                c = 2.0 * np.sum(p_train * (1.0 - p_train))
                variances = {"sigma2_alpha": sigma2_u / c, "sigma2_e": sigma2_e}
            fit = snp_blup(y_fold[train], X_fold[train], geno.M[rows[train]], **variances)
            gebv, b, h2 = fit.predict(geno.M[rows[valid]]), fit.b, fit.h2
        X_valid = X_fold[valid]
        has_y = np.isfinite(y_valid)
        y_c = y_valid - X_valid @ b
        per_fold.append(_measures(rep, fold, n_train, int(has_y.sum()), y_c[has_y],
                                  gebv[has_y], h2))
        predictions.append(pd.DataFrame({"id": valid_ids.to_numpy(), "repeat": rep,
                                         "fold": fold, "gebv": gebv, "y_c": y_c}))
        if progress:
            print(f"repeat {rep} fold {fold}: r = {per_fold[-1]['predictive_ability']:.3f}",
                  file=sys.stdout, flush=True)
    return CVResult(per_fold=pd.DataFrame(per_fold),
                    predictions=pd.concat(predictions, ignore_index=True), model=model)


def _check_levels(X_train: np.ndarray, names, fold, rep) -> None:
    empty = np.flatnonzero(~np.any(X_train != 0, axis=0))
    if len(empty):
        raise RankDeficientError(
            f"fixed effect(s) {format_ids([names[j] for j in empty])} have no record in the "
            f"training set of fold {fold} (repeat {rep}): their effect cannot be estimated there. "
            "Stratify the folds by that factor, or merge rare levels."
        )


def _measures(rep, fold, n_train, n_valid, y_c, gebv, h2) -> dict:
    r = float(np.corrcoef(gebv, y_c)[0, 1]) if n_valid > 2 and np.std(gebv) > 0 else np.nan
    slope = float(np.cov(gebv, y_c)[0, 1] / np.var(gebv, ddof=1)) if n_valid > 2 and np.std(
        gebv) > 0 else np.nan
    return {"repeat": rep, "fold": fold, "n_train": n_train, "n_valid": n_valid,
            "predictive_ability": r, "accuracy": r / np.sqrt(h2) if h2 > 0 else np.nan,
            "slope": slope, "bias": float(np.mean(y_c - gebv)),
            "mse": float(np.mean((y_c - gebv) ** 2)), "h2": h2}
