"""Henderson's mixed-model equations: BLUE, BLUP, prediction error variances (chapter 1).

For the model y = X b + Z u + e with u ~ N(0, sigma2_u K) and e ~ N(0, sigma2_e I), the
mixed-model equations (MME) are

    [ X'X    X'Z              ] [b]   [X'y]
    [ Z'X    Z'Z + lambda K^-1 ] [u] = [Z'y],      lambda = sigma2_e / sigma2_u.

Their solution is the BLUE of b and the BLUP of u, and sigma2_e times the inverse of the
coefficient matrix C is the variance of the prediction errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _checks
from .errors import ConvergenceError, InputError, NotPositiveDefiniteError

__all__ = ["MMEResult", "solve_mme", "PEV_AUTO_MAX_LEVELS"]

#: With ``compute_pev=None``, prediction error variances of a sparse problem are computed only when
#: u has at most this many levels (each level costs one solve with the factorised C).
PEV_AUTO_MAX_LEVELS = 10_000

_SOLVE_BLOCK = 256  # right-hand sides per block when extracting a diagonal of an inverse


@dataclass(frozen=True, eq=False)
class MMEResult:
    """Solution of the mixed-model equations.

    Attributes
    ----------
    b : (n_b,) ndarray
        BLUE of the fixed effects, in the column order of X.
    u : (q,) ndarray
        BLUP of the random effects, in the column order of Z.
    pev : (q,) ndarray or None
        Prediction error variance Var(u_i - u_hat_i) of each level; None when not computed.
    reliability : (q,) ndarray or None
        ``1 - pev / (sigma2_u * diag(K))``, the squared correlation between u and its BLUP.
    fixed_names : (n_b,) ndarray
        Labels of b (X's column labels, or 0..n_b-1).
    levels : (q,) ndarray
        Labels of u (Z's or K_inv's column labels, or 0..q-1).
    sigma2_u, sigma2_e : float
        The variance components the equations were built with.
    n_obs : int
        Number of records used (those with a finite y).
    method : str
        How the equations were solved.
    n_iter : int or None
        PCG iterations (None for "direct").
    residuals : ndarray or None
        PCG's relative residual ||C x - r|| / ||r|| at the start and after each iteration.
    """

    b: np.ndarray
    u: np.ndarray
    pev: np.ndarray | None
    reliability: np.ndarray | None
    fixed_names: np.ndarray
    levels: np.ndarray
    sigma2_u: float
    sigma2_e: float
    n_obs: int
    method: str
    n_iter: int | None = None
    residuals: np.ndarray | None = None

    @property
    def lambda_(self) -> float:
        """The variance ratio lambda = sigma2_e / sigma2_u that enters the equations."""
        return self.sigma2_e / self.sigma2_u

    def fixed_effects(self) -> pd.Series:
        """b as a Series indexed by ``fixed_names``."""
        return pd.Series(self.b, index=self.fixed_names, name="b")

    def random_effects(self) -> pd.DataFrame:
        """u, and its PEV and reliability when computed, as a DataFrame indexed by ``levels``."""
        columns = {"u": self.u}
        if self.pev is not None:
            columns |= {"pev": self.pev, "reliability": self.reliability}
        return pd.DataFrame(columns, index=pd.Index(self.levels, name="level"))


def solve_mme(
    y: Any,
    X: Any,
    Z: Any,
    K_inv: Any,
    sigma2_u: float,
    sigma2_e: float,
    *,
    K_diag: Any = None,
    method: Literal["direct", "pcg"] = "direct",
    compute_pev: bool | None = None,
    tol: float = 1e-10,
    maxiter: int | None = None,
    preconditioner: Literal["diagonal", "block"] = "block",
) -> MMEResult:
    """Solve Henderson's mixed-model equations for the BLUE of b and the BLUP of u.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        Records. NaN means "not observed": the record leaves the equations, and every level of u
        is still predicted.
    X : (n, n_b) array_like, scipy.sparse matrix, pandas.DataFrame or Incidence
        Fixed-effect design; must have full column rank on the observed records.
    Z : (n, q) array_like, scipy.sparse matrix, pandas.DataFrame or Incidence
        Random-effect design.
    K_inv : (q, q) array_like, scipy.sparse matrix or pandas.DataFrame
        Inverse of the relationship matrix K in Var(u) = sigma2_u K (the identity for
        unrelated levels, ``A^-1`` of a pedigree).
    sigma2_u, sigma2_e : float
        Variance of u (per unit of K) and of the residuals; both positive.
    K_diag : (q,) array_like, optional
        diag(K), needed for reliabilities (a pedigree knows it as 1 + F). Computed from K_inv when
        absent.
    method : {"direct", "pcg"}
        "direct" factorises the coefficient matrix: Cholesky (LAPACK) when every input is dense,
        sparse LU (SuperLU) when X, Z or K_inv is sparse. "pcg" solves by preconditioned conjugate
        gradients with the sparse C, never factorising it: for large animal models.
    compute_pev : bool, optional
        Whether to compute ``pev`` and ``reliability``. By default always for dense input, and for
        sparse input when u has at most ``lmmbook.mme.PEV_AUTO_MAX_LEVELS`` (10,000) levels.
        Not available with "pcg" (PEV needs the inverse of C).
    tol : float, optional
        "pcg" stops when ||C x - r|| <= tol ||r||. The relative error of the solution is at most
        about cond(C) times tol, so the default 1e-10 leaves solutions good to ~1e-7 even for
        cond(C) ~ 1e3 (in animal models lambda and the pedigree set the condition number).
    maxiter : int, optional
        "pcg" iteration limit (default: the number of equations, n_b + q, at most 100,000).
    preconditioner : {"block", "diagonal"}
        "pcg" preconditioner: the inverse of diag(C) ("diagonal"), or that with the fixed-effect
        block inverted as a whole ("block", the default; it helps when fixed effects are many).

    Returns
    -------
    MMEResult
        ``b``, ``u``, ``pev``, ``reliability`` and their labels.

    Raises
    ------
    ConvergenceError
        "pcg" did not reach ``tol`` within ``maxiter`` iterations.
    ShapeMismatchError
        Lengths or shapes disagree (the message names both); K_inv is not square.
    NonFiniteError
        X, Z or K_inv holds NaN or infinity, or y holds infinity.
    VarianceError
        A variance is zero, negative or not finite.
    RankDeficientError
        X lacks full column rank on the observed records (the message names the columns).
    NotPositiveDefiniteError
        K_inv is not symmetric positive definite, or the equations are singular.
    UnknownIdError, DuplicateIdError
        Labelled inputs (pandas objects, Incidence) whose IDs do not join exactly.

    Notes
    -----
    Chapter 1, equation ``(eq-mme)``; Henderson (1975). Inputs are aligned by position, except
    where they carry IDs: when y is a Series, DataFrame rows of X and Z are joined to it by index;
    Z's column labels (DataFrame columns or ``Incidence.levels``) are joined to K_inv's index.
    Joins are exact: an ID missing on either side is an error, never a silent drop.

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
    """
    if method not in ("direct", "pcg"):
        raise InputError(f"method must be 'direct' or 'pcg', got {method!r}.")
    if method == "pcg" and compute_pev:
        raise InputError("compute_pev=True needs the inverse of C, which 'pcg' never forms: use "
                         "method='direct' (sparse factorisation) for PEV and reliabilities.")
    if preconditioner not in ("diagonal", "block"):
        raise InputError(f"preconditioner must be 'diagonal' or 'block', got {preconditioner!r}.")
    sigma2_u = _checks.positive_variance("sigma2_u", sigma2_u)
    sigma2_e = _checks.positive_variance("sigma2_e", sigma2_e)
    y_values, y_ids = _checks.vector("y", y)
    Xl = _checks.matrix("X", X)
    Zl = _checks.matrix("Z", Z)
    Kl = _checks.matrix("K_inv", K_inv)
    n = len(y_values)

    X_values = _checks.rows_like_y(Xl, "X", y_ids, n)
    Z_values = _checks.rows_like_y(Zl, "Z", y_ids, n)
    K_values, levels = _checks.square_like_z(Kl, Zl, "K_inv")
    n_b, q = X_values.shape[1], Z_values.shape[1]
    fixed_names = np.asarray(Xl.columns) if Xl.columns is not None else np.arange(n_b)
    K_diag = _k_diag_argument(K_diag, q)

    observed = np.isfinite(y_values)
    if not observed.any():
        raise InputError("y has no observed record (all NaN); there is nothing to fit.")
    X_o, Z_o, y_o = X_values[observed], Z_values[observed], y_values[observed]
    _checks.full_column_rank("X", X_o, Xl.columns)

    sparse = any(sp.issparse(a) for a in (X_values, Z_values, K_values))
    lam = sigma2_e / sigma2_u
    n_iter = residuals = None
    if method == "pcg":
        compute_pev = False
        C, XZ = _sparse_system(X_o, Z_o, K_values, lam)
        solution, residuals = _pcg(C, XZ.T @ y_o, _preconditioner(C, n_b, preconditioner), tol,
                                   maxiter or min(n_b + q, 100_000))
        n_iter = len(residuals) - 1
    else:
        if compute_pev is None:
            compute_pev = not sparse or q <= PEV_AUTO_MAX_LEVELS
        solver = (_SparseSolver if sparse else _DenseSolver)(X_o, Z_o, K_values, lam)
        solution = solver.solve(solver.rhs(y_o))
    b, u = solution[:n_b], solution[n_b:]

    pev = reliability = None
    if compute_pev:
        pev = sigma2_e * solver.inverse_diagonal(n_b, n_b + q)
        if K_diag is None:
            K_diag = solver.k_diagonal()
        reliability = 1.0 - pev / (sigma2_u * K_diag)

    frozen = _checks.frozen
    return MMEResult(
        b=frozen(b), u=frozen(u), pev=frozen(pev), reliability=frozen(reliability),
        fixed_names=frozen(fixed_names), levels=frozen(levels), sigma2_u=sigma2_u,
        sigma2_e=sigma2_e, n_obs=int(observed.sum()), method=method, n_iter=n_iter,
        residuals=frozen(residuals),
    )


def _k_diag_argument(K_diag: Any, q: int) -> np.ndarray | None:
    if K_diag is None:
        return None
    values, _ = _checks.vector("K_diag", K_diag)
    _checks.same_length("K_diag", q, "Z (columns)", len(values), unit="entries")
    if not (np.isfinite(values) & (values > 0)).all():
        raise InputError("K_diag must be positive and finite: it is the diagonal of K (1 + F).")
    return values


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


class _DenseSolver:
    """C = [X Z]'[X Z] + Lambda, Lambda = blockdiag(0, lambda K^-1), by Cholesky (chapter 1)."""

    def __init__(self, X, Z, K_inv, lam):
        self.XZ = np.hstack([X, Z])
        n_b = X.shape[1]
        try:
            self.K_chol = la.cholesky(K_inv, lower=True)
        except la.LinAlgError:
            raise NotPositiveDefiniteError(
                "K_inv is not positive definite (its Cholesky factorisation failed). "
                + _PD_HINT) from None
        C = self.XZ.T @ self.XZ
        C[n_b:, n_b:] += lam * K_inv
        try:
            self.factor = la.cho_factor(C, lower=True)
        except la.LinAlgError:
            raise NotPositiveDefiniteError(
                "The coefficient matrix of the mixed-model equations is not positive definite. "
                + _PD_HINT) from None

    def rhs(self, y):
        return self.XZ.T @ y

    def solve(self, r):
        return la.cho_solve(self.factor, r)

    def inverse_diagonal(self, start, stop):
        return _inverse_diagonal(self.solve, self.XZ.shape[1], start, stop)

    def k_diagonal(self):
        # K = K_inv^-1 = L^-T L^-1, so K_ii is the squared norm of column i of L^-1.
        L_inv = la.solve_triangular(self.K_chol, np.eye(self.K_chol.shape[0]), lower=True)
        return np.einsum("ij,ij->j", L_inv, L_inv)


def _sparse_system(X, Z, K_inv, lam):
    """C = [X Z]'[X Z] + Lambda (sparse CSR), and [X Z] for the right-hand side g."""
    XZ = sp.hstack([sp.csr_array(X), sp.csr_array(Z)], format="csr")
    n_b = X.shape[1]
    Lam = sp.block_diag([sp.csr_array((n_b, n_b)), lam * sp.csr_array(K_inv)])
    C = (XZ.T @ XZ + Lam).tocsr()
    return C, XZ


def _preconditioner(C, n_b: int, kind: str):
    """The inverse of the preconditioner tilde-C as a function: 1 / diag(C), with the n_b x n_b
    fixed-effect block inverted whole for "block"."""
    diag = C.diagonal()
    if np.any(diag <= 0):
        raise NotPositiveDefiniteError(
            "The coefficient matrix has a diagonal entry <= 0. " + _PD_HINT)
    inv_diag = 1.0 / diag
    if kind == "block" and n_b > 1:
        try:
            block_inv = np.linalg.inv(C[:n_b, :n_b].toarray())
        except np.linalg.LinAlgError:
            raise NotPositiveDefiniteError(
                "The fixed-effect block X'X is singular. " + _PD_HINT) from None

        def apply(r):
            out = inv_diag * r
            out[:n_b] = block_inv @ r[:n_b]
            return out

        return apply
    return lambda r: inv_diag * r


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

    def __init__(self, X, Z, K_inv, lam):
        self.XZ = sp.hstack([sp.csr_array(X), sp.csr_array(Z)], format="csr")
        self.K_inv = sp.csc_array(K_inv)
        n_b = X.shape[1]
        if (self.K_inv.diagonal() <= 0).any():
            raise NotPositiveDefiniteError(
                "K_inv has a diagonal entry <= 0, so it is not positive definite. " + _PD_HINT)
        Lam = sp.block_diag([sp.csc_array((n_b, n_b)), lam * self.K_inv])
        C = (self.XZ.T @ self.XZ + Lam).tocsc()
        self.factor = self._lu(C, "The coefficient matrix of the mixed-model equations")

    @staticmethod
    def _lu(C, what):
        try:
            return spla.splu(C, permc_spec="MMD_AT_PLUS_A")
        except RuntimeError:
            raise NotPositiveDefiniteError(f"{what} is singular. " + _PD_HINT) from None

    def rhs(self, y):
        return self.XZ.T @ y

    def solve(self, r):
        return self.factor.solve(np.asarray(r, dtype=float))

    def inverse_diagonal(self, start, stop):
        return _inverse_diagonal(self.solve, self.XZ.shape[1], start, stop)

    def k_diagonal(self):
        K_factor = self._lu(self.K_inv, "K_inv")
        return _inverse_diagonal(K_factor.solve, self.K_inv.shape[0], 0, self.K_inv.shape[0])
