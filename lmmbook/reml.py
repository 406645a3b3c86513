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

from . import _checks, _spectral, model
from .errors import InputError, NotPositiveDefiniteError

__all__ = ["REMLResult", "reml"]

Method = Literal["spectral", "ai", "em"]
_MAX_ITER = {"ai": 200, "em": 5_000}


@dataclass(frozen=True, eq=False)
class REMLResult:
    """REML estimates of the variance components, and the BLUE/BLUP at them.

    With one random effect the variance, h2, u and level attributes are scalars/arrays; when
    ``Z`` or ``K`` was given as a list (or Z as a tuple of correlated designs) they are tuples:
    ``sigma2_u`` and ``sigma2_u_se`` with one entry per entry of Z (a float, or the (k, k)
    covariance matrix G0 of a tuple), ``h2``, ``h2_se``, ``u`` and ``levels`` with one entry per
    design (tuples flattened).

    Attributes
    ----------
    sigma2_u : float, or tuple of float and (k, k) ndarray
        Variance(s) of the random effect(s), per unit of K; G0 for correlated effects.
    sigma2_e : float
        Residual variance.
    h2 : float or tuple of float
        Each design's variance over sigma2_P, the sum of every variance, every covariance between
        correlated effects (counted once) and sigma2_e: the heritability when K is a relationship
        matrix scaled like A (diagonal ~1). For a direct-maternal pair, sigma2_P = sigma2_a +
        sigma2_am + sigma2_m + ... is Willham's (1972) phenotypic variance.
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
    sigma2_u_se, sigma2_e_se, h2_se : float, ndarray or tuple
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
        parameter space; with several effects the names of those at 0, or a G0 that is singular
        (a correlation of +-1); else None.
    names : tuple of str
        A name per design (``names=``, else "u" or "u1", "u2", ...).
    parameter_names : tuple of str
        The estimated parameters in order: "var(name)", "cov(name1,name2)", ..., "var(e)".
    parameter_cov : ndarray
        Their approximate sampling covariance matrix (the inverse expected information).
    history : pandas.DataFrame or None
        "ai"/"em": the parameters and the log-likelihood at the start (iteration 0) and after
        each iteration, indexed by iteration; None for "spectral".
    traits : tuple of str or None
        With several traits (y a table, chapter 11): their names. Then ``sigma2_u`` is the
        genetic covariance matrix G0 of each entry ((t, t), or (k t, k t) for a tuple, effect by
        effect, traits within), ``sigma2_e`` the (t, t) residual covariance matrix R0, ``h2`` a
        (t,) array per design (sigma2_P of a trait sums that trait's own (co)variances only), and
        ``u`` a (q, t) array per design; parameters are named "var(u:trait)",
        "cov(u:trait1,u:trait2)", "var(e:trait)", ..., and ``components()`` adds the genetic and
        residual correlations. None for one trait.
    unused_records : ndarray or None
        With several traits: records (IDs of y, else positions) with no trait observed.
    """

    sigma2_u: float | tuple[float | np.ndarray, ...]
    sigma2_e: float
    h2: float | tuple[float, ...]
    loglik: float
    b: np.ndarray
    b_se: np.ndarray
    u: np.ndarray | tuple[np.ndarray, ...]
    levels: np.ndarray | tuple[np.ndarray, ...]
    fixed_names: np.ndarray
    sigma2_u_se: float | tuple[float | np.ndarray, ...]
    sigma2_e_se: float
    h2_se: float | tuple[float, ...]
    converged: bool
    n_iter: int
    method: str
    n_obs: int
    boundary: str | None
    names: tuple[str, ...] = ("u",)
    parameter_names: tuple[str, ...] = ()
    parameter_cov: np.ndarray | None = None
    history: pd.DataFrame | None = None
    traits: tuple[str, ...] | None = None
    unused_records: np.ndarray | None = None

    @property
    def _design_names(self) -> tuple[str, ...]:
        if self.traits is None:
            return self.names
        return tuple(f"{v}:{t}" for v in self.names for t in self.traits)

    def components(self) -> pd.DataFrame:
        """Every estimated (co)variance with its standard error, then h2 of each design and the
        correlation of each correlated pair (standard errors by the delta method)."""
        theta = _flat(self.sigma2_u) + _flat(self.sigma2_e)
        cov = (self.parameter_cov if self.parameter_cov is not None
               else np.full((len(theta), len(theta)), np.nan))
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        rows = [(name, value, s) for name, value, s in
                zip(self.parameter_names, theta, se, strict=True)]
        h2 = np.ravel(self.h2 if isinstance(self.h2, tuple) else (self.h2,))
        h2_se = np.ravel(self.h2_se if isinstance(self.h2_se, tuple) else (self.h2_se,))
        rows += [(f"h2({name})", float(h), float(hs))
                 for name, h, hs in zip(self._design_names, h2, h2_se, strict=True)]
        for name, (a, b_, c) in _correlation_index(self.parameter_names):
            r = theta[b_] / np.sqrt(theta[a] * theta[c])
            grad = np.zeros(len(theta))
            grad[b_] = 1.0 / np.sqrt(theta[a] * theta[c])
            grad[a], grad[c] = -r / (2 * theta[a]), -r / (2 * theta[c])
            rows.append((name, r, float(np.sqrt(max(grad @ cov @ grad, 0.0)))))
        frame = pd.DataFrame(rows, columns=["parameter", "estimate", "se"])
        return frame.set_index("parameter")

    def summary(self) -> str:
        """A print-out in the spirit of lme4's: variances, h2, fixed effects, the likelihood."""
        records = f"  {self.n_obs} records, {len(self.b)} fixed effects"
        if self.traits is not None:
            records = (f"  {self.n_obs} records of {len(self.traits)} traits "
                       f"({', '.join(self.traits)}), {len(self.b)} fixed effects")
            if self.unused_records is not None and len(self.unused_records):
                records += (f"; {len(self.unused_records)} record(s) with no trait observed "
                            "left out")
        lines = [
            f"Linear mixed model fit by REML (method: {self.method})",
            records,
            f"REML log-likelihood: {self.loglik:.4f}   (-2 loglik: {-2 * self.loglik:.4f})",
            "",
            "Random effects:",
        ]
        values = self.sigma2_u if isinstance(self.sigma2_u, tuple) else (self.sigma2_u,)
        if self.traits is not None or any(np.ndim(v) for v in values):
            table = self.components()
            lines.append(f" {'Parameter':<24}{'Estimate':>12}{'(SE)':>12}")
            for name, row in table.iterrows():
                lines.append(f" {name:<24}{row['estimate']:>12.4f}{f'({row.se:.4f})':>12}")
        else:
            multi = isinstance(self.sigma2_u, tuple)
            s2 = self.sigma2_u if multi else (self.sigma2_u,)
            h2 = self.h2 if multi else (self.h2,)
            h2_se = self.h2_se if multi else (self.h2_se,)
            lines.append(f" {'Groups':<10}{'Variance':>12}{'Std.Dev.':>12}{'h2':>9}{'(SE)':>9}")
            for name, v, h, hs in zip(self.names, s2, h2, h2_se, strict=True):
                lines.append(f" {name:<10}{v:>12.4f}{np.sqrt(v):>12.4f}{h:>9.3f}"
                             f"{f'({hs:.3f})':>9}")
            lines.append(f" {'Residual':<10}{self.sigma2_e:>12.4f}"
                         f"{np.sqrt(self.sigma2_e):>12.4f}")
        lines += ["", "Fixed effects:", f" {'':<12}{'Estimate':>12}{'Std.Error':>12}"]
        for name, est, se in zip(self.fixed_names, self.b, self.b_se, strict=True):
            lines.append(f" {str(name):<12}{est:>12.4f}{se:>12.4f}")
        status = "converged" if self.converged else "did NOT converge"
        unit = "likelihood evaluations" if self.method == "spectral" else "iterations"
        lines += ["", f"{status} after {self.n_iter} {unit}"]
        if self.boundary:
            lines.append(f"estimate on the boundary: {self.boundary}")
        return "\n".join(lines)


def _flat(sigma2_u) -> list[float]:
    """The (co)variances in parameter order: each entry's lower triangle (vech)."""
    values = sigma2_u if isinstance(sigma2_u, tuple) else (sigma2_u,)
    out = []
    for v in values:
        out += [float(v)] if np.ndim(v) == 0 else [float(x) for x in model.vech(np.asarray(v))]
    return out


def _correlation_index(parameter_names):
    """For each "cov(a,b)": the name "cor(a,b)" and the positions of var(a), cov(a,b), var(b)."""
    position = {name: j for j, name in enumerate(parameter_names)}
    for name, j in position.items():
        if name.startswith("cov("):
            a, b = name[4:-1].split(",")
            yield f"cor({a},{b})", (position[f"var({a})"], j, position[f"var({b})"])


def reml(
    y: Any,
    X: Any,
    Z: Any = None,
    K: Any = None,
    *,
    method: Method | Literal["auto"] = "auto",
    tol: float = 1e-10,
    max_iter: int | None = None,
    init: Sequence[Any] | None = None,
    data: pd.DataFrame | None = None,
    names: Sequence[str] | None = None,
) -> REMLResult:
    """Estimate variance components by REML and predict the random effects at the estimates.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series, or an (n, t) array or DataFrame of t traits
        Records; NaN means "not observed" (left out of the likelihood, still predicted in u).
        With t traits (chapter 11) each column is a trait and NaN a trait not recorded on that
        record; then every G0 holds the genetic covariances between traits and the residual
        covariance matrix R0 is estimated too.
    X : (n, n_b) array_like, pandas.DataFrame, Incidence, or str
        Fixed-effect design, full column rank on the observed records; a string is a formula over
        ``data`` (:func:`lmmbook.fixed_design`). With several traits the same design serves every
        trait (each with its own effects), or a dict ``{trait: design}`` gives each its own.
    Z : (n, q) design or None, a tuple of designs, or a list of them
        Random-effect design(s) as for :func:`lmmbook.solve_mme`: a list with one entry per random
        effect, a tuple for the designs of correlated effects over the same levels (their whole
        covariance matrix G0 is estimated). None means the identity (one level per record; then K
        is n x n).
    K : (q, q) array_like or DataFrame or None, or a list of them
        Covariance structure(s) of u (not the inverse): symmetric positive semi-definite. None
        means the identity. ``Z`` and ``K`` both None would give V = (sigma2_u + sigma2_e) I,
        which cannot be split: that is refused. One K with a list of Z (or one Z with a list of
        K) is used for every entry.
    method : {"auto", "spectral", "ai", "em"}
        "spectral" for one random effect (fast and exact); "ai" or "em" for any number and for
        correlated effects. "auto" (default) is "spectral" for one effect, else "ai".
    tol : float, optional
        Convergence of "ai"/"em": the distance to the optimum that a Newton step (with the
        average information) still predicts, for the largest parameter change, relative to the sum
        of the variances. Also converged: a distance below 1e-6 after 20 iterations that no longer
        raise the likelihood by 1e-12 of its value (the floating-point limit, met when a variance
        is tiny, and by EM's slow final creep, so that EM estimates are good to about 1e-6 of the
        total variance), and 20 such iterations with a G0 held on the edge of positive
        semi-definiteness.
    max_iter : int, optional
        Iteration limit of "ai" (default 200) and "em" (default 5000 SQUAREM cycles).
    init : sequence, optional
        Starting values for "ai"/"em": one per entry of Z (a variance, or a (k, k) matrix for a
        tuple; (t, t) or (k t, k t) with t traits), then the residual variance (R0 with t
        traits). By default the residual variance of least squares,
        shared equally among the variances, covariances 0.
    data : pandas.DataFrame, optional
        The records, when ``X`` is a formula.
    names : sequence of str, optional
        A name for each design (tuples flattened), used in ``components()`` and ``summary()``.

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

    With several or correlated effects (chapter 4, ``(eq-general-v)``), V = sum_s theta_s V_s +
    sigma2_e I is linear in the parameters theta: each variance and each covariance of a G0
    (V_s = Z_a K Z_b' + Z_b K Z_a' for the covariance of designs a and b), so the AI and EM
    formulas of chapter 2 apply unchanged; the EM update of a whole G0 is
    G0 + G0 (Q - T) G0 / q with Q_ab = (Z_a'Py)' K (Z_b'Py) and T_ab = tr(P Z_a K Z_b')
    (chapter 4, ``(eq-em-g0)``), which keeps G0 positive semi-definite. AI steps a G0 through its
    Cholesky factor L (G0 = L L'), with the curvature the factorisation adds, so that its iterates
    never leave the positive semi-definite cone and an optimum on its edge (a correlation of +-1)
    is reached and reported. These methods work with the n x n matrix V, O(n^3) per iteration:
    meant for up to a few thousand records.

    With t traits (chapter 11, ``(eq-mt-reml-v)``) the observed (record, trait) pairs are stacked
    record by record and V = sum over G0 elements of Z_a K Z_b' (+ transpose) + sum over R0
    elements of the indicator of two values of one record of traits a and b (+ transpose): still
    linear in the parameters, so AI and EM apply unchanged, and R0 is one more (t, t) block, the
    residual's, stepped through its Cholesky factor (AI) or updated by
    R0 + R0 (Q - T) R0 / n_rec over the records with data (EM), so that it stays positive
    (semi-)definite. ``components()`` gives the genetic and residual correlations with standard
    errors by the delta method. For GBLUP with the same X for every trait and no record missing
    a trait, :func:`lmmbook.gblup` is much faster (one rotation by the eigenvectors of G).

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
    if method not in ("auto", "spectral", "ai", "em"):
        raise InputError(f"method must be 'auto', 'spectral', 'ai' or 'em', got {method!r}.")
    stacked = model.stacked_problem(y, X, Z, K, data, inverse=False, broadcast=True,
                                    dense_X=True)
    single, effects, traits = stacked.single, stacked.effects, stacked.traits
    one = len(single.entries) == 1 and single.entries[0].k == 1 and traits is None
    if method == "auto":
        method = "spectral" if one else "ai"
    if method == "spectral" and not one:
        what = (f"{traits.t} traits" if traits is not None
                else f"{len(single.entries)} random effects" if len(single.entries) > 1
                else f"{single.entries[0].k} correlated effects")
        raise InputError(
            f"method='spectral' handles one random effect of one trait; this model has {what}. "
            "Use method='ai' (fast) or method='em' (slow but sure)."
        )
    names = model.design_names(names, single)
    observed = stacked.observed
    y_o, X_o = stacked.y[observed], stacked.X[observed]
    n_obs, p = int(observed.sum()), X_o.shape[1]
    if n_obs <= p:
        raise InputError(
            f"REML needs more records than fixed effects: {n_obs} observed record(s), {p} fixed "
            "effect(s). Add records or drop fixed effects."
        )
    design_names = names if traits is None else model.trait_design_names(names, traits)
    design_traits = [0] * len(names) if traits is None else [a for _ in names
                                                              for a in range(traits.t)]
    residual = _residual(stacked)

    if method == "spectral":
        out = _fit_spectral(y_o, X_o, effects.entries[0], observed)
    else:
        out = _fit_iterative(y_o, X_o, effects.entries, observed, method, tol,
                             max_iter or _MAX_ITER[method], init, design_names, residual,
                             design_traits)
    return _result(out, stacked, method, names, design_names, design_traits, residual)


def _result(out, stacked, method, names, design_names, design_traits, residual) -> REMLResult:
    """The REMLResult of a fit: standard errors, h2 and the shapes the caller's input asks for."""
    effects, traits = stacked.effects, stacked.traits
    G0s, R0, info = out["G0"], out["R0"], out["info"]
    theta = np.concatenate([model.vech(G0) for G0 in G0s] + [model.vech(R0)])
    ks = tuple(e.k for e in effects.entries) + (residual.k,)
    all_names = tuple(design_names) + residual.names
    parameter_names = tuple(_parameter_names(ks, all_names))
    layout = _Layout(ks, (), tuple(design_traits) + residual.traits)
    n_genetic = len(theta) - residual.k * (residual.k + 1) // 2
    variances = [j for j in range(n_genetic) if layout.is_variance[j]]
    pairs = layout.pair_traits
    same_trait = [np.array([ta == tb == pairs[d][0] for ta, tb in pairs]) for d in variances]
    cov, se_all, h2, h2_se = _standard_errors(info, theta, variances, same_trait)
    frozen = _checks.frozen

    def per_entry(values):
        out_, start = [], 0
        for k in ks[:-1]:
            size = k * (k + 1) // 2
            block = values[start:start + size]
            out_.append(float(block[0]) if k == 1 else frozen(model.unvech(block, k)))
            start += size
        return tuple(out_) if effects.multi else out_[0]

    def residual_of(values):
        block = values[n_genetic:]
        return float(block[0]) if residual.k == 1 else frozen(model.unvech(block, residual.k))

    def per_design(values):
        values = [float(v) for v in values]
        if traits is not None:
            t = traits.t
            values = [frozen(values[j:j + t]) for j in range(0, len(values), t)]
        return tuple(values) if effects.multi else values[0]

    def arrays(values):
        values = tuple(frozen(v) for v in stacked.by_trait(list(values)))
        return values if effects.multi else values[0]

    return REMLResult(
        sigma2_u=per_entry(theta), sigma2_e=residual_of(theta), h2=per_design(h2),
        loglik=float(out["loglik"]), b=frozen(out["b"]), b_se=frozen(out["b_se"]),
        u=arrays(out["u"]), levels=stacked.levels(),
        fixed_names=frozen(stacked.fixed_names), sigma2_u_se=per_entry(se_all),
        sigma2_e_se=residual_of(se_all), h2_se=per_design(h2_se),
        converged=bool(out["converged"]), n_iter=int(out["n_iter"]), method=method,
        n_obs=stacked.n_obs, boundary=out["boundary"], names=tuple(names),
        parameter_names=parameter_names, parameter_cov=frozen(cov),
        history=_history(out.get("trace"), parameter_names),
        traits=None if traits is None else traits.names, unused_records=stacked.unused_records,
    )


def _history(trace, parameter_names) -> pd.DataFrame | None:
    if trace is None:
        return None
    return pd.DataFrame(trace, columns=[*parameter_names, "loglik"],
                        index=pd.RangeIndex(len(trace), name="iteration"))


def _parameter_names(ks, names) -> list[str]:
    """"var(name)" and "cov(name1,name2)" for each entry's lower triangle; ``names`` holds a name
    per design, entries in order (the residual last: "e", or "e:trait")."""
    out, start = [], 0
    for k in ks:
        own = names[start:start + k]
        out += [f"var({own[a]})" if a == b else f"cov({own[b]},{own[a]})"
                for a, b in model.lower_pairs(k)]
        start += k
    return out


# ---- inputs -----------------------------------------------------------------------------------

def _h_matrix(entry: model.RandomEffect, observed: np.ndarray) -> np.ndarray:
    """H = Z K Z' of a one-design entry on the observed records (dense n_obs x n_obs)."""
    return model.variance_parts(entry, observed)[0]


def _blup(entry: model.RandomEffect, observed: np.ndarray, G0: np.ndarray,
          v_inv_r: np.ndarray) -> list[np.ndarray]:
    """u_a = sum_b G0_ab K Z_b' V^-1 (y - X b), for every level (records with NaN y included)."""
    Zt_v = [np.asarray(d[observed].T @ v_inv_r).ravel() for d in entry.designs]
    if entry.structure is not None:
        Zt_v = [entry.structure @ z for z in Zt_v]
    return [sum(G0[a, b] * Zt_v[b] for b in range(entry.k)) for a in range(entry.k)]


def _check_psd(entry: model.RandomEffect, name: str = "K") -> None:
    if entry.structure is not None:
        _checks.positive_semidefinite(name, entry.structure)


# ---- spectral --------------------------------------------------------------------------------

def _fit_spectral(y, X, entry: model.RandomEffect, observed) -> dict:
    n = len(y)
    Z, K = entry.designs[0], entry.structure
    if not entry.identity_design and entry.q < n:
        # thin: H = L L' with L = Z K^(1/2), no n x n matrix
        if K is None:
            L = _checks.dense(Z[observed])
        else:
            w, Q = la.eigh(K, check_finite=False)
            _eigen_psd(w)
            L = _checks.dense(Z[observed] @ (Q * np.sqrt(np.maximum(w, 0.0))))
        rot = _spectral.rotate_factor(y, X, L)
    else:
        identity_all = entry.identity_design and observed.all()
        if not identity_all:
            _check_psd(entry)  # the eigenvalues of H below do not tell about all of K
        rot = _spectral.rotate_eigh(y, X, _h_matrix(entry, observed))
        if identity_all:
            _eigen_psd(np.array([rot.min_eigenvalue, rot.lam[-1]]))
    res = _spectral.fit(rot)
    v_inv_r = _spectral.v_inverse_residual(rot, res.sigma2_u, res.sigma2_e, res.b)
    G0 = np.array([[res.sigma2_u]])
    u = _blup(entry, observed, G0, v_inv_r)
    info = _spectral.information(rot, res.sigma2_u, res.sigma2_e)
    return {"G0": [G0], "R0": np.array([[res.sigma2_e]]), "loglik": res.loglik,
            "b": res.b, "b_se": np.sqrt(np.diag(_spectral.fixed_effect_covariance(
                rot, res.sigma2_u, res.sigma2_e))) if len(res.b) else res.b,
            "u": u, "info": info, "converged": True, "n_iter": res.n_eval,
            "boundary": res.boundary}


def _eigen_psd(w: np.ndarray) -> None:
    scale = max(abs(w[-1]), 1e-300)
    if w[0] < -1e-8 * scale * len(w):
        raise NotPositiveDefiniteError(
            f"K is not positive semi-definite: its smallest eigenvalue is {w[0]:.4g} (largest "
            f"{w[-1]:.4g}). A covariance structure cannot have negative eigenvalues: check how it "
            "was built, or blend it with a positive definite matrix."
        )


# ---- AI and EM, in the V form ---------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Layout:
    """Where each entry's G0 sits in the parameter vector theta (vech of each G0, then of the
    residual's: sigma2_e, or R0 with several traits), and which parameters are variances (held at
    a positive floor) rather than covariances.

    The residual is the last entry: k = 1 design (the identity) over the n records, or with t
    traits k = t designs (the selections S_a of chapter 11) over the records with data.
    ``traits`` gives the trait of every design, entries in order (all 0 for one trait).
    """

    ks: tuple[int, ...]
    qs: tuple[int, ...]
    traits: tuple[int, ...]

    @property
    def slices(self) -> list[slice]:
        out, start = [], 0
        for k in self.ks:
            size = k * (k + 1) // 2
            out.append(slice(start, start + size))
            start += size
        return out

    @property
    def is_variance(self) -> np.ndarray:
        return np.array([a == b for k in self.ks for a, b in model.lower_pairs(k)])

    @property
    def pair_traits(self) -> list[tuple[int, int]]:
        """The traits of the two designs of each parameter."""
        out, start = [], 0
        for k in self.ks:
            own = self.traits[start:start + k]
            out += [(own[a], own[b]) for a, b in model.lower_pairs(k)]
            start += k
        return out

    @property
    def residual(self) -> slice:
        return self.slices[-1]

    def blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        return [model.unvech(theta[s], k) for s, k in zip(self.slices, self.ks, strict=True)]

    def feasible(self, theta: np.ndarray, strict: bool = False) -> bool:
        """Every G0 positive semi-definite (to round-off; with ``strict`` its smallest eigenvalue
        above 1e-8 of its trace), every other variance positive."""
        if np.any(theta[_single_mask(self)] <= 0):
            return False
        margin = 1e-8 if strict else -1e-12
        for G0 in self.blocks(theta):
            if len(G0) > 1 and np.linalg.eigvalsh(G0)[0] < margin * np.trace(G0):
                return False
        return True

    def singular(self, theta: np.ndarray) -> list[int]:
        """Entries whose G0 (k > 1) sits on the edge of the cone: singular (for k = 2 a
        correlation of +-1)."""
        out = []
        for r, G0 in enumerate(self.blocks(theta)):
            if len(G0) > 1 and np.linalg.eigvalsh(G0)[0] <= 1e-6 * np.trace(G0):
                out.append(r)
        return out


@dataclass(frozen=True, eq=False)
class _Residual:
    """The residual as the last entry of the V form: its parts, designs, records and names."""

    parts: list
    k: int
    q: int
    traits: tuple[int, ...]
    names: tuple[str, ...]
    row_traits: np.ndarray


def _residual(stacked: model.StackedProblem, parts: bool = True) -> _Residual:
    """The residual entry; without ``parts`` its dense V-form matrices are not built (the
    rotation of :mod:`lmmbook._rotation` needs only its layout)."""
    tr = stacked.traits
    if tr is None:
        n = int(stacked.observed.sum())
        return _Residual([np.eye(n)] if parts else [], 1, n, (0,), ("e",),
                         np.zeros(n, dtype=int))
    return _Residual(tr.residual_parts() if parts else [], tr.t, int(tr.with_data.sum()),
                     tuple(range(tr.t)), tuple(f"e:{v}" for v in tr.names), tr.trait)


def _fit_iterative(y, X, entries, observed, method, tol, max_iter, init, names,
                   residual: _Residual, design_traits) -> dict:
    for r, entry in enumerate(entries):
        _check_psd(entry, f"K (random effect {r + 1})" if len(entries) > 1 else "K")
    p = X.shape[1]
    Hs = [H for e in entries for H in model.variance_parts(e, observed)] + residual.parts
    layout = _Layout(tuple(e.k for e in entries) + (residual.k,),
                     tuple(e.q for e in entries) + (residual.q,),
                     tuple(design_traits) + residual.traits)
    names = tuple(names) + residual.names
    theta = _initial(y, X, layout, init, residual.row_traits)
    state, converged, iterations, trace = _iterate(_VState(y, X, Hs, theta), layout, method,
                                                   tol, max_iter)
    blocks = layout.blocks(state.theta)
    v_inv_r = state.Py  # P y = V^-1 (y - X b)
    u = [u_a for e, G0 in zip(entries, blocks[:-1], strict=True)
         for u_a in _blup(e, observed, G0, v_inv_r)]
    info = state.information(identity_last=residual.k == 1)
    return {"G0": blocks[:-1], "R0": blocks[-1], "loglik": state.loglik, "b": state.b,
            "b_se": np.sqrt(np.diag(state.XtVinvX_inv)) if p else np.zeros(0), "u": u,
            "info": info, "converged": converged, "n_iter": iterations, "trace": trace,
            "boundary": _boundary(state.theta, layout, names)}


def _iterate(state, layout: _Layout, method: str, tol: float, max_iter: int):
    """AI or EM (SQUAREM) iterations from ``state`` until converged: the final state, whether it
    converged, the iterations and the trace of (theta, loglik).

    ``state`` is a :class:`_VState` or any object with its interface (``theta``, ``loglik``,
    ``score_parts()``, ``p_times(M)``, ``at(theta)``), e.g. the rotated one of several traits on
    one relationship matrix (:mod:`lmmbook._rotation`).

    AI can end on the edge of the cone (a singular G0 or R0) at a point that is not the best of
    the edge: there the Cholesky factor is flat in the null direction and the step in theta is
    cut short by the edge. So an AI run that ends with a singular block is restarted once from
    that block moved inside the cone (1 % of its mean variance added to its diagonal), and the
    better of the two ends is kept.
    """
    state, converged, iterations, trace = _iterate_once(state, layout, method, tol, max_iter)
    if method != "ai" or not layout.singular(state.theta):
        return state, converged, iterations, trace
    theta = state.theta.copy()
    for r, (sl, k) in enumerate(zip(layout.slices, layout.ks, strict=True)):
        if r in layout.singular(state.theta):
            G0 = model.unvech(theta[sl], k)
            theta[sl] = model.vech(G0 + 0.01 * np.trace(G0) / k * np.eye(k))
    try:
        again = _iterate_once(state.at(theta), layout, method, tol, max_iter)
    except la.LinAlgError:
        return state, converged, iterations, trace
    if again[0].loglik > state.loglik + 1e-10 * abs(state.loglik):
        return again[0], again[1], iterations + again[2], np.vstack([trace, again[3][1:]])
    return state, converged, iterations + again[2], trace


def _iterate_once(state, layout: _Layout, method: str, tol: float, max_iter: int):
    """The iterations of :func:`_iterate` from one start."""
    converged, iterations = False, 0
    step = _squarem_cycle if method == "em" else _ai_step
    history = []
    trace = [np.r_[state.theta, state.loglik]]
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        state = step(state, layout)
        distance = _distance_to_optimum(state, layout)
        history.append(state.loglik)
        trace.append(np.r_[state.theta, state.loglik])
        if distance < tol:
            converged = True
            break
        # At the limit of floating point (a variance tiny next to the total) the updates stop
        # improving the likelihood before the Newton distance reaches tol: accept that when the
        # distance is already small (or a G0 is held on the edge of the cone) and 20 iterations
        # gained nothing measurable.
        stalled = len(history) > 20 and history[-1] - history[-21] <= 1e-12 * abs(history[-1])
        if stalled and (distance < 1e-6 or layout.singular(state.theta)):
            converged = True
            break
    return state, converged, iterations, np.array(trace)


def _boundary(theta, layout: _Layout, names) -> str | None:
    """What sits on the boundary of the parameter space, in words (None if nothing). ``names``
    holds a name per design, the residual's last."""
    floor = _FLOOR * np.sum(theta[layout.is_variance])
    # held at the floor of the step before, whose total differed slightly: allow a factor 2
    at_floor = [j for j in np.flatnonzero(layout.is_variance) if theta[j] <= 2 * floor]
    design_of = [name[4:-1] for name in _parameter_names(layout.ks, names)]
    residual = layout.residual
    genetic = [j for j in at_floor if j < residual.start]
    parts = []
    if genetic:
        if len(names) - layout.ks[-1] == 1:
            parts.append("sigma2_u = 0")
        else:
            parts.append("sigma2_u = 0 for " + ", ".join(design_of[j] for j in genetic))
    for r in layout.singular(theta):
        if any(layout.slices[r].start <= j < layout.slices[r].stop for j in at_floor):
            continue
        start = sum(layout.ks[:r])
        what = "R0" if r == len(layout.ks) - 1 else "G0"
        k = layout.ks[r]
        G0 = layout.blocks(theta)[r]
        w = np.linalg.eigvalsh(G0)
        rank = int(np.sum(w > 1e-6 * np.trace(G0)))
        why = ("a correlation of +-1" if k == 2 else
               f"rank {rank} of {k}: a combination of the effects has no variance")
        parts.append(f"{what} of ({', '.join(names[start:start + k])}) singular ({why})")
    on_residual = [j for j in at_floor if j >= residual.start]
    if on_residual:
        parts.append("sigma2_e = 0" if layout.ks[-1] == 1 else
                     "sigma2_e = 0 for " + ", ".join(design_of[j] for j in on_residual))
    return "; ".join(parts) or None


_FLOOR = 1e-9  # a variance is not allowed below this fraction of the total (kept positive)


def _initial(y, X, layout: _Layout, init, row_traits) -> np.ndarray:
    """Starting values: ``init`` as given, else each trait's least-squares residual variance
    shared equally among that trait's variances, covariances 0."""
    m = len(layout.ks)
    if init is not None:
        values = list(init)
        if len(values) != m:
            raise InputError(
                f"init must hold {m} entries (one per random effect: a variance, or a (k, k) "
                "matrix for correlated effects; then the residual variance, or R0 with several "
                f"traits), got {len(values)}.")
        theta = []
        for r, (value, k) in enumerate(zip(values[:-1], layout.ks[:-1], strict=True)):
            G0 = model.covariance_matrix(f"init (random effect {r + 1})", value, k)
            theta += list(model.vech(G0))
        if layout.ks[-1] == 1:
            try:
                theta.append(_checks.positive_variance("init (residual)", values[-1]))
            except InputError as exc:
                raise InputError(f"init must end with a positive residual variance: {exc}"
                                 ) from None
        else:
            theta += list(model.vech(model.covariance_matrix("init (residual R0)", values[-1],
                                                             layout.ks[-1])))
        return np.asarray(theta)
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    theta = np.zeros(len(layout.is_variance))
    pairs = layout.pair_traits
    for trait in set(layout.traits):
        rows = row_traits == trait
        p_t = int(np.count_nonzero(np.any(X[rows] != 0, axis=0)))
        var = float(resid[rows] @ resid[rows]) / max(int(rows.sum()) - p_t, 1)
        mine = layout.is_variance & np.array([ta == tb == trait for ta, tb in pairs])
        theta[mine] = max(var, 1e-12) / int(mine.sum())
    return theta


class _VState:
    """V, P and the REML log-likelihood at one set of parameters (dense, O(n^3))."""

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

    def at(self, theta) -> _VState:
        """The state of the same data at other parameters."""
        return _VState(self.y, self.X, self.Hs, theta)

    def p_times(self, M: np.ndarray) -> np.ndarray:
        return self.P @ M

    def information(self, identity_last: bool = False) -> np.ndarray:
        """The expected information 1/2 tr(P V_s P V_t); ``identity_last``: the last V_s is I
        (the residual of one trait), whose product with P is not formed."""
        PH = [self.P if identity_last and j == len(self.Hs) - 1 else self.P @ H
              for j, H in enumerate(self.Hs)]
        return 0.5 * np.array([[np.sum(A * B.T) for B in PH] for A in PH])  # tr(A B)

    def score_parts(self):
        """tr(P V_s) and y'P V_s P y for each parameter."""
        traces = np.array([np.sum(self.P * H) for H in self.Hs])  # H symmetric
        HPy = [H @ self.Py for H in self.Hs]
        quads = np.array([self.Py @ h for h in HPy])
        return traces, quads, HPy


def _newton(state: _VState, layout: _Layout):
    """Score and AI Newton system in the working parameters phi.

    A variance (of a one-design entry, or the residual) is its own working parameter; a G0 of k
    correlated effects is worked on through its Cholesky factor, G0 = L L', so that every step
    stays positive semi-definite. With J = d theta / d phi the system is
    (J' AI J - sum_s score_s d^2 theta_s / d phi^2) step = J' score: the second term is the
    curvature the factorisation itself adds, which makes the step land on the edge of the cone
    (a correlation of +-1) when the optimum lies there instead of creeping towards it.
    Returns phi, J, the Newton matrix, the phi-score, and (AI, score) in theta itself.
    """
    traces, quads, HPy = state.score_parts()
    score = -0.5 * (traces - quads)
    HPy = np.column_stack(HPy)
    AI = 0.5 * HPy.T @ state.p_times(HPy)
    m = len(score)
    J = np.eye(m)
    curvature = np.zeros((m, m))
    phi = state.theta.copy()
    for sl, k in zip(layout.slices, layout.ks, strict=True):
        if k == 1:
            continue
        L = _cholesky_psd(model.unvech(state.theta[sl], k))
        pairs = model.lower_pairs(k)
        phi[sl] = [L[a, b] for a, b in pairs]
        block = np.zeros((len(pairs), len(pairs)))
        for row, (a, b) in enumerate(pairs):  # theta_ab = sum_c L_ac L_bc
            for col, (c, e) in enumerate(pairs):  # phi = L_ce
                block[row, col] = (a == c) * L[b, e] + (b == c) * L[a, e]
        J[sl, sl] = block
        s_block = score[sl]
        for col1, (c, e) in enumerate(pairs):
            for col2, (f, g) in enumerate(pairs):
                if e != g:
                    continue
                total = 0.0
                for row, (a, b) in enumerate(pairs):
                    total += s_block[row] * ((a == c) * (b == f) + (b == c) * (a == f))
                curvature[sl.start + col1, sl.start + col2] = total
    JAIJ = J.T @ AI @ J
    newton = JAIJ - curvature
    if np.linalg.eigvalsh(newton)[0] <= 1e-12 * max(np.abs(np.diag(JAIJ)).max(), 1e-300):
        newton = JAIJ  # far from the optimum: the expected curvature alone (always PSD)
    return phi, J, newton, J.T @ score, (AI, score)


def _cholesky_psd(G0: np.ndarray) -> np.ndarray:
    """A lower Cholesky factor of a positive semi-definite G0 (singular allowed)."""
    try:
        return np.linalg.cholesky(G0)
    except np.linalg.LinAlgError:
        w, Q = np.linalg.eigh(G0)
        R = Q * np.sqrt(np.clip(w, 0.0, None))  # G0 = R R'; its QR gives a triangular factor
        L = np.linalg.qr(R.T, mode="r").T
        return L * np.where(np.diag(L) < 0, -1.0, 1.0)


def _theta_of(phi: np.ndarray, layout: _Layout) -> np.ndarray:
    theta = phi.copy()
    for sl, k in zip(layout.slices, layout.ks, strict=True):
        if k > 1:
            L = np.zeros((k, k))
            for (a, b), v in zip(model.lower_pairs(k), phi[sl], strict=True):
                L[a, b] = v
            theta[sl] = model.vech(L @ L.T)
    return theta


def _free_step(state: _VState, layout: _Layout, newton, score_phi, floor):
    """The Newton step with variances that would fall below their floor held there (an active
    set: this is how AI reaches a boundary estimate such as sigma2_u = 0); None if singular."""
    single = _single_mask(layout)
    free = np.ones(len(score_phi), dtype=bool)
    step = np.zeros(len(score_phi))
    for _ in range(len(score_phi)):
        try:
            step[free] = np.linalg.solve(newton[np.ix_(free, free)], score_phi[free])
        except np.linalg.LinAlgError:
            return None
        step[~free] = floor - state.theta[~free]
        blocked = free & single & (state.theta + step < floor)
        if not blocked.any():
            break
        free &= ~blocked
        if not free.any():
            break
    return step


def _single_mask(layout: _Layout) -> np.ndarray:
    """Parameters that are variances of one-design entries or the residual (not of a G0)."""
    return np.array([k == 1 for k in layout.ks for _ in model.lower_pairs(k)])


def _distance_to_optimum(state: _VState, layout: _Layout) -> float:
    """The Newton step, mapped to the parameters and relative to the total variance: how far the
    optimum still is.

    A small change between two iterations is no proof of convergence for EM, whose steps shrink
    slowly; the Newton step estimates the remaining distance itself. Variances held at their
    floor with the score pointing below it are at the boundary and do not count, nor does the
    direction across the edge of the positive semi-definite cone when a G0 sits on it.
    """
    _, J, newton, score_phi, _ = _newton(state, layout)
    total = np.sum(state.theta[layout.is_variance])
    floor = _FLOOR * total
    single = _single_mask(layout)
    free = ~(single & (state.theta <= floor * (1 + 1e-9)) & (score_phi < 0))
    if not free.any():
        return 0.0
    step = np.zeros(len(score_phi))
    try:
        step[free] = np.linalg.solve(newton[np.ix_(free, free)], score_phi[free])
    except np.linalg.LinAlgError:
        return np.inf
    return float(np.max(np.abs(J @ step)) / total)


def _em_step(state: _VState, layout: _Layout) -> _VState:
    """G0 <- G0 + G0 (Q - T) G0 / q for each entry, sigma2_e (or R0) by the same rule with K = I
    over the records (chapter 2, eq-em; chapter 4, eq-em-g0; with several traits, chapter 11,
    R0 is one more such block)."""
    traces, quads, _ = state.score_parts()
    theta = state.theta.copy()
    for s, k, q in zip(layout.slices, layout.ks, layout.qs, strict=True):  # residual last
        # the parameter of a covariance carries V_s = H_ab + H_ba: halve its trace and quadratic
        D = model.unvech(quads[s] - traces[s], k)
        D[~np.eye(k, dtype=bool)] /= 2
        G0 = model.unvech(theta[s], k)
        theta[s] = model.vech(G0 + G0 @ D @ G0 / q)
    return state.at(_floor(theta, layout))


def _squarem_cycle(state: _VState, layout: _Layout) -> _VState:
    """Two EM steps, an extrapolation along them, and a third EM step (SQUAREM, Varadhan &
    Roland 2008, scheme S3).

    Plain EM moves along a nearly straight path in ever smaller steps; the extrapolation jumps
    along that path, and the EM step after it keeps the result on EM's climb. If the cycle ends
    lower than the second EM step, or the jump leaves the parameter space, that step is kept:
    the likelihood never falls.
    """
    first = _em_step(state, layout)
    second = _em_step(first, layout)
    r = first.theta - state.theta
    v = second.theta - first.theta - r
    if not np.any(v):
        return second
    alpha = min(-np.linalg.norm(r) / np.linalg.norm(v), -1.0)
    jump = state.theta - 2 * alpha * r + alpha**2 * v
    jump = _floor(jump, layout)
    if not layout.feasible(jump):
        return second
    try:
        candidate = _em_step(state.at(jump), layout)
    except la.LinAlgError:
        return second
    # A jump below zero puts a variance on its floor: that is how EM reaches a boundary such as
    # sigma2_u = 0. But a variance on its floor never leaves it (an EM update changes it by a
    # multiple of its square), so the jump is refused where the likelihood still pulls it up.
    traces, quads, _ = candidate.score_parts()
    on_floor = layout.is_variance & (candidate.theta <= 10 * _FLOOR * np.sum(
        candidate.theta[layout.is_variance]))
    if np.any(on_floor & (quads - traces > 0)):
        return second
    return candidate if candidate.loglik >= second.loglik else second


def _ai_step(state: _VState, layout: _Layout) -> _VState:
    """One average-information Newton step (chapter 2, eq-ai), AI_st = (V_s P y)' P (V_t P y) / 2,
    in the working parameters of :func:`_newton` (G0 through its Cholesky factor).

    The step is halved until the likelihood does not fall (at most 10 times); if that fails, an
    EM step is taken instead, which always climbs.
    """
    phi, _, newton, score_phi, (AI, score) = _newton(state, layout)
    floor = _FLOOR * np.sum(state.theta[layout.is_variance])
    step = _free_step(state, layout, newton, score_phi, floor)
    best = None if step is None else _halved(state, layout, lambda a: _theta_of(
        phi + a * step, layout), floor)
    if _near_edge(state.theta, layout):
        # Near a singular G0 the Cholesky factor has a diagonal near 0, where the likelihood is
        # flat in that factor (its sign does not matter): the step above can stall there. The
        # same Newton step in theta itself, shortened to stay inside the cone, does not.
        step = _free_step(state, layout, AI, score, floor)
        if step is not None:
            alpha = 1.0
            while alpha > 1e-6 and not layout.feasible(state.theta + alpha * step,
                                                       strict=True):
                alpha /= 2
            other = _halved(state, layout, lambda a: state.theta + alpha * a * step, floor)
            if other is not None and (best is None or other.loglik > best.loglik):
                best = other
    return best if best is not None else _em_step(state, layout)


def _halved(state, layout: _Layout, candidate_at, floor):
    """The state at candidate_at(a) for a = 1, 1/2, ... (at most 11 tries) whose likelihood does
    not fall, or None."""
    single = _single_mask(layout)
    a = 1.0
    for _ in range(11):
        candidate = candidate_at(a)
        candidate[single] = np.maximum(candidate[single], floor)
        new = None
        if layout.feasible(candidate):
            try:
                new = state.at(candidate)
            except la.LinAlgError:
                new = None
        if new is not None and new.loglik >= state.loglik - 1e-12 * abs(state.loglik):
            return new
        a /= 2
    return None


def _near_edge(theta: np.ndarray, layout: _Layout) -> bool:
    """Whether some G0 (or R0) of k > 1 has its smallest eigenvalue below 1 % of its trace."""
    return any(len(G0) > 1 and np.linalg.eigvalsh(G0)[0] < 1e-2 * np.trace(G0)
               for G0 in layout.blocks(theta))


def _floor(theta: np.ndarray, layout: _Layout) -> np.ndarray:
    out = theta.copy()
    v = layout.is_variance
    out[v] = np.maximum(theta[v], _FLOOR * np.sum(np.abs(theta[v])))
    return out


def _standard_errors(info: np.ndarray, theta: np.ndarray, variances: list[int],
                     same_trait: list[np.ndarray]):
    """The inverse information, the SEs of the parameters from it, and h2_d = theta_d / sigma2_P
    of each design's variance d with its SE by the delta method; sigma2_P of d's trait is the sum
    of the parameters in ``same_trait`` (a mask per d: every (co)variance within that trait)."""
    totals = [theta[mask].sum() for mask in same_trait]
    h2 = np.array([theta[d] / total for d, total in zip(variances, totals, strict=True)])
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        m = len(theta)
        return np.full((m, m), np.nan), np.full(m, np.nan), h2, np.full(len(variances), np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    h2_se = []
    for d, mask, total in zip(variances, same_trait, totals, strict=True):
        grad = np.where(mask, -theta[d] / total**2, 0.0)
        grad[d] += 1.0 / total
        h2_se.append(float(np.sqrt(max(grad @ cov @ grad, 0.0))))
    return cov, se, h2, np.array(h2_se)
