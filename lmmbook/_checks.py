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
from scipy.sparse import csgraph

from .design import Incidence, fixed_design
from .errors import (
    DuplicateIdError,
    IdError,
    InputError,
    NonFiniteError,
    NotPositiveDefiniteError,
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


def dense(A: Matrix) -> np.ndarray:
    """A dense float array of a dense or scipy.sparse matrix."""
    return A.toarray() if sp.issparse(A) else np.asarray(A, dtype=float)


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


def is_table(y: Any) -> bool:
    """Whether y holds several traits: a DataFrame or 2-D array with more than one column."""
    if isinstance(y, pd.DataFrame):
        return y.shape[1] > 1
    if isinstance(y, (pd.Series, str)) or sp.issparse(y):
        return False
    shape = np.shape(y)
    return len(shape) == 2 and shape[1] > 1


def table(name: str, Y: Any) -> tuple[np.ndarray, pd.Index | None, tuple[str, ...]]:
    """An (n, t) float table of t traits (NaN = not observed), its row IDs when it came as a
    DataFrame, and the trait names (the columns, else "trait1", "trait2", ...)."""
    index = columns = None
    if isinstance(Y, pd.DataFrame):
        index, columns = Y.index, [str(c) for c in Y.columns]
        not_numeric = [c for c in Y.columns if not pd.api.types.is_numeric_dtype(Y[c])]
        if not_numeric:
            raise InputError(f"{name} column(s) {format_ids(not_numeric)} are not numeric; each "
                             "column of a table of traits holds one trait's records.")
    try:
        values = np.asarray(Y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from None
    if values.ndim != 2:
        raise ShapeMismatchError(f"{name} must be an (n, t) table, got shape {values.shape}.")
    t = values.shape[1]
    names = tuple(columns) if columns is not None else tuple(f"trait{a + 1}" for a in range(t))
    if len(set(names)) != t or any(("," in v or ":" in v) for v in names):
        raise InputError(f"the traits (columns of {name}) need distinct names without commas or "
                         f"colons, got {list(names)}.")
    if np.isinf(values).any():
        i, a = (int(k) for k in np.argwhere(np.isinf(values))[0])
        raise NonFiniteError(
            f"{name} is infinite at row {i}{_id_at(index, i)}, trait {names[a]!r}; use NaN for a "
            "value that was not observed.")
    empty = [names[a] for a in range(t) if not np.isfinite(values[:, a]).any()]
    if empty:
        raise InputError(
            f"trait(s) {format_ids(empty)} of {name} have no record: nothing informs their "
            "variances or effects. Drop the column, or add its records.")
    if index is not None:
        unique_ids(f"the index of {name}", index)
    return values, index, names


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
    """Refuse an index that names an ID twice or lacks one (pandas aligns a missing ID with
    another missing ID, so a record without an ID would be joined to a row without one)."""
    missing = [] if isinstance(ids, pd.MultiIndex) else np.flatnonzero(pd.isna(ids))
    if len(missing):
        raise IdError(
            f"{what} has a missing ID at position {int(missing[0])} ({len(missing)} in all); "
            "every row must carry an ID so that records can be joined. Give it its ID or drop "
            "the row."
        )
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
    """Refuse a design without full column rank, naming the columns involved and which to drop.

    The rank is read from the eigenvalues of the column-scaled cross-product X'X, so units do
    not matter; columns are called dependent when a singular value of the scaled X falls below
    ``rcond`` times the largest (condition number above 1e6). The message offers the usual
    remedy, one column dropped per dependency, and names a set of columns whose removal passes
    this same test (``design._columns_to_drop``: the last column of each dependency in column
    order).
    """
    p = X.shape[1]
    if p == 0:  # no fixed effects (records already centred): nothing to estimate
        return

    def label(j: int) -> str:
        return f"{columns[j]!r}" if columns is not None else f"column {j}"

    XtX = sp.csr_array(X.T @ X) if sp.issparse(X) else np.asarray(X.T @ X, dtype=float)
    norms = np.sqrt(XtX.diagonal())
    empty = np.flatnonzero(norms == 0)
    if len(empty):
        raise RankDeficientError(
            f"{name} {label(int(empty[0]))} is all zero on the observed records (e.g. a fixed-"
            "effect level whose records all have y = NaN), so its effect cannot be estimated. "
            "Drop that column."
        )
    # Columns that share no record are independent: check each connected block of X'X on its
    # own (a single factor has a diagonal X'X, thousands of herd-years cost nothing).
    if sp.issparse(XtX):
        n_blocks, block_of = csgraph.connected_components(XtX, directed=False)
    else:
        n_blocks, block_of = 1, np.zeros(p, dtype=int)
    blocks = [np.flatnonzero(block_of == c) for c in range(n_blocks)]
    blocks = [cols for cols in blocks if len(cols) > 1]
    scaled = {}
    eigenvalues = [np.ones(1)]  # a column alone: scaled X'X is [1]
    for cols in blocks:
        sub = dense(XtX[np.ix_(cols, cols)] if not sp.issparse(XtX) else XtX[cols][:, cols])
        scaled[tuple(cols)] = sub / np.outer(norms[cols], norms[cols])
        eigenvalues.append(np.linalg.eigvalsh(scaled[tuple(cols)]))
    largest = max(float(w[-1]) for w in eigenvalues)
    deficient = [cols for cols, w in zip(blocks, eigenvalues[1:], strict=True)
                 if (w < rcond**2 * largest).any()]
    if not deficient:
        return
    from .design import _columns_to_drop

    involved, drops, k = [], [], 0
    for cols in deficient:
        block = scaled[tuple(cols)]
        w, V = np.linalg.eigh(block)
        null = w < rcond**2 * largest
        k += int(null.sum())
        involved += cols[(np.abs(V[:, null]) > 1e-3).any(axis=1)].tolist()
        drop = _columns_to_drop(block, rcond)
        drops = None if drop is None or drops is None else drops + cols[drop].tolist()
    rank = p - k
    if drops is None:  # near-dependencies: no set of k columns passes the test clearly
        which = f"drop {k} of them whose removal leaves full rank"
    else:
        drops = sorted(drops)
        shown = [label(int(j)) for j in drops[:20]]
        more = f" and {len(drops) - 20} more" if len(drops) > 20 else ""
        listed = (f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 and not more
                  else ", ".join(shown) + more)
        other = "another one of them" if k == 1 else f"another set of {k} of them"
        which = (f"drop {listed} (the last column of each dependency; {other} whose removal "
                 "leaves full rank does as well)")
    involved = sorted(involved)
    raise RankDeficientError(
        f"{name} does not have full column rank (rank {rank} of {p} columns): columns "
        f"{', '.join(label(int(j)) if columns is not None else str(j) for j in involved)} are "
        "linearly dependent (e.g. an "
        "intercept together with a column for every level of a factor, or one factor nested "
        f"within another). The usual remedy: drop one column per dependency ({k} here), which "
        "sets that level's effect to zero (as Mrode sets HYS 1 = HYS 3 = 0 in Example 5.1): "
        f"{which}. Estimable functions of the fixed effects (such as the fitted values Xb) "
        "and the BLUPs of the random effects do not depend on which levels are set to zero."
    )


def rows_like_y(A: Labelled, name: str, y_ids: pd.Index | None, n: int) -> Matrix:
    """A's rows in the order of y: joined by ID when both carry IDs, else by position."""
    if y_ids is not None and A.rows is not None:
        order = join(y_ids, "y's index", A.rows, f"the index of {name}")
        return A.values[order]
    same_length(name, n, "y", A.values.shape[0])
    return A.values


def square_like_z(K: Labelled, Z: Labelled | None, name: str) -> tuple[Matrix, np.ndarray]:
    """A square, symmetric K (or K^-1) in the column order of Z, and the labels of u.

    With labels on both sides, K's index is joined to Z's columns; otherwise they are matched by
    position. Without Z (Z is the identity), u takes K's labels.
    """
    values = K.values
    if values.shape[0] != values.shape[1]:
        raise ShapeMismatchError(f"{name} must be square, got shape {values.shape}.")
    z_columns = Z.columns if Z is not None else None
    if K.rows is not None:
        if not K.rows.equals(K.columns):
            order = join(K.rows, f"{name}'s index", K.columns, f"{name}'s columns")
            values = values[:, order]
        if z_columns is not None:
            order = join(z_columns, "Z's columns", K.rows, f"{name}'s index")
            values = values[np.ix_(order, order)]
        labels = z_columns if z_columns is not None else K.rows
    else:
        labels = z_columns
    if Z is not None:
        same_length(name, Z.values.shape[1], "Z (columns)", values.shape[0], unit="rows")
    symmetric(name, values)
    q = values.shape[0]
    return values, (np.asarray(labels) if labels is not None else np.arange(q))


def symmetric(name: str, A: Matrix) -> None:
    """Refuse a matrix that differs from its transpose by more than round-off."""
    asym = abs(A - A.T)
    worst = asym.max() if asym.size else 0.0
    scale = abs(A).max() if A.size else 0.0
    if worst > 1e-10 * max(scale, 1.0):
        raise NotPositiveDefiniteError(
            f"{name} is not symmetric: its largest difference from its transpose is {worst:.3g} "
            f"(largest entry {scale:.3g}). A covariance structure is symmetric; if the difference "
            f"is round-off, pass ({name} + {name}.T) / 2."
        )


def positive_semidefinite(name: str, A: np.ndarray, rtol: float = 1e-8) -> None:
    """Refuse a symmetric matrix with an eigenvalue below -rtol times its largest magnitude.

    A Cholesky factorisation with a small shift answers quickly for the usual, valid input; the
    eigenvalues are computed only to write the message.
    """
    if A.size == 0:
        return
    scale = float(np.abs(np.diag(A)).max()) or 1.0
    try:
        np.linalg.cholesky(A + (rtol * scale * A.shape[0]) * np.eye(A.shape[0]))
        return
    except np.linalg.LinAlgError:
        pass
    smallest = float(np.linalg.eigvalsh(A)[0])
    if smallest < -rtol * scale * A.shape[0]:
        raise NotPositiveDefiniteError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {smallest:.4g} "
            f"(largest diagonal entry {scale:.4g}). A covariance structure cannot have negative "
            "eigenvalues: check how it was built, or blend it with a positive definite matrix."
        )


def frozen(a: Any) -> np.ndarray | None:
    """A read-only copy of an array (results are immutable); None stays None."""
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def row_ids(ids: Any, labels: Any, n: int, of: str) -> pd.Index | None:
    """The IDs of the n rows of ``of`` (G or M): ``ids`` as given, else the matrix's own labels
    (None when it has none); checked for length and uniqueness."""
    if ids is None:
        ids = labels
    if ids is None:
        return None
    ids = pd.Index(np.asarray(ids))
    same_length("ids", n, of, len(ids), unit="entries")
    unique_ids("ids", ids)
    return ids


def align_to_ids(y: Any, ids: pd.Index | None, n: int, of: str = "G") -> np.ndarray:
    """y as a vector in the order of ids (rows of G or M): a Series is joined by ID, and IDs
    without a phenotype become NaN; an ID with a phenotype and no genotype is refused."""
    values, y_ids = vector("y", y)
    if y_ids is None or ids is None:
        same_length("y", n, of, len(values), unit="entries")
        return values
    unknown = y_ids.difference(ids, sort=False)
    if len(unknown):
        raise UnknownIdError(
            f"{format_ids(unknown)} of y {'has' if len(unknown) == 1 else 'have'} a phenotype but "
            f"no genotype (not among the rows of {of}). Genotype the individual or drop its "
            "record."
        )
    return pd.Series(values, index=y_ids).reindex(ids).to_numpy(dtype=float)


def design_to_ids(X: Any, ids: pd.Index | None, n: int, y: np.ndarray, of: str = "G"):
    """X's rows in the order of ids (joined by ID when X is labelled) and its column names."""
    Xl = matrix("X", X)
    values = dense(Xl.values)
    if Xl.rows is not None and ids is not None:
        unknown = Xl.rows.difference(ids, sort=False)
        if len(unknown):
            raise UnknownIdError(f"X has rows for {format_ids(unknown)}, not among the rows of "
                                 f"{of}.")
        frame = pd.DataFrame(values, index=Xl.rows).reindex(ids)
        lacking = frame.isna().any(axis=1).to_numpy() & np.isfinite(y)
        if lacking.any():
            raise UnknownIdError(f"X has no row for {format_ids(ids[lacking])}, which have a "
                                 "phenotype.")
        values = frame.fillna(0.0).to_numpy()
    else:
        same_length("X", n, of, values.shape[0])
    p = values.shape[1]
    names = np.asarray(Xl.columns) if Xl.columns is not None else np.arange(p)
    return values, names


def formula_or_matrix(X: Any, data: Any) -> Any:
    """X as given, or the design of a formula string over ``data`` (lmmbook.fixed_design)."""
    if isinstance(X, str):
        if data is None:
            raise InputError(
                f"X is the formula {X!r} but no data= was given: pass the DataFrame of the "
                "records whose columns the formula names.")
        return fixed_design(X, data)
    if data is not None:
        raise InputError("data= is used only when X is a formula string; X is already a matrix.")
    return X
