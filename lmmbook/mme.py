"""Henderson's mixed-model equations: BLUE, BLUP, prediction error variances (chapter 1).

For the model y = X b + Z u + e with u ~ N(0, sigma2_u K) and e ~ N(0, sigma2_e I), the
mixed-model equations (MME) are

    [ X'X    X'Z              ] [b]   [X'y]
    [ Z'X    Z'Z + lambda K^-1 ] [u] = [Z'y],      lambda = sigma2_e / sigma2_u.

Their solution is the BLUE of b and the BLUP of u, and sigma2_e times the inverse of the
coefficient matrix C is the variance of the prediction errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _checks, model
from .errors import ConvergenceError, InputError, NotPositiveDefiniteError, ShapeMismatchError

__all__ = ["MMEResult", "solve_mme", "PEV_AUTO_MAX_LEVELS"]

#: With ``compute_pev=None``, prediction error variances of a sparse problem are computed only when
#: u has at most this many levels (each level costs one solve with the factorised C).
PEV_AUTO_MAX_LEVELS = 10_000

_SOLVE_BLOCK = 256  # right-hand sides per block when extracting a diagonal of an inverse


@dataclass(frozen=True, eq=False)
class MMEResult:
    """Solution of the mixed-model equations.

    With one random effect (``Z`` one design) ``u``, ``pev``, ``reliability`` and ``levels`` are
    arrays; when ``Z`` was a list or a tuple they are tuples with one array per design, in the
    order given, tuples flattened: ``direct, maternal, pe = fit.u``.

    Attributes
    ----------
    b : (n_b,) ndarray
        BLUE of the fixed effects, in the column order of X.
    u : (q,) ndarray or tuple of ndarray
        BLUP of the random effects, in the column order of Z.
    pev : (q,) ndarray, tuple of ndarray, or None
        Prediction error variance Var(u_i - u_hat_i) of each level; None when not computed.
    reliability : (q,) ndarray, tuple of ndarray, or None
        ``1 - pev / (sigma2 * diag(K))``, the squared correlation between u and its BLUP, with
        sigma2 the variance of that design's effect (a diagonal element of its G0).
    fixed_names : (n_b,) ndarray
        Labels of b (X's column labels, or 0..n_b-1).
    levels : (q,) ndarray or tuple of ndarray
        Labels of u (Z's or K_inv's column labels, or 0..q-1).
    sigma2_u : float, or tuple of float and (k, k) ndarray
        The variance (or, per entry of Z, variance or covariance matrix G0) the equations were
        built with.
    sigma2_e : float
        The residual variance.
    n_obs : int
        Number of records used (those with a finite y).
    method : str
        How the equations were solved.
    n_iter : int or None
        PCG iterations (None for "direct").
    residuals : ndarray or None
        PCG's relative residual ||C x - r|| / ||r|| at the start and after each iteration.
    names : tuple of str
        A name per design (``names=`` of :func:`solve_mme`, else "u" or "u1", "u2", ...).
    traits : tuple of str or None
        With several traits (y a table): their names. Then ``u``, ``pev`` and ``reliability`` of
        each design are (q, t) arrays, one column per trait; ``b`` holds each trait's fixed
        effects, trait by trait, named "trait:column"; ``sigma2_u`` is the genetic covariance
        matrix G0 (a (k t, k t) matrix for a tuple, effect by effect, traits within) and
        ``sigma2_e`` the residual covariance matrix R0. None for one trait.
    unused_records : ndarray or None
        With several traits: the records (IDs of y, else positions) with no trait observed,
        which therefore left the equations. None for one trait.
    """

    b: np.ndarray
    u: np.ndarray | tuple[np.ndarray, ...]
    pev: np.ndarray | tuple[np.ndarray, ...] | None
    reliability: np.ndarray | tuple[np.ndarray, ...] | None
    fixed_names: np.ndarray
    levels: np.ndarray | tuple[np.ndarray, ...]
    sigma2_u: float | tuple[float | np.ndarray, ...]
    sigma2_e: float
    n_obs: int
    method: str
    n_iter: int | None = None
    residuals: np.ndarray | None = None
    names: tuple[str, ...] = ("u",)
    traits: tuple[str, ...] | None = None
    unused_records: np.ndarray | None = None

    @property
    def lambda_(self) -> float:
        """The variance ratio lambda = sigma2_e / sigma2_u that enters the equations (one
        random effect; with several, each G0 enters as sigma2_e G0^-1)."""
        if isinstance(self.sigma2_u, tuple) or self.traits is not None:
            raise InputError("lambda_ is defined for one random effect of one trait; with "
                             "several, each G0 enters the equations as sigma2_e * inv(G0) (with "
                             "several traits, as inv(G0) next to R^-1).")
        return self.sigma2_e / self.sigma2_u

    def fixed_effects(self) -> pd.Series:
        """b as a Series indexed by ``fixed_names`` (with several traits by (trait, column))."""
        if self.traits is None:
            return pd.Series(self.b, index=self.fixed_names, name="b")
        index = pd.MultiIndex.from_tuples([tuple(str(v).split(":", 1)) for v in self.fixed_names],
                                          names=["trait", "column"])
        return pd.Series(self.b, index=index, name="b")

    def random_effects(self, effect: int | str | None = None) -> pd.DataFrame:
        """u, and its PEV and reliability when computed, as a DataFrame indexed by ``levels``.

        With several designs, ``effect`` (a position or a name of ``names``) picks one; without
        it the designs are stacked under a two-level index (effect, level).
        """
        if not isinstance(self.u, tuple):
            return self._frame(self.u, self.pev, self.reliability, self.levels, self.traits)
        parts = [self._frame(self.u[j], None if self.pev is None else self.pev[j],
                             None if self.reliability is None else self.reliability[j],
                             self.levels[j], self.traits) for j in range(len(self.u))]
        if effect is not None:
            if isinstance(effect, str):
                if effect not in self.names:
                    raise InputError(f"no random effect named {effect!r}; the names are "
                                     f"{list(self.names)}.")
                effect = self.names.index(effect)
            return parts[effect]
        return pd.concat(parts, keys=list(self.names), names=["effect", "level"])

    @staticmethod
    def _frame(u, pev, reliability, levels, traits=None) -> pd.DataFrame:
        columns = {"u": u}
        if pev is not None:
            columns |= {"pev": pev, "reliability": reliability}
        index = pd.Index(levels, name="level")
        if traits is None:
            return pd.DataFrame(columns, index=index)
        frame = pd.DataFrame({(what, trait): values[:, a] for what, values in columns.items()
                              for a, trait in enumerate(traits)}, index=index)
        frame.columns.names = ["quantity", "trait"]
        return frame


def solve_mme(
    y: Any,
    X: Any,
    Z: Any,
    K_inv: Any,
    sigma2_u: Any,
    sigma2_e: float,
    *,
    K_diag: Any = None,
    method: Literal["direct", "pcg"] = "direct",
    compute_pev: bool | None = None,
    tol: float = 1e-10,
    maxiter: int | None = None,
    preconditioner: Literal["diagonal", "block"] = "block",
    data: pd.DataFrame | None = None,
    names: Sequence[str] | None = None,
) -> MMEResult:
    """Solve Henderson's mixed-model equations for the BLUE of b and the BLUP of u.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series, or an (n, t) array or DataFrame of t traits
        Records. NaN means "not observed": the record leaves the equations, and every level of u
        is still predicted. With t traits (chapter 11) each column is one trait (a DataFrame's
        column names name them), NaN marks a trait not recorded on that record, and a record with
        no trait observed leaves the equations (listed in ``unused_records``).
    X : (n, n_b) array_like, scipy.sparse matrix, pandas.DataFrame, Incidence, or str
        Fixed-effect design; must have full column rank on the observed records. A string is a
        formula over ``data`` (:func:`lmmbook.fixed_design`), e.g. ``"~ C(hys) + C(parity) - 1"``.
        With several traits the same design serves every trait, each with its own effects; a
        dict ``{trait: design}`` gives each trait its own.
    Z : (n, q) design, a tuple of designs, or a list of designs and tuples
        Random-effect design(s): array_like, scipy.sparse, DataFrame or Incidence. A list holds
        one entry per random effect (animal, permanent environment, litter...); an entry that is a
        tuple holds the designs of correlated effects over the same levels, e.g.
        ``(Z_direct, Z_maternal)`` where ``Z_maternal`` links each record to its dam's column.
    K_inv : (q, q) array_like, scipy.sparse matrix, DataFrame or None, or a list of them
        Inverse of the covariance structure K of each entry's levels (``A^-1`` of a pedigree;
        None = the identity, for unrelated levels), one per entry of ``Z``.
    sigma2_u : float or (k, k) array_like, or a list of them
        One per entry of ``Z``: the variance of u (per unit of K), or for a tuple of k designs the
        (k, k) covariance matrix G0 of the effects, Var(stacked u) = G0 kron K. Positive
        (definite). With t traits the (t, t) genetic covariance matrix G0 of each effect (for a
        tuple of k effects a (k t, k t) matrix, effect by effect, traits within).
    sigma2_e : float or (t, t) array_like
        Residual variance, positive; with t traits the residual covariance matrix R0 of one
        record's traits (R^-1 is block diagonal by record: the inverse of R0's sub-matrix for the
        traits observed on it, chapter 11, ``(eq-mt-rinv)``).
    K_diag : (q,) array_like or a list of them (None entries allowed), optional
        diag(K), needed for reliabilities (a pedigree knows it as 1 + F). Computed from K_inv when
        absent.
    method : {"direct", "pcg"}
        "direct" factorises the coefficient matrix: Cholesky (LAPACK) when every input is dense,
        sparse LU (SuperLU) when X, Z or K_inv is sparse. "pcg" solves by preconditioned conjugate
        gradients with the sparse C, never factorising it: for large animal models.
    compute_pev : bool, optional
        Whether to compute ``pev`` and ``reliability``. By default always for dense input, and for
        sparse input when u has at most ``lmmbook.mme.PEV_AUTO_MAX_LEVELS`` (10,000) equations.
        Not available with "pcg" (PEV needs the inverse of C).
    tol : float, optional
        "pcg" stops when ||C x - r|| <= tol ||r||. The relative error of the solution is at most
        about cond(C) times tol, so the default 1e-10 leaves solutions good to ~1e-7 even for
        cond(C) ~ 1e3 (in animal models lambda and the pedigree set the condition number).
    maxiter : int, optional
        "pcg" iteration limit (default: the number of equations, n_b + q, at most 100,000).
    preconditioner : {"block", "diagonal"}
        "pcg" preconditioner: the inverse of diag(C) ("diagonal"), or ("block", the default) that
        with the fixed-effect block inverted as a whole and, for correlated effects, the k x k
        block of each level (its direct and maternal equations together).
    data : pandas.DataFrame, optional
        The records, when ``X`` is a formula.
    names : sequence of str, optional
        A name for each design (tuples flattened), used by ``random_effects()``.

    Returns
    -------
    MMEResult
        ``b``, ``u``, ``pev``, ``reliability`` and their labels.

    Raises
    ------
    ConvergenceError
        "pcg" did not reach ``tol`` within ``maxiter`` iterations.
    ShapeMismatchError
        Lengths or shapes disagree (the message names both); K_inv is not square; the designs of a
        tuple have different numbers of columns; K_inv or sigma2_u do not have one entry per entry
        of Z.
    NonFiniteError
        X, Z or K_inv holds NaN or infinity, or y holds infinity.
    VarianceError
        A variance is zero, negative or not finite.
    RankDeficientError
        X lacks full column rank on the observed records (the message names the columns and
        which to drop).
    NotPositiveDefiniteError
        K_inv or a G0 is not symmetric positive definite (the message gives the smallest
        eigenvalue), or the equations are singular.
    UnknownIdError, DuplicateIdError
        Labelled inputs (pandas objects, Incidence) whose IDs do not join exactly.

    Notes
    -----
    Chapter 1, equation ``(eq-mme)``; Henderson (1975). With several random effects, chapter 4,
    equation ``(eq-general-mme)``: C = [X Z_all]'[X Z_all] + blockdiag(0, sigma2_e Sigma_u^-1)
    with Z_all all designs side by side and Sigma_u^-1 = blockdiag(G0_r^-1 kron K_r^-1);
    Henderson (1984). With several traits, chapter 11, equation ``(eq-mt-mme)``:
    C = [X Z_all]' R^-1 [X Z_all] + blockdiag(0, Sigma_u^-1) over the observed (record, trait)
    pairs; Henderson & Quaas (1976).

    Inputs are aligned by position, except where they carry IDs: when y is a Series, DataFrame
    rows of X and Z are joined to it by index; Z's column labels (DataFrame columns or
    ``Incidence.levels``) are joined to K_inv's index, and within a tuple the other designs'
    labels to the first's. Joins are exact: an ID missing on either side is an error, never a
    silent drop.

    A level without records (a permanent-environment column for an animal that has no record,
    with K_inv = I) is allowed: its BLUP is 0, the mean of the effect, and its PEV the full
    variance (reliability 0) -- no record informs it. A level related to recorded levels through
    K (an animal without records in A) is predicted through its relatives.

    PEV is ``sigma2_e`` times the diagonal of the u-block of ``C^-1`` (chapter 1, equation
    ``(eq-pev)``), and reliability ``1 - PEV_i / (sigma2_u K_ii)``.

    Examples
    --------
    Three records on two unrelated levels, one overall mean:

    >>> import numpy as np, lmmbook
    >>> res = lmmbook.solve_mme(y=[4.0, 6.0, 8.0], X=np.ones((3, 1)),
    ...                         Z=lmmbook.incidence(["a", "a", "b"]), K_inv=np.eye(2),
    ...                         sigma2_u=1.0, sigma2_e=2.0)
    >>> res.levels.tolist(), np.round(res.u, 4).tolist()
    (['a', 'b'], [-0.6, 0.6])
    >>> np.round(res.b, 4).tolist(), np.round(res.reliability, 4).tolist()
    ([6.2], [0.2, 0.2])

    Two uncorrelated effects of the same levels (a genetic and a permanent environment effect
    with identity structures): their sum is predicted as one effect of variance 1.5 would be,
    and split in the ratio of the variances:

    >>> Za = lmmbook.incidence(["a", "a", "b"])
    >>> res = lmmbook.solve_mme([4.0, 6.0, 8.0], np.ones((3, 1)), [Za, Za], [np.eye(2), None],
    ...                         [1.0, 0.5], 2.0, names=["animal", "pe"])
    >>> [np.round(u, 4).tolist() for u in res.u]
    [[-0.5, 0.5], [-0.25, 0.25]]
    """
    if method not in ("direct", "pcg"):
        raise InputError(f"method must be 'direct' or 'pcg', got {method!r}.")
    if method == "pcg" and compute_pev:
        raise InputError("compute_pev=True needs the inverse of C, which 'pcg' never forms: use "
                         "method='direct' (sparse factorisation) for PEV and reliabilities.")
    if preconditioner not in ("diagonal", "block"):
        raise InputError(f"preconditioner must be 'diagonal' or 'block', got {preconditioner!r}.")
    stacked = model.stacked_problem(y, X, Z, K_inv, data, inverse=True)
    traits, effects = stacked.traits, stacked.effects
    names = model.design_names(names, stacked.single)
    K_diags = _k_diag_argument(K_diag, effects)
    R_inv = None
    if traits is None:
        G0s = model.covariances(sigma2_u, effects)
        sigma2_e = _checks.positive_variance("sigma2_e", sigma2_e)
        scale = sigma2_e
    else:
        G0s = model.covariances(sigma2_u, effects, rows=model.TRAIT_ROWS)
        sigma2_e = model.covariance_matrix("sigma2_e", sigma2_e, traits.t,
                                           rows="one row per trait: R0")
        R_inv, scale = traits.residual_inverse(sigma2_e), 1.0
    observed, fixed_names = stacked.observed, stacked.fixed_names
    X_o, y_o = stacked.X[observed], stacked.y[observed]
    n_b = X_o.shape[1]

    sparse = sp.issparse(X_o) or effects.sparse
    Z_all_o = model.observed_design(effects, observed, sparse)
    n_u = effects.size
    n_iter = residuals = None
    if method == "pcg":
        compute_pev = False
        _check_structures(effects, dense_cholesky=False)
        C, XZ = model.coefficient_matrix(X_o, Z_all_o, effects, G0s, scale, sparse=True,
                                         R_inv=R_inv)
        solution, residuals = _pcg(C, XZ.T @ y_o,
                                   _preconditioner(C, n_b, effects, preconditioner), tol,
                                   maxiter or min(n_b + n_u, 100_000))
        n_iter = len(residuals) - 1
    else:
        if compute_pev is None:
            compute_pev = not sparse or n_u <= PEV_AUTO_MAX_LEVELS
        factors = _check_structures(effects, dense_cholesky=not sparse)
        C, XZ = model.coefficient_matrix(X_o, Z_all_o, effects, G0s, scale, sparse, R_inv=R_inv)
        solver = (_SparseSolver if sparse else _DenseSolver)(C)
        solution = solver.solve(XZ.T @ y_o)
    b = solution[:n_b]
    u = _split(solution[n_b:], effects)

    pev = reliability = None
    if compute_pev:
        pev = _split(scale * solver.inverse_diagonal(n_b, n_b + n_u), effects)
        reliability = []
        j = 0
        for r, (entry, G0) in enumerate(zip(effects.entries, G0s, strict=True)):
            K_ii = K_diags[r] if K_diags[r] is not None else _k_diagonal(entry, factors[r])
            for a in range(entry.k):
                reliability.append(1.0 - pev[j] / (G0[a, a] * K_ii))
                j += 1

    frozen = _checks.frozen

    def out(arrays):
        if arrays is None:
            return None
        arrays = tuple(frozen(a) for a in stacked.by_trait(arrays))
        return arrays if effects.multi else arrays[0]

    if effects.multi:
        s2u = tuple(float(G0[0, 0]) if e.k == 1 else frozen(G0)
                    for e, G0 in zip(effects.entries, G0s, strict=True))
    else:
        s2u = float(G0s[0][0, 0]) if traits is None else frozen(G0s[0])
    return MMEResult(
        b=frozen(b), u=out(u), pev=out(pev), reliability=out(reliability),
        fixed_names=frozen(fixed_names), levels=stacked.levels(),
        sigma2_u=s2u, sigma2_e=sigma2_e if traits is None else frozen(sigma2_e),
        n_obs=stacked.n_obs, method=method, n_iter=n_iter, residuals=frozen(residuals),
        names=names, traits=None if traits is None else traits.names,
        unused_records=stacked.unused_records,
    )


def _split(values: np.ndarray, effects: model.RandomEffects) -> list[np.ndarray]:
    """The u-part of a solution cut into one array per design."""
    parts, start = [], 0
    for e in effects.entries:
        for _ in range(e.k):
            parts.append(values[start:start + e.q])
            start += e.q
    return parts


def _k_diag_argument(K_diag: Any, effects: model.RandomEffects) -> list[np.ndarray | None]:
    entries = effects.entries
    if K_diag is None:
        return [None] * len(entries)
    values = list(K_diag) if effects.multi and isinstance(K_diag, list) else [K_diag]
    if len(values) != len(entries):
        raise ShapeMismatchError(f"K_diag must have one entry per entry of Z ({len(entries)}), "
                                 f"got {len(values)}.")
    out = []
    for entry, value in zip(entries, values, strict=True):
        if value is None:
            out.append(None)
            continue
        v, _ = _checks.vector("K_diag", value)
        _checks.same_length("K_diag", entry.q, "Z (columns)", len(v), unit="entries")
        if not (np.isfinite(v) & (v > 0)).all():
            raise InputError("K_diag must be positive and finite: it is the diagonal of K (1 + F).")
        out.append(v)
    return out


_PD_HINT = ("Check that K_inv is the inverse of a positive definite relationship matrix and that "
            "every fixed effect is estimable.")


def _inverse_diagonal(solve, size: int, start: int, stop: int) -> np.ndarray:
    """Entries start..stop-1 of diag(C^-1), given a function that solves C x = r.

    Solves for blocks of unit vectors, so memory stays at size x _SOLVE_BLOCK.
    """
    out = np.empty(stop - start)
    for first in range(start, stop, _SOLVE_BLOCK):
        last = min(first + _SOLVE_BLOCK, stop)
        rows, cols = np.arange(first, last), np.arange(last - first)
        E = np.zeros((size, last - first))
        E[rows, cols] = 1.0
        out[first - start:last - start] = solve(E)[rows, cols]
    return out


def _check_structures(effects: model.RandomEffects, dense_cholesky: bool) -> list:
    """Refuse a K_inv that is not positive definite; return what _k_diagonal reuses.

    Dense: the Cholesky factor of each K_inv (needed anyway for diag(K)). Sparse: a diagonal
    entry <= 0 is caught here, anything else by the factorisation of C.
    """
    factors = []
    for r, entry in enumerate(effects.entries):
        what = "K_inv" if len(effects.entries) == 1 else f"K_inv (random effect {r + 1})"
        K_inv = entry.structure
        if K_inv is None:
            factors.append(None)
        elif dense_cholesky and not sp.issparse(K_inv):
            try:
                factors.append(la.cholesky(K_inv, lower=True))
            except la.LinAlgError:
                raise NotPositiveDefiniteError(
                    f"{what} is not positive definite (its Cholesky factorisation failed). "
                    + _PD_HINT) from None
        else:
            if (K_inv.diagonal() <= 0).any():
                raise NotPositiveDefiniteError(
                    f"{what} has a diagonal entry <= 0, so it is not positive definite. "
                    + _PD_HINT)
            factors.append(None)
    return factors


def _k_diagonal(entry: model.RandomEffect, chol) -> np.ndarray:
    """diag(K) from K_inv: from its Cholesky factor L (K_ii = squared norm of column i of L^-1),
    or by solves with its sparse LU."""
    if entry.structure is None:
        return np.ones(entry.q)
    if chol is not None:
        L_inv = la.solve_triangular(chol, np.eye(chol.shape[0]), lower=True)
        return np.einsum("ij,ij->j", L_inv, L_inv)
    K_inv = sp.csc_array(entry.structure)
    factor = _SparseSolver._lu(K_inv, "K_inv")
    return _inverse_diagonal(factor.solve, entry.q, 0, entry.q)


class _DenseSolver:
    """C = [X Z_all]'[X Z_all] + blockdiag(0, sigma2_e Sigma_u^-1) by Cholesky (chapter 1)."""

    def __init__(self, C):
        self.size = C.shape[0]
        try:
            self.factor = la.cho_factor(C, lower=True)
        except la.LinAlgError:
            raise NotPositiveDefiniteError(
                "The coefficient matrix of the mixed-model equations is not positive definite. "
                + _PD_HINT) from None

    def solve(self, r):
        return la.cho_solve(self.factor, r)

    def inverse_diagonal(self, start, stop):
        return _inverse_diagonal(self.solve, self.size, start, stop)


def _preconditioner(C, n_b: int, effects: model.RandomEffects, kind: str):
    """The inverse of the preconditioner tilde-C as a function: 1 / diag(C) ("diagonal"); for
    "block", the n_b x n_b fixed-effect block is solved whole (sparse LU) and each level of a
    tuple entry gets its k x k block (its direct and maternal equations together)."""
    diag = C.diagonal()
    if np.any(diag <= 0):
        raise NotPositiveDefiniteError(
            "The coefficient matrix has a diagonal entry <= 0. " + _PD_HINT)
    inv_diag = 1.0 / diag
    if kind == "diagonal":
        return lambda r: inv_diag * r
    fixed = None
    if n_b > 1:
        try:
            fixed = spla.splu(sp.csc_array(C[:n_b, :n_b]), permc_spec="MMD_AT_PLUS_A")
        except RuntimeError:
            raise NotPositiveDefiniteError(
                "The fixed-effect block X'X is singular. " + _PD_HINT) from None
    blocks, start = [], n_b
    for e in effects.entries:
        if e.k > 1:
            B = np.empty((e.q, e.k, e.k))
            for a in range(e.k):
                for c in range(e.k):
                    rows = slice(start + a * e.q, start + (a + 1) * e.q)
                    cols = slice(start + c * e.q, start + (c + 1) * e.q)
                    B[:, a, c] = C[rows, cols].diagonal()
            blocks.append((start, e.k, e.q, np.linalg.inv(B)))
        start += e.size

    def apply(r):
        out = inv_diag * r
        if fixed is not None:
            out[:n_b] = fixed.solve(r[:n_b])
        for first, k, q, B_inv in blocks:
            seg = r[first:first + k * q].reshape(k, q)
            out[first:first + k * q] = np.einsum("lac,cl->al", B_inv, seg).ravel()
        return out

    return apply


def _pcg(C, g, precondition, tol: float, maxiter: int):
    """Preconditioned conjugate gradients for C s = g, C symmetric positive definite (chapter 3,
    in the book's notation: iterate s, residual g^(t) = g - C s^(t), preconditioned residual
    zeta^(t) (``h`` below), direction phi^(t), step gamma^(t), weight kappa^(t) of the old
    direction).
    Returns s and the relative residual |g^(t)| / |g| before and after each iteration."""
    norm_g = np.linalg.norm(g)
    s = np.zeros_like(g)
    if norm_g == 0:
        return s, np.zeros(1)
    g_t = g.copy()
    h = precondition(g_t)
    phi = h.copy()
    gh = g_t @ h
    history = [1.0]
    for _ in range(maxiter):
        C_phi = C @ phi
        gamma = gh / (phi @ C_phi)
        s += gamma * phi
        g_t -= gamma * C_phi
        history.append(np.linalg.norm(g_t) / norm_g)
        if history[-1] <= tol:
            return s, np.array(history)
        h = precondition(g_t)
        gh_next = g_t @ h
        kappa = gh_next / gh
        phi = h + kappa * phi
        gh = gh_next
    raise ConvergenceError(
        f"PCG did not reach a relative residual of {tol:g} in {maxiter} iterations (it reached "
        f"{history[-1]:.2e}). Raise maxiter, loosen tol, or check that the model is estimable."
    )


class _SparseSolver:
    """The same equations kept sparse and factorised by SuperLU."""

    def __init__(self, C):
        self.size = C.shape[0]
        self.factor = self._lu(sp.csc_array(C),
                               "The coefficient matrix of the mixed-model equations")

    @staticmethod
    def _lu(C, what):
        try:
            return spla.splu(C, permc_spec="MMD_AT_PLUS_A")
        except RuntimeError:
            raise NotPositiveDefiniteError(f"{what} is singular. " + _PD_HINT) from None

    def solve(self, r):
        return self.factor.solve(np.asarray(r, dtype=float))

    def inverse_diagonal(self, start, stop):
        return _inverse_diagonal(self.solve, self.size, start, stop)
