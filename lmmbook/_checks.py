"""Validation shared by the public entry points (private).

Every public function turns its arguments into plain arrays here, once, so that the numerical code
behind it can trust them. Each check raises from :mod:`lmmbook.errors` with a message that says
what, where and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .design import Incidence
from .errors import (
    DuplicateIdError,
    InputError,
    NonFiniteError,
    RankDeficientError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
    format_ids,
)

Matrix = np.ndarray | sp.sparray


@dataclass(frozen=True, eq=False)
class Labelled:
    """A matrix with the labels of its rows and columns (None where it came without)."""

    values: Matrix
    rows: pd.Index | None
    columns: pd.Index | None


def vector(name: str, y: Any) -> tuple[np.ndarray, pd.Index | None]:
    """A 1-D float vector and its index when it came as a pandas Series."""
    index = y.index if isinstance(y, pd.Series) else None
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ShapeMismatchError(
                f"{name} must be a vector, got a DataFrame with {y.shape[1]} columns; pass the "
                "one column you model."
            )
        index, y = y.index, y.iloc[:, 0]
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from None
    if values.ndim == 2 and 1 in values.shape:
        values = values.ravel()
    if values.ndim != 1:
        raise ShapeMismatchError(f"{name} must be one-dimensional, got shape {values.shape}.")
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise NonFiniteError(
            f"{name} is infinite at row {row}{_id_at(index, row)}; use NaN for a value that was "
            "not observed."
        )
    if index is not None:
        unique_ids(f"the index of {name}", index)
    return values, index


def matrix(name: str, A: Any) -> Labelled:
    """A 2-D float matrix (dense ndarray or scipy.sparse CSR) with its labels, all finite."""
    rows = columns = None
    if isinstance(A, Incidence):
        values, columns = A.matrix, pd.Index(A.levels)
    elif isinstance(A, pd.DataFrame):
        not_numeric = [c for c in A.columns if not pd.api.types.is_numeric_dtype(A[c])]
        if not_numeric:
            raise InputError(
                f"{name} column(s) {format_ids(not_numeric)} are not numeric; turn a factor into "
                "columns with lmmbook.incidence."
            )
        values, rows, columns = A.to_numpy(dtype=float), A.index, A.columns
    elif sp.issparse(A):
        values = sp.csr_array(A, dtype=float)
    else:
        try:
            values = np.asarray(A, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must be a numeric matrix: {exc}") from None
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ShapeMismatchError(f"{name} must be two-dimensional, got shape {values.shape}.")
    _finite(name, values, rows, columns)
    if rows is not None:
        unique_ids(f"the index of {name}", rows)
    if columns is not None:
        unique_ids(f"the columns of {name}", columns)
    return Labelled(values, rows, columns)


def _id_at(index: pd.Index | None, position: int) -> str:
    return "" if index is None else f" (ID {index[position]!r})"


def _finite(name: str, values: Matrix, rows: pd.Index | None, columns: pd.Index | None) -> None:
    if sp.issparse(values):
        coo = values.tocoo()
        bad = ~np.isfinite(coo.data)
        if not bad.any():
            return
        i, j, v = int(coo.row[bad][0]), int(coo.col[bad][0]), coo.data[bad][0]
    else:
        bad = ~np.isfinite(values)
        if not bad.any():
            return
        i, j = (int(k) for k in np.argwhere(bad)[0])
        v = values[i, j]
    column = f"column {j}" if columns is None else f"column {columns[j]!r}"
    raise NonFiniteError(
        f"{name} holds {v} at row {i}{_id_at(rows, i)}, {column}; {name} must be finite "
        "(only y may hold NaN, for a record that was not observed). Drop or complete that record."
    )


def unique_ids(what: str, ids: pd.Index) -> None:
    """Refuse an index that names an ID twice."""
    duplicated = ids.duplicated()
    if duplicated.any():
        raise DuplicateIdError(
            f"{what} holds {format_ids(pd.unique(ids[duplicated]))} more than once; IDs must be "
            "unique so that records can be joined. Remove or rename the repeats."
        )


def join(reference: pd.Index, what_ref: str, ids: pd.Index, what: str) -> np.ndarray:
    """Positions in `ids` of each ID of `reference`; both sets of IDs must be equal."""
    missing = reference.difference(ids, sort=False)
    if len(missing):
        raise UnknownIdError(
            f"{format_ids(missing)} of {what_ref} {'is' if len(missing) == 1 else 'are'} not in "
            f"{what}; every ID must be present in both. Add the rows or drop the records."
        )
    extra = ids.difference(reference, sort=False)
    if len(extra):
        raise UnknownIdError(
            f"{what} holds {format_ids(extra)}, not in {what_ref}; IDs are joined exactly, so "
            "remove the rows that do not belong to the data."
        )
    return ids.get_indexer(reference)


def same_length(name: str, n: int, other: str, m: int, unit: str = "rows") -> None:
    if n != m:
        raise ShapeMismatchError(f"{name} has {m} {unit} but {other} has {n}; they must match.")


def positive_variance(name: str, value: Any) -> float:
    """A variance component as a positive finite float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VarianceError(f"{name} must be a number, got {value!r}.") from None
    if not np.isfinite(v) or v <= 0:
        raise VarianceError(
            f"{name} must be positive and finite, got {v}. A variance of zero removes the effect "
            "from the model: drop the effect instead, or estimate the variances (chapter 2)."
        )
    return v


def full_column_rank(name: str, X: Matrix, columns: pd.Index | None,
                     rcond: float = 1e-6) -> None:
    """Refuse a design without full column rank, naming the columns involved.

    The rank is read from the eigenvalues of the column-scaled cross-product X'X, so units do
    not matter; columns are called dependent when a singular value of the scaled X falls below
    ``rcond`` times the largest (condition number above 1e6).
    """
    p = X.shape[1]
    if p == 0:  # no fixed effects (records already centred): nothing to estimate
        return
    XtX = X.T @ X
    XtX = XtX.toarray() if sp.issparse(XtX) else np.asarray(XtX)

    def label(j: int) -> str:
        return f"{columns[j]!r}" if columns is not None else f"column {j}"

    norms = np.sqrt(np.diag(XtX))
    empty = np.flatnonzero(norms == 0)
    if len(empty):
        raise RankDeficientError(
            f"{name} {label(int(empty[0]))} is all zero on the observed records (e.g. a fixed-"
            "effect level whose records all have y = NaN), so its effect cannot be estimated. "
            "Drop that column."
        )
    scaled = XtX / np.outer(norms, norms)
    w, V = np.linalg.eigh(scaled)
    null = w < rcond**2 * w[-1]
    if null.any():
        involved = np.flatnonzero((np.abs(V[:, null]) > 1e-3).any(axis=1))
        rank = p - int(null.sum())
        raise RankDeficientError(
            f"{name} does not have full column rank (rank {rank} of {p} columns): columns "
            f"{', '.join(label(int(j)) for j in involved)} are linearly dependent (e.g. an "
            "intercept together with a column for every level of a factor). Drop "
            f"{p - rank} of them or use contrasts."
        )
