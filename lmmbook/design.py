"""Design matrices: from labelled records to the incidence matrices X and Z of chapter 1.

A record belongs to one level of a factor (a variety, an environment, an animal); the incidence
matrix has one row per record and one column per level, with a single 1 in each row. The fixed
effects can also be written as R users write them, as a Wilkinson formula over a DataFrame of the
records (:func:`fixed_design`, through formulaic).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import formulaic
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from formulaic.errors import DataMismatchWarning, FactorEvaluationError, FormulaicError
from numpy.typing import ArrayLike

from .errors import DuplicateIdError, InputError, UnknownIdError, format_ids

__all__ = ["Incidence", "incidence", "fixed_design"]


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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _formulaic_message(exc: Exception) -> str:
    """formulaic's message on one line, without its terminal colours."""
    text = _ANSI.sub("", str(exc)).replace("⧛", "»").replace("⧚", "«")
    first, _, where = text.partition("\n\n")
    return f"{first.strip()} (at {where.strip()!r})" if where.strip() else first.strip()


def _columns_text(data: pd.DataFrame) -> str:
    return format_ids([str(c) for c in data.columns], limit=20)


def fixed_design(formula: str, data: pd.DataFrame) -> pd.DataFrame:
    """Fixed-effect design X from a Wilkinson formula over the records, as R users write it.

    Parameters
    ----------
    formula : str
        The right-hand side of a model formula, as in R's ``lm``: ``"~ 1 + C(hys) + C(parity)"``
        (an intercept and two factors), ``"~ C(herd) + C(pen) - 1"`` (no intercept),
        ``"~ 1 + sex + weight"`` (a text column is a factor, a numeric one a covariate),
        ``"~ C(herd):weight"`` (a slope per herd). ``C(x)`` makes a numeric column a factor;
        numpy (``np.log(weight)``) and formulaic's transforms (``center``, ``scale``, ``poly``,
        ``bs``, ``C(x, contr.treatment("B"))``) may be used. Every variable must be a column of
        ``data``: names from the calling code are not looked up.
    data : (n, k) pandas.DataFrame
        The records, one row per record, with the columns the formula names. Its index holds
        the record IDs that ``y`` is joined to.

    Returns
    -------
    (n, n_b) pandas.DataFrame
        X as floats, one row per row of ``data`` (same index, same order: no row is ever
        dropped), one column per fixed effect. The column labels are formulaic's, as strings:
        ``"Intercept"``, ``"C(hys)[T.2]"`` (level 2 of ``hys`` as a contrast against the
        reference level), ``"C(hys)[2]"`` (level 2 coded in full, without an intercept),
        ``"weight"`` (a covariate). They label ``b`` in the results of ``solve_mme`` and ``reml``.

    Raises
    ------
    InputError
        The formula has a left-hand side (``"y ~ ..."``: pass the records as ``y`` instead) or
        several parts; it cannot be parsed; it names a column that ``data`` lacks (the message
        lists the columns); a variable it uses is missing (None/NaN) in some rows (the message
        names the columns and the first row IDs: formulaic would drop those rows, which would
        silently lose records); it evaluates to an infinite value; two of its columns get the
        same label; or a record's level is not among those listed in ``C(x, levels=[...])``.

    Notes
    -----
    This builds the design matrix X of the fixed effects in chapter 1's model, equation
    ``(eq-lmm)``: one column per estimated constant, ``X[i, j]`` the coefficient of effect j in
    record i (1 or 0 for the level of a factor, the value of a covariate). The notation of the
    formula is that of Wilkinson and Rogers (1973, "Symbolic description of factorial models
    for analysis of variance", Applied Statistics 22, 392-399), as in R; the formulaic library
    implements it in Python. An array, a DataFrame or an :class:`Incidence` built by hand keeps
    working as X.

    With an intercept, formulaic codes each factor by treatment contrasts so that X has full
    column rank as far as the formula itself tells: the first level (in sorted order, or the
    first category of a pandas Categorical) is the reference and gets no column, and each
    estimate of the factor is then the difference between a level and the reference level.
    With ``- 1`` (no intercept) the first factor keeps all its levels, and the others still
    drop their reference level. Another reference is chosen with
    ``C(hys, contr.treatment(base=3))`` (columns ``C(hys, contr.treatment(base=3))[T.1]``, ...).
    The labels are formulaic's own, so that they read as in statsmodels and patsy; two columns
    with one label (which formulaic would merge) are refused.

    The formula cannot know that two factors are confounded in the data (HYS nested within
    parity in Mrode's Example 5.1, herd and pen in Example 8.1): X may still lack full column
    rank, which ``solve_mme`` and ``reml`` refuse, naming the columns to drop.

    Examples
    --------
    >>> import pandas as pd
    >>> from lmmbook.design import fixed_design
    >>> records = pd.DataFrame({"hys": [1, 3, 1, 2], "sex": ["F", "M", "M", "F"],
    ...                         "weight": [410.0, 450.0, 430.0, 380.0]},
    ...                        index=["r1", "r2", "r3", "r4"])
    >>> fixed_design("~ 1 + C(hys) + sex", records)
        Intercept  C(hys)[T.2]  C(hys)[T.3]  sex[T.M]
    r1        1.0          0.0          0.0       0.0
    r2        1.0          0.0          1.0       1.0
    r3        1.0          0.0          0.0       1.0
    r4        1.0          1.0          0.0       0.0
    >>> fixed_design("~ C(hys) + weight - 1", records).columns.tolist()
    ['C(hys)[1]', 'C(hys)[2]', 'C(hys)[3]', 'weight']
    """
    if not isinstance(formula, str):
        raise InputError(
            f"formula must be a string such as '~ 1 + C(hys)', got {type(formula).__name__}."
        )
    if not isinstance(data, pd.DataFrame):
        raise InputError(
            f"data must be a pandas DataFrame of the records (one row per record), got "
            f"{type(data).__name__}."
        )
    available = list(data.columns)
    try:
        parsed = formulaic.Formula.from_spec(
            formula, context={"__formulaic_variables_available__": available}
        )
    except FormulaicError as exc:
        raise InputError(
            f"formula {formula!r} cannot be read: {_formulaic_message(exc)}. Write it as in R, "
            "e.g. '~ 1 + C(hys) + C(parity)'."
        ) from None
    if isinstance(parsed, formulaic.StructuredFormula):
        if "lhs" in parsed:
            raise InputError(
                f"formula {formula!r} has a left-hand side, {str(parsed.lhs)!r}: give only the "
                f"fixed effects, '~ {parsed.rhs}', and pass the records separately as y."
            )
        raise InputError(
            f"formula {formula!r} has several parts; the fixed effects are one right-hand side, "
            "e.g. '~ 1 + C(hys) + C(parity)' (random effects are given as Z)."
        )
    dropped: set[int] = set()
    try:
        # na_action="drop" with drop_rows: formulaic reports every row it would drop (also rows
        # where a transform such as np.log gives NaN), and they are refused below, not dropped.
        # context={}: variables come from data only, never from the caller's namespace.
        # A level outside C(x, levels=[...]) would become a row of zeros (formulaic only warns).
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            mm = formulaic.model_matrix(formula, data, context={}, na_action="drop",
                                        drop_rows=dropped, ensure_full_rank=True,
                                        output="pandas")
    except DataMismatchWarning as exc:
        raise InputError(
            f"formula {formula!r} meets levels in data that it does not list: "
            f"{_formulaic_message(exc)} Every record needs a level: add them to levels= or "
            "drop those records."
        ) from None
    except FactorEvaluationError as exc:
        # a bare name is looked up in data; a name inside a call (C(herd)) is evaluated by Python
        unknown = re.search(r"`([^`]+)` is not present in the dataset|name '(\w+)' is not "
                            r"defined", str(exc))
        if unknown:
            missing = unknown.group(1) or unknown.group(2)
            if re.search(rf"(?<![\w.]){re.escape(missing)}\s*\(", formula):
                raise InputError(
                    f"formula {formula!r} calls {missing!r}, which is not a known function: "
                    "use numpy as np (np.log) or formulaic's transforms (C, center, scale, poly, "
                    "bs)."
                ) from None
            raise InputError(
                f"formula {formula!r} uses {missing!r}, which is not a column of data. "
                f"The columns are {_columns_text(data)}; correct the name (names are "
                "case-sensitive) or add the column."
            ) from None
        raise InputError(
            f"formula {formula!r} cannot be evaluated on data: {_formulaic_message(exc)}. Its "
            f"variables must be columns of data ({_columns_text(data)})."
        ) from None
    except FormulaicError as exc:
        raise InputError(
            f"formula {formula!r} cannot be used on data: {_formulaic_message(exc)}."
        ) from None
    if dropped:
        _refuse_missing(formula, data, parsed, sorted(int(i) for i in dropped))
    labels = [str(c) for c in mm.model_spec.column_names]
    repeated = pd.Index(labels)[pd.Index(labels).duplicated()]
    if len(repeated):
        # formulaic keeps only the last of two columns with one label: a column would be lost
        raise InputError(
            f"formula {formula!r} gives two columns the label {format_ids(pd.unique(repeated))} "
            "(a data column named like a level of a factor); rename that data column."
        )
    X = pd.DataFrame(mm.to_numpy(dtype=float), index=data.index,
                     columns=pd.Index(labels, dtype=object))
    infinite = ~np.isfinite(X.to_numpy())
    if infinite.any():
        i, j = (int(k) for k in np.argwhere(infinite)[0])
        raise InputError(
            f"formula {formula!r} gives column {labels[j]!r} the value {X.iat[i, j]} at row "
            f"{i} (ID {data.index[i]!r}), {int(infinite.sum())} such value(s) in all; X must be "
            "finite. Check the transform (e.g. np.log of 0) or the data."
        )
    return X


def _refuse_missing(formula: str, data: pd.DataFrame, parsed: formulaic.Formula,
                    rows: list[int]) -> None:
    """Raise for the rows formulaic would have dropped, naming the columns and row IDs."""
    # formulaic's required_variables misses some (e.g. inside poly() in 1.2.2): also take the
    # columns whose name appears in the formula as a name
    used = {v for v in parsed.required_variables if v in data.columns} | {
        c for c in data.columns
        if isinstance(c, str) and re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", formula)
    }
    subset = data.iloc[rows]
    columns = [c for c in data.columns if c in used and subset[c].isna().any()]
    ids = format_ids(data.index[rows].tolist())
    if columns:
        what = f"missing values in column(s) {format_ids([str(c) for c in columns])}"
        remedy = (
            f"complete them, drop those records from data and y (data.dropna(subset="
            f"{[str(c) for c in columns]!r})), or give a missing factor level a level of its "
            "own (data[col].fillna('unknown'))"
        )
    else:
        what = "terms that evaluate to a missing value (NaN)"
        remedy = "check the transforms (e.g. np.log of a negative value) and the data"
    raise InputError(
        f"formula {formula!r} has {what} in {len(rows)} row(s) of data (IDs {ids}); a record "
        "whose fixed effects are not known cannot be fitted, and no record is dropped "
        f"silently: {remedy}."
    )


def _columns_to_drop(S: np.ndarray, rcond: float = 1e-6) -> np.ndarray | None:
    """Positions of a smallest set of columns of a design whose removal gives full column rank.

    ``S`` is the design's cross-product X'X scaled to a unit diagonal (what
    ``_checks.full_column_rank`` tests): its rank is the number of eigenvalues at or above
    ``rcond**2`` times the largest, so ``p - rank`` columns are dropped. The columns are taken
    left to right and a column is dropped when it is a combination of the columns kept before
    it, as R's ``lm`` marks aliased coefficients: the last column of each dependency goes, and
    the order of the columns decides which. The distances are those of the columns of a square
    root B of S (B'B = S, its numerical null space removed), by Gram-Schmidt. When that set
    does not pass the rank test itself (near-dependencies, where "a combination" depends on a
    tolerance), the columns that a pivoted QR of B puts last are tried; None when neither set
    passes.
    """
    p = S.shape[0]
    w, V = np.linalg.eigh(S)
    null = w < rcond**2 * w[-1]
    rank = p - int(null.sum())
    B = np.sqrt(np.where(null, 0.0, w))[:, None] * V.T

    def full_rank(kept: np.ndarray) -> bool:
        if len(kept) != rank:
            return False
        s = np.linalg.eigvalsh(S[np.ix_(kept, kept)])
        return bool(s[0] >= rcond**2 * s[-1])

    Q = np.zeros((p, p))  # orthonormal basis of the kept columns, by Gram-Schmidt
    kept_list: list[int] = []
    for j in range(p):
        v = B[:, j].copy()
        for _ in range(2):  # twice is enough for orthogonality to round-off
            v -= Q @ (Q.T @ v)
        distance = np.linalg.norm(v)
        if distance > rcond and len(kept_list) < rank:
            Q[:, len(kept_list)] = v / distance
            kept_list.append(j)
    kept = np.asarray(kept_list, dtype=int)
    if not full_rank(kept):
        _, _, pivot = scipy.linalg.qr(B, mode="economic", pivoting=True)
        kept = np.sort(pivot[:rank])
        if not full_rank(kept):
            return None
    return np.setdiff1d(np.arange(p), kept)
