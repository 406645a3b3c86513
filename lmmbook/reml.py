"""Variance components by restricted maximum likelihood (chapter 2).

Model: y = X b + sum_s Z_s u_s + e, u_s ~ N(0, sigma2_s K_s), e ~ N(0, sigma2_e I), so that
V = sum_s sigma2_s V_s + sigma2_e I with V_s = Z_s K_s Z_s'. Three methods:

- ``"spectral"`` (one random effect): one eigendecomposition (or a thin SVD when Z has fewer
  columns than records), then a one-dimensional search of the profiled likelihood
  (:mod:`lmmbook._spectral`);
- ``"ai"``: average-information Newton steps (Gilmour, Thompson & Cullis 1995) with step halving and
  an EM step as fallback, for one or more random effects;
- ``"em"``: expectation-maximisation REML, sure to climb; each iteration is a SQUAREM cycle of
  three EM updates with an extrapolation between them (Varadhan & Roland 2008), without which EM
  can need tens of thousands of updates when h2 is low.

The iterative methods work with the n x n matrix V, O(n^3) per iteration: meant for the sizes of
the book's examples (n up to a few thousand).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg as la
import scipy.sparse as sp

from . import _checks, _spectral
from .errors import InputError, NotPositiveDefiniteError, ShapeMismatchError

__all__ = ["REMLResult", "reml"]

Method = Literal["spectral", "ai", "em"]
_MAX_ITER = {"ai": 200, "em": 5_000}


@dataclass(frozen=True, eq=False)
class REMLResult:
    """REML estimates of the variance components, and the BLUE/BLUP at them.

    With one random effect the variance, h2, u and level attributes are scalars/arrays; when
    ``Z`` or ``K`` was given as a list they are tuples with one entry per random effect.

    Attributes
    ----------
    sigma2_u : float or tuple of float
        Variance(s) of the random effect(s), per unit of K.
    sigma2_e : float
        Residual variance.
    h2 : float or tuple of float
        sigma2_k / (sum of all sigma2 + sigma2_e): the heritability when K is a relationship matrix
        scaled like A (diagonal ~1).
    loglik : float
        REML log-likelihood at the estimates, lme4's convention:
        -1/2 [(n-n_b) log 2pi + log|V| + log|X'V^-1 X| + y_c'V^-1 y_c].
    b : (n_b,) ndarray
        BLUE of the fixed effects at the estimates.
    b_se : (n_b,) ndarray
        Standard errors of b, sqrt(diag((X'V^-1 X)^-1)).
    u : (q,) ndarray or tuple of ndarray
        BLUP of each random effect at the estimates, one value per column of Z (per level).
    levels : (q,) ndarray or tuple of ndarray
        Labels of u.
    fixed_names : (n_b,) ndarray
        Labels of b.
    sigma2_u_se, sigma2_e_se, h2_se : float or tuple of float
        Approximate standard errors from the inverse of the expected information matrix
        (delta method for h2). Not meaningful at a boundary (a variance at 0).
    converged : bool
    n_iter : int
        Iterations (AI, EM) or likelihood evaluations (spectral).
    method : str
    n_obs : int
        Records used (finite y).
    boundary : str or None
        "sigma2_u = 0" (or "sigma2_e = 0") when the estimate lies on the boundary of the
        parameter space, else None.
    """

    sigma2_u: float | tuple[float, ...]
    sigma2_e: float
    h2: float | tuple[float, ...]
    loglik: float
    b: np.ndarray
    b_se: np.ndarray
    u: np.ndarray | tuple[np.ndarray, ...]
    levels: np.ndarray | tuple[np.ndarray, ...]
    fixed_names: np.ndarray
    sigma2_u_se: float | tuple[float, ...]
    sigma2_e_se: float
    h2_se: float | tuple[float, ...]
    converged: bool
    n_iter: int
    method: str
    n_obs: int
    boundary: str | None

    def summary(self) -> str:
        """A print-out in the spirit of lme4's: variances, h2, fixed effects, the likelihood."""
        multi = isinstance(self.sigma2_u, tuple)
        s2 = self.sigma2_u if multi else (self.sigma2_u,)
        h2 = self.h2 if multi else (self.h2,)
        h2_se = self.h2_se if multi else (self.h2_se,)
        names = [f"u{k + 1}" for k in range(len(s2))] if multi else ["u"]
        lines = [
            f"Linear mixed model fit by REML (method: {self.method})",
            f"  {self.n_obs} records, {len(self.b)} fixed effects",
            f"REML log-likelihood: {self.loglik:.4f}   (-2 loglik: {-2 * self.loglik:.4f})",
            "",
            "Random effects:",
            f" {'Groups':<10}{'Variance':>12}{'Std.Dev.':>12}{'h2':>9}{'(SE)':>9}",
        ]
        for name, v, h, hs in zip(names, s2, h2, h2_se, strict=True):
            lines.append(f" {name:<10}{v:>12.4f}{np.sqrt(v):>12.4f}{h:>9.3f}{f'({hs:.3f})':>9}")
        lines.append(f" {'Residual':<10}{self.sigma2_e:>12.4f}{np.sqrt(self.sigma2_e):>12.4f}")
        lines += ["", "Fixed effects:", f" {'':<12}{'Estimate':>12}{'Std.Error':>12}"]
        for name, est, se in zip(self.fixed_names, self.b, self.b_se, strict=True):
            lines.append(f" {str(name):<12}{est:>12.4f}{se:>12.4f}")
        status = "converged" if self.converged else "did NOT converge"
        unit = "likelihood evaluations" if self.method == "spectral" else "iterations"
        lines += ["", f"{status} after {self.n_iter} {unit}"]
        if self.boundary:
            lines.append(f"estimate on the boundary: {self.boundary}")
        return "\n".join(lines)


def reml(
    y: Any,
    X: Any,
    Z: Any = None,
    K: Any = None,
    *,
    method: Method = "spectral",
    tol: float = 1e-10,
    max_iter: int | None = None,
    init: Sequence[float] | None = None,
) -> REMLResult:
    """Estimate variance components by REML and predict the random effects at the estimates.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        Records; NaN means "not observed" (left out of the likelihood, still predicted in u).
    X : (n, n_b) array_like, pandas.DataFrame or Incidence
        Fixed-effect design, full column rank on the observed records.
    Z : (n, q) array_like, scipy.sparse, DataFrame, Incidence or None, or a list of them
        Random-effect design(s). None means the identity (one level per record; then K is n x n).
    K : (q, q) array_like or DataFrame or None, or a list of them
        Covariance structure(s) of u: symmetric positive semi-definite. None means the identity.
        ``Z`` and ``K`` both None would give V = (sigma2_u + sigma2_e) I, which cannot be split:
        that is refused.
    method : {"spectral", "ai", "em"}
        "spectral" for one random effect (fast and exact); "ai" or "em" for any number.
    tol : float, optional
        Convergence of "ai"/"em": the distance to the optimum that a Newton step (with the
        average information) still predicts, for the largest variance change, relative to the sum
        of the variances. Also converged: a distance below 1e-6 after 20 iterations that no longer
        raise the likelihood (the floating-point limit, met when a variance is tiny).
    max_iter : int, optional
        Iteration limit of "ai" (default 200) and "em" (default 5000 SQUAREM cycles).
    init : sequence of float, optional
        Starting variances (sigma2_1, ..., sigma2_e) for "ai"/"em"; by default the residual variance
        of least squares, shared equally.

    Returns
    -------
    REMLResult

    Raises
    ------
    InputError
        Z and K both None; method unknown or "spectral" with several random effects; fewer records
        than fixed effects; a bad ``init``.
    ShapeMismatchError, NonFiniteError, RankDeficientError, UnknownIdError, DuplicateIdError
        As for :func:`lmmbook.solve_mme`.
    NotPositiveDefiniteError
        K is not symmetric (the message says by how much) or not positive semi-definite (it gives
        the smallest eigenvalue).

    Notes
    -----
    Chapter 2: the REML log-likelihood ``(eq-reml)`` in lme4's convention (rrBLUP's ``LL`` adds
    1/2 log|X'X|); the spectral method ``(eq-profile)`` after Patterson & Thompson (1971) and
    Kang et al. (2008), finished on a root of the analytic score so that the variances are exact to
    about 1e-10 relative. At the boundary sigma2_u = 0 the search returns exactly 0 (eta = 0 is
    evaluated), so compare such an estimate with an absolute, not a relative, tolerance. AI-REML
    ``(eq-ai)`` after Gilmour, Thompson & Cullis (1995); EM-REML ``(eq-em)``.

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> trial = lmmbook.simulate_variety_trial(30, 3, seed=1)
    >>> d = trial.data
    >>> fit = lmmbook.reml(d["y"], lmmbook.incidence(d["environment"]),
    ...                    lmmbook.incidence(d["variety"]))
    >>> round(fit.sigma2_u, 4), round(fit.sigma2_e, 4), fit.converged
    (0.1709, 0.9456, True)
    >>> fit.levels[:3].tolist()
    ['V01', 'V02', 'V03']
    """
    if method not in ("spectral", "ai", "em"):
        raise InputError(f"method must be 'spectral', 'ai' or 'em', got {method!r}.")
    y_values, y_ids = _checks.vector("y", y)
    Xl = _checks.matrix("X", X)
    X_values = _checks.dense(_checks.rows_like_y(Xl, "X", y_ids, len(y_values)))
    effects = _effects(Z, K, y_ids, len(y_values))
    if method == "spectral" and len(effects.terms) > 1:
        raise InputError(
            f"method='spectral' handles one random effect; this model has {len(effects.terms)}. "
            "Use method='ai' (fast) or method='em' (slow but sure)."
        )
    observed = np.isfinite(y_values)
    n_obs, p = int(observed.sum()), X_values.shape[1]
    if n_obs <= p:
        raise InputError(
            f"REML needs more records than fixed effects: {n_obs} observed record(s), {p} fixed "
            "effect(s). Add records or drop fixed effects."
        )
    y_o, X_o = y_values[observed], X_values[observed]
    _checks.full_column_rank("X", X_o, Xl.columns)
    fixed_names = np.asarray(Xl.columns) if Xl.columns is not None else np.arange(p)

    if method == "spectral":
        out = _fit_spectral(y_o, X_o, effects.terms[0], observed)
    else:
        out = _fit_iterative(y_o, X_o, effects.terms, observed, method, tol,
                             max_iter or _MAX_ITER[method], init)
    sigma2, sigma2_e, info = out["sigma2"], out["sigma2_e"], out["info"]
    total = sum(sigma2) + sigma2_e
    h2 = [s / total for s in sigma2]
    se_all, h2_se = _standard_errors(info, list(sigma2) + [sigma2_e])

    def one_or_tuple(values):
        values = tuple(float(v) for v in values)
        return values if effects.multi else values[0]

    def arrays(values):
        values = tuple(_checks.frozen(v) for v in values)
        return values if effects.multi else values[0]

    return REMLResult(
        sigma2_u=one_or_tuple(sigma2), sigma2_e=float(sigma2_e), h2=one_or_tuple(h2),
        loglik=float(out["loglik"]), b=_checks.frozen(out["b"]), b_se=_checks.frozen(out["b_se"]),
        u=arrays(out["u"]), levels=arrays(t.levels for t in effects.terms),
        fixed_names=_checks.frozen(fixed_names), sigma2_u_se=one_or_tuple(se_all[:-1]),
        sigma2_e_se=float(se_all[-1]), h2_se=one_or_tuple(h2_se), converged=bool(out["converged"]),
        n_iter=int(out["n_iter"]), method=method, n_obs=n_obs, boundary=out["boundary"],
    )


# ---- inputs -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Term:
    """One random effect: Z (n, q) or None for the identity, K (q, q) or None, labels of u."""

    Z: np.ndarray | sp.sparray | None
    K: np.ndarray | None
    levels: np.ndarray

    @property
    def q(self) -> int:
        return len(self.levels)


@dataclass(frozen=True, eq=False)
class _Effects:
    terms: list[_Term]
    multi: bool



def _effects(Z: Any, K: Any, y_ids: pd.Index | None, n: int) -> _Effects:
    multi = isinstance(Z, (list, tuple)) or isinstance(K, (list, tuple))
    Zs = list(Z) if isinstance(Z, (list, tuple)) else [Z]
    Ks = list(K) if isinstance(K, (list, tuple)) else [K]
    if multi and len(Zs) == 1 and len(Ks) > 1:
        Zs = Zs * len(Ks)
    if multi and len(Ks) == 1 and len(Zs) > 1:
        Ks = Ks * len(Zs)
    if len(Zs) != len(Ks):
        raise ShapeMismatchError(
            f"Z and K must be lists of the same length (one entry per random effect), got "
            f"{len(Zs)} and {len(Ks)}."
        )
    if not Zs:
        raise InputError("at least one random effect is needed (Z and K are empty lists).")
    terms = []
    for k, (Zk, Kk) in enumerate(zip(Zs, Ks, strict=True)):
        which = f" (random effect {k + 1})" if multi else ""
        if Zk is None and Kk is None:
            raise InputError(
                f"Z and K are both None{which}: then V = (sigma2_u + sigma2_e) I and the two "
                "variances cannot be told apart. Give Z (which records share a level) or K (how "
                "records are related)."
            )
        Zl = _checks.matrix(f"Z{which}", Zk) if Zk is not None else None
        Z_values = _checks.rows_like_y(Zl, f"Z{which}", y_ids, n) if Zl is not None else None
        if Kk is None:
            q = Z_values.shape[1]
            labels = np.asarray(Zl.columns) if Zl.columns is not None else np.arange(q)
            terms.append(_Term(Z_values, None, labels))
            continue
        Kl = _checks.matrix(f"K{which}", Kk)
        K_values, labels = _checks.square_like_z(Kl, Zl, f"K{which}")
        K_values = _checks.dense(K_values)
        if Zl is None:
            # Z = I: the records are the levels, joined to K by ID when both carry IDs
            if y_ids is not None and Kl.rows is not None:
                order = _checks.join(y_ids, "y's index", pd.Index(labels), f"K{which}'s index")
                K_values, labels = K_values[np.ix_(order, order)], labels[order]
            _checks.same_length(f"K{which}", n, "y", K_values.shape[0], unit="rows")
        terms.append(_Term(Z_values, K_values, labels))
    return _Effects(terms, multi)


def _h_matrix(term: _Term, observed: np.ndarray) -> np.ndarray:
    """H = Z K Z' on the observed records (dense n_obs x n_obs)."""
    if term.Z is None:
        return term.K[np.ix_(observed, observed)].copy()
    Zo = term.Z[observed]
    if term.K is None:
        H = Zo @ Zo.T
    else:
        H = Zo @ (Zo @ term.K).T
    return _checks.dense(H)


def _blup(term: _Term, observed: np.ndarray, sigma2: float, v_inv_r: np.ndarray) -> np.ndarray:
    """u = sigma2 K Z' V^-1 (y - X b), for every level (records with NaN y included)."""
    if term.Z is None:
        return sigma2 * (term.K[:, observed] @ v_inv_r)
    Zt_v = np.asarray(term.Z[observed].T @ v_inv_r).ravel()
    return sigma2 * (Zt_v if term.K is None else term.K @ Zt_v)


def _check_psd(term: _Term, name: str = "K") -> None:
    if term.K is not None:
        _checks.positive_semidefinite(name, term.K)


# ---- spectral --------------------------------------------------------------------------------

def _fit_spectral(y, X, term: _Term, observed) -> dict:
    n = len(y)
    if term.Z is not None and term.q < n:
        # thin: H = L L' with L = Z K^(1/2), no n x n matrix
        if term.K is None:
            L = _checks.dense(term.Z[observed])
        else:
            w, Q = la.eigh(term.K, check_finite=False)
            _eigen_psd(w)
            L = _checks.dense(term.Z[observed] @ (Q * np.sqrt(np.maximum(w, 0.0))))
        rot = _spectral.rotate_factor(y, X, L)
    else:
        if term.Z is not None or not observed.all():
            _check_psd(term)  # the eigenvalues of H below do not tell about all of K
        rot = _spectral.rotate_eigh(y, X, _h_matrix(term, observed))
        if term.Z is None and observed.all():
            _eigen_psd(np.array([rot.min_eigenvalue, rot.lam[-1]]))
    res = _spectral.fit(rot)
    v_inv_r = _spectral.v_inverse_residual(rot, res.sigma2_u, res.sigma2_e, res.b)
    u = _blup(term, observed, res.sigma2_u, v_inv_r)
    info = _spectral.information(rot, res.sigma2_u, res.sigma2_e)
    M = _xt_vinv_x(rot, res.sigma2_u, res.sigma2_e)
    return {"sigma2": [res.sigma2_u], "sigma2_e": res.sigma2_e, "loglik": res.loglik,
            "b": res.b, "b_se": np.sqrt(np.diag(np.linalg.inv(M))) if len(res.b) else res.b,
            "u": [u], "info": info, "converged": True, "n_iter": res.n_eval,
            "boundary": res.boundary}


def _eigen_psd(w: np.ndarray) -> None:
    scale = max(abs(w[-1]), 1e-300)
    if w[0] < -1e-8 * scale * len(w):
        raise NotPositiveDefiniteError(
            f"K is not positive semi-definite: its smallest eigenvalue is {w[0]:.4g} (largest "
            f"{w[-1]:.4g}). A covariance structure cannot have negative eigenvalues: check how it "
            "was built, or blend it with a positive definite matrix."
        )


def _xt_vinv_x(rot: _spectral.Rotated, s2u: float, s2e: float) -> np.ndarray:
    v = s2u * rot.lam + s2e
    M = (rot.Xt / v[:, None]).T @ rot.Xt
    return M + rot.XX0 / s2e if rot.n0 else M


# ---- AI and EM, in the V form ---------------------------------------------------------------

def _fit_iterative(y, X, terms, observed, method, tol, max_iter, init) -> dict:
    for k, term in enumerate(terms):
        _check_psd(term, f"K (random effect {k + 1})" if len(terms) > 1 else "K")
    n, p = X.shape
    Hs = [_h_matrix(t, observed) for t in terms] + [np.eye(n)]
    sizes = np.array([t.q for t in terms] + [n], dtype=float)
    theta = _initial(y, X, len(Hs), init)
    state = _VState(y, X, Hs, theta)
    converged, iterations = False, 0
    step = _squarem_cycle if method == "em" else _ai_step
    history = []
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        state = step(state, sizes)
        distance = _distance_to_optimum(state)
        history.append(state.loglik)
        if distance < tol:
            converged = True
            break
        # At the limit of floating point (a variance tiny next to the total) the updates stop
        # improving the likelihood before the Newton distance reaches tol: accept that when the
        # distance is already small and 20 iterations gained nothing measurable.
        if (distance < 1e-6 and len(history) > 20
                and history[-1] - history[-21] <= 1e-12 * abs(history[-1])):
            converged = True
            break
    sigma2 = list(state.theta[:-1])
    v_inv_r = state.Py  # P y = V^-1 (y - X b)
    u = [_blup(t, observed, s, v_inv_r) for t, s in zip(terms, sigma2, strict=True)]
    PH = [state.P @ H for H in Hs]
    info = 0.5 * np.array([[np.sum(A * B.T) for B in PH] for A in PH])
    boundary = "sigma2_u = 0" if np.any(state.theta[:-1] <= _FLOOR * np.sum(state.theta)) else None
    return {"sigma2": sigma2, "sigma2_e": state.theta[-1], "loglik": state.loglik, "b": state.b,
            "b_se": np.sqrt(np.diag(state.XtVinvX_inv)) if p else np.zeros(0), "u": u,
            "info": info, "converged": converged, "n_iter": iterations, "boundary": boundary}


_FLOOR = 1e-9  # a variance is not allowed below this fraction of the total (kept positive)


def _initial(y, X, m, init) -> np.ndarray:
    if init is not None:
        theta = np.asarray(init, dtype=float)
        if theta.shape != (m,) or not np.all(np.isfinite(theta)) or np.any(theta <= 0):
            raise InputError(
                f"init must hold {m} positive variances (one per random effect, then the "
                f"residual), got {list(np.atleast_1d(theta))}."
            )
        return theta
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    var = float(resid @ resid) / max(len(y) - X.shape[1], 1)
    return np.full(m, max(var, 1e-12) / m)


class _VState:
    """V, P and the REML log-likelihood at one set of variances (dense, O(n^3))."""

    def __init__(self, y, X, Hs, theta):
        self.y, self.X, self.Hs, self.theta = y, X, Hs, np.asarray(theta, dtype=float)
        n, p = X.shape
        V = sum(t * H for t, H in zip(self.theta, Hs, strict=True))
        chol = la.cho_factor(V, lower=True, check_finite=False)
        V_inv = la.cho_solve(chol, np.eye(n), check_finite=False)
        logdet_V = 2.0 * np.sum(np.log(np.diag(chol[0])))
        V_inv_X = V_inv @ X
        XtVinvX = X.T @ V_inv_X
        if p:
            c = la.cho_factor(XtVinvX, lower=True, check_finite=False)
            self.XtVinvX_inv = la.cho_solve(c, np.eye(p), check_finite=False)
            logdet_M = 2.0 * np.sum(np.log(np.diag(c[0])))
        else:
            self.XtVinvX_inv, logdet_M = np.zeros((0, 0)), 0.0
        self.P = V_inv - V_inv_X @ self.XtVinvX_inv @ V_inv_X.T
        self.Py = self.P @ y
        self.b = self.XtVinvX_inv @ (V_inv_X.T @ y)
        self.loglik = -0.5 * ((n - p) * _spectral.LOG_2PI + logdet_V + logdet_M + y @ self.Py)

    def score_parts(self):
        """tr(P V_s) and y'P V_s P y for each variance component."""
        traces = np.array([np.sum(self.P * H) for H in self.Hs])  # H symmetric
        HPy = [H @ self.Py for H in self.Hs]
        quads = np.array([self.Py @ h for h in HPy])
        return traces, quads, HPy


def _distance_to_optimum(state: _VState) -> float:
    """The Newton step AI^-1 score, relative to the total variance: how far the optimum still is.

    A small change between two iterations is no proof of convergence for EM, whose steps shrink
    slowly; the Newton step estimates the remaining distance itself. Components held at their
    floor with the score pointing below it are at the boundary and do not count.
    """
    traces, quads, HPy = state.score_parts()
    score = -0.5 * (traces - quads)
    floor = _FLOOR * np.sum(state.theta)
    free = ~((state.theta <= floor * (1 + 1e-9)) & (score < 0))
    if not free.any():
        return 0.0
    HPy = np.column_stack(HPy)[:, free]
    AI = 0.5 * HPy.T @ state.P @ HPy
    try:
        step = np.linalg.solve(AI, score[free])
    except np.linalg.LinAlgError:
        return np.inf
    return float(np.max(np.abs(step)) / np.sum(state.theta))


def _em_step(state: _VState, sizes: np.ndarray) -> _VState:
    """sigma2_s <- sigma2_s + sigma2_s^2 (y'P V_s P y - tr(P V_s)) / q_s  (chapter 2, eq-em)."""
    traces, quads, _ = state.score_parts()
    theta = state.theta + state.theta**2 * (quads - traces) / sizes
    return _VState(state.y, state.X, state.Hs, _floor(theta))


def _squarem_cycle(state: _VState, sizes: np.ndarray) -> _VState:
    """Two EM steps, an extrapolation along them, and a third EM step (SQUAREM, Varadhan &
    Roland 2008, scheme S3).

    Plain EM moves along a nearly straight path in ever smaller steps; the extrapolation jumps
    along that path, and the EM step after it keeps the result on EM's climb. If the cycle ends
    lower than the second EM step, that step is kept: the likelihood never falls.
    """
    first = _em_step(state, sizes)
    second = _em_step(first, sizes)
    r = first.theta - state.theta
    v = second.theta - first.theta - r
    if not np.any(v):
        return second
    alpha = min(-np.linalg.norm(r) / np.linalg.norm(v), -1.0)
    jump = _floor(state.theta - 2 * alpha * r + alpha**2 * v)
    try:
        candidate = _em_step(_VState(state.y, state.X, state.Hs, jump), sizes)
    except la.LinAlgError:
        return second
    return candidate if candidate.loglik >= second.loglik else second


def _ai_step(state: _VState, sizes: np.ndarray) -> _VState:
    """theta <- theta + AI^-1 score, AI_st = (V_s P y)' P (V_t P y) / 2  (chapter 2, eq-ai).

    A variance that the step would push below its floor (a small positive fraction of the total)
    is held at the floor and the step is solved again for the others (an active set: this is how
    AI reaches a boundary estimate such as sigma2_u = 0). The step is then halved until the
    likelihood does not fall (at most 10 times); if that fails, an EM step is taken instead, which
    always climbs.
    """
    traces, quads, HPy = state.score_parts()
    score = -0.5 * (traces - quads)
    HPy = np.column_stack(HPy)
    AI = 0.5 * HPy.T @ state.P @ HPy
    floor = _FLOOR * np.sum(state.theta)
    free = np.ones(len(score), dtype=bool)
    step = np.zeros(len(score))
    for _ in range(len(score)):
        try:
            step[free] = np.linalg.solve(AI[np.ix_(free, free)], score[free])
        except np.linalg.LinAlgError:
            return _em_step(state, sizes)
        step[~free] = floor - state.theta[~free]
        blocked = free & (state.theta + step < floor)
        if not blocked.any():
            break
        free &= ~blocked
        if not free.any():
            break
    for _ in range(11):
        candidate = np.maximum(state.theta + step, floor)
        try:
            new = _VState(state.y, state.X, state.Hs, candidate)
        except la.LinAlgError:
            new = None
        if new is not None and new.loglik >= state.loglik - 1e-12 * abs(state.loglik):
            return new
        step = step / 2
    return _em_step(state, sizes)


def _floor(theta: np.ndarray) -> np.ndarray:
    return np.maximum(theta, _FLOOR * np.sum(np.abs(theta)))


def _standard_errors(info: np.ndarray, theta: list[float]):
    """SEs of the variances from the inverse information, and of h2_k by the delta method."""
    theta = np.asarray(theta, dtype=float)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        m = len(theta)
        return np.full(m, np.nan), np.full(m - 1, np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    total = theta.sum()
    h2_se = []
    for k in range(len(theta) - 1):
        grad = -theta[k] / total**2 * np.ones_like(theta)
        grad[k] += 1.0 / total
        h2_se.append(float(np.sqrt(max(grad @ cov @ grad, 0.0))))
    return se, np.array(h2_se)
