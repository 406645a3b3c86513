"""Design matrices: from labelled records to the incidence matrices X and Z of chapter 1.

A record belongs to one level of a factor (a variety, an environment, an animal); the incidence
matrix has one row per record and one column per level, with a single 1 in each row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from .errors import DuplicateIdError, InputError, UnknownIdError, format_ids

__all__ = ["Incidence", "incidence"]


@dataclass(frozen=True, eq=False)
class Incidence:
    """An incidence matrix with the labels of its columns.

    Unpacks as ``matrix, levels = incidence(...)``; :func:`lmmbook.solve_mme` also accepts the
    object itself as ``X`` or ``Z`` and then labels its results with ``levels``.

    Attributes
    ----------
    matrix : (n, q) scipy.sparse.csr_array
        ``matrix[i, j] == 1`` when record ``i`` belongs to level ``j``, else 0.
    levels : (q,) ndarray
        The label of each column, in column order.
    """

    matrix: sp.csr_array
    levels: np.ndarray

    def __iter__(self) -> Iterator[sp.csr_array | np.ndarray]:
        return iter((self.matrix, self.levels))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, q)``: records by levels."""
        return self.matrix.shape

    def counts(self) -> pd.Series:
        """Number of records of each level, indexed by level."""
        return pd.Series(np.asarray(self.matrix.sum(axis=0)).astype(int), index=self.levels,
                         name="records")


def _is_missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _default_levels(labels: pd.Series) -> np.ndarray:
    if isinstance(labels.dtype, pd.CategoricalDtype):
        return np.asarray(labels.cat.categories)
    unique = pd.unique(labels)
    try:
        return np.asarray(sorted(unique), dtype=object if unique.dtype == object else None)
    except TypeError:  # labels of mixed types cannot be sorted: keep the order of first appearance
        return np.asarray(unique)


def incidence(labels: ArrayLike, levels: ArrayLike | None = None, *,
              name: str = "labels") -> Incidence:
    """Incidence matrix of records on the levels of one factor.

    Parameters
    ----------
    labels : (n,) array_like
        The level of each record (strings, integers, a pandas Series or Categorical).
    levels : (q,) array_like, optional
        The columns, in order. Use it to fix the column order to another object's IDs (a
        pedigree's ``ids``) or to include levels that have no record (they get an all-zero
        column, and a mixed model still predicts them). Without it: the categories of a
        Categorical, else the distinct labels sorted (in order of first appearance when they
        cannot be sorted).
    name : str, optional
        What to call ``labels`` in error messages.

    Returns
    -------
    Incidence
        ``matrix`` (n, q) scipy.sparse.csr_array of 0/1 and ``levels`` (q,) in column order.

    Raises
    ------
    InputError
        A label or a level is missing (None/NaN): every record needs a level, every level a
        label.
    DuplicateIdError
        ``levels`` names a level twice.
    UnknownIdError
        A label is not among ``levels``.

    Notes
    -----
    This is the matrix Z of equation ``(eq-lmm)`` in chapter 1 (and X when the fixed effects are the
    levels of a factor, such as environments).

    Examples
    --------
    >>> import lmmbook
    >>> Z, levels = lmmbook.incidence(["b", "a", "b"])
    >>> Z.toarray()
    array([[0., 1.],
           [1., 0.],
           [0., 1.]])
    >>> levels.tolist()
    ['a', 'b']
    >>> lmmbook.incidence(["b", "a"], levels=["a", "b", "c"]).counts().tolist()
    [1, 1, 0]
    """
    labels = pd.Series(labels, copy=False) if not isinstance(labels, pd.Series) else labels
    if labels.ndim != 1:
        raise InputError(f"{name} must be one-dimensional (one label per record).")
    missing = _is_missing(labels.to_numpy())
    if missing.any():
        rows = np.flatnonzero(missing)
        raise InputError(
            f"{name} is missing at row(s) {format_ids(rows.tolist())}: every record needs a level. "
            "Drop those records or give them a level of their own."
        )
    if levels is None:
        level_values = _default_levels(labels)
    else:
        level_values = np.asarray(levels)
        if level_values.ndim != 1:
            raise InputError("levels must be one-dimensional.")
        lacking = _is_missing(level_values)
        if lacking.any():  # no label is missing, so no record could reach such a column
            raise InputError(
                f"levels is missing at position(s) {format_ids(np.flatnonzero(lacking).tolist())}"
                ": every level needs a label. Remove the missing entries."
            )
        duplicated = pd.Index(level_values).duplicated()
        if duplicated.any():
            raise DuplicateIdError(
                f"levels holds {format_ids(pd.unique(level_values[duplicated]))} more than once; "
                "each level must be a distinct column. Remove the repeats."
            )
    column = pd.Index(level_values).get_indexer(labels.to_numpy())
    unknown = column < 0
    if unknown.any():
        raise UnknownIdError(
            f"{name} holds {format_ids(pd.unique(labels.to_numpy()[unknown]))} (first at row "
            f"{int(np.flatnonzero(unknown)[0])}), which is not among the {len(level_values)} "
            "levels given. Add it to levels or correct the label."
        )
    n, q = len(labels), len(level_values)
    matrix = sp.csr_array((np.ones(n), (np.arange(n), column)), shape=(n, q))
    level_values = level_values.copy()
    level_values.setflags(write=False)
    return Incidence(matrix=matrix, levels=level_values)
