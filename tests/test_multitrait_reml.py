"""Several traits at once (chapter 11): REML of G0 and R0 (lmmbook.reml) and multi-trait GBLUP
(lmmbook.gblup, canonical transformation and general V form).

Checked three ways: against a REML likelihood of the stacked V form written out below from the
definitions and maximised by scipy.optimize (the observed values stacked trait by trait, unlike
lmmbook's record-by-record stacking; its expected information gives the standard errors),
against Mrode & Pocrnic (2023)'s printed solutions of Example 11.13
(../shared/examples/mrode-4ed/ex-11-13.md), and on properties over random data (hypothesis):
invariance to the order of the records, equivariance under swapping and scaling traits, AI = EM,
EM iterates inside the cone. Then the boundary G0 singular and the refusals.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize as opt
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook import genomic
from lmmbook.datasets import mrode_example_11_13
from lmmbook.errors import InputError, ShapeMismatchError

# Mrode prints 3 decimals; the example file accepts 0.001.
PRINTED = 1e-3
LOG_2PI = np.log(2 * np.pi)


# ---- data ---------------------------------------------------------------------------------------

def names_of(t):
    return [f"T{a + 1}" for a in range(t)]


def simulate(seed, n, t, missing=0.0, G0=None, R0=None, unphenotyped=0):
    """n individuals with t traits on a genomic-like K (n/3 markers, so that a few large
    eigenvalues tell genetic from residual variance well, + 0.05 I so that K is definite):
    Y = X B + U + E, vec U ~ N(0, G0 kron K), rows of E ~ N(0, R0). Each value is missing with
    probability ``missing`` (the first 2 t rows complete), the last ``unphenotyped`` rows lose all
    traits. G0 and R0 are random (positive definite) unless given."""
    rng = np.random.default_rng(seed)
    m = n // 3
    M = rng.binomial(2, rng.uniform(0.1, 0.9, m), size=(n, m)).astype(float)
    W = M - M.mean(axis=0)
    K = W @ W.T / m + 0.05 * np.eye(n)
    if G0 is None:
        A = rng.normal(size=(t, t))
        G0 = A @ A.T / t + 0.5 * np.eye(t)
    if R0 is None:
        B = rng.normal(size=(t, t))
        R0 = B @ B.T / t + 0.5 * np.eye(t)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    U = np.linalg.cholesky(K) @ rng.normal(size=(n, t)) @ np.linalg.cholesky(G0).T
    E = rng.normal(size=(n, t)) @ np.linalg.cholesky(R0).T
    Y = X @ rng.normal(size=(2, t)) + U + E
    lost = rng.random((n, t)) < missing
    lost[:2 * t] = False
    lost[lost.all(axis=1), 0] = False  # every record keeps a trait (unless unphenotyped)
    Y[lost] = np.nan
    if unphenotyped:
        Y[n - unphenotyped:] = np.nan
    return pd.DataFrame(Y, columns=names_of(t)), X, K


# ---- the dense reference ------------------------------------------------------------------------

class DenseREML:
    """The REML likelihood of t traits with missing values, from the definitions.

    vec(Y) is stacked trait by trait (all of trait 1 first) and only its observed entries kept:
    y, X_s = (I_t kron X) on those rows, and Var(y) = V = G0 kron K + R0 kron I on them, i.e.
    V = sum_s theta_s H_s with H_s = (E_ab + E_ba) kron K (or kron I) restricted to the observed
    entries, for each element (a, b) of G0 (or R0), E_ab the unit matrix. A record's residuals are
    correlated by R0 across its observed traits and unrelated to other records' by construction.
    Parameters are keyed by lmmbook's names ("var(u:T1)", "cov(u:T1,u:T2)", "var(e:T2)", ...).
    """

    def __init__(self, Y, X, K):
        Y = np.asarray(Y, dtype=float)
        n, t = Y.shape
        self.n, self.t = n, t
        vec = Y.T.ravel()
        self.keep = np.isfinite(vec)
        self.y = vec[self.keep]
        self.X = np.kron(np.eye(t), X)[self.keep]
        self.K = K
        traits = names_of(t)
        self.parts = {}  # name -> (H, "u" or "e", a, b)
        for M, v in ((K, "u"), (np.eye(n), "e")):
            for a in range(t):
                for b in range(a + 1):
                    E = np.zeros((t, t))
                    E[a, b] = E[b, a] = 1.0
                    name = (f"var({v}:{traits[a]})" if a == b
                            else f"cov({v}:{traits[b]},{v}:{traits[a]})")
                    self.parts[name] = (np.kron(E, M)[np.ix_(self.keep, self.keep)], v, a, b)
        self.names = list(self.parts)

    def V(self, G0, R0):
        return sum((G0 if v == "u" else R0)[a, b] * H for H, v, a, b in self.parts.values())

    def _solve(self, G0, R0):
        V = self.V(G0, R0)
        V_inv = np.linalg.inv(V)
        XtVX = self.X.T @ V_inv @ self.X
        XtVX_inv = np.linalg.inv(XtVX)
        P = V_inv - V_inv @ self.X @ XtVX_inv @ self.X.T @ V_inv
        return V, V_inv, XtVX, XtVX_inv, P

    def loglik(self, G0, R0, score=False):
        """lme4's convention: -1/2 [(N-p) log 2pi + log|V| + log|X'V^-1 X| + y'P y]; with
        ``score`` also d loglik / d theta_s = -1/2 [tr(P H_s) - y'P H_s P y]."""
        V, _, XtVX, _, P = self._solve(G0, R0)
        N, p = self.X.shape
        Py = P @ self.y
        value = -0.5 * ((N - p) * LOG_2PI + np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtVX)[1]
                        + self.y @ Py)
        if not score:
            return value
        # tr(P H) = sum(P * H) for a symmetric H
        return value, np.array([-0.5 * (np.sum(P * H) - Py @ H @ Py)
                                for H, *_ in self.parts.values()])

    def score(self, G0, R0):
        return self.loglik(G0, R0, score=True)[1]

    def information(self, G0, R0):
        """Expected information 1/2 tr(P H_s P H_t)."""
        P = self._solve(G0, R0)[4]
        PH = [P @ H for H, *_ in self.parts.values()]
        return np.array([[0.5 * np.sum(A * B.T) for B in PH] for A in PH])  # tr(A B)

    def gls_blup(self, G0, R0):
        """b (trait by trait), its SEs, u = Cov(vec U, y) P y and PEV = diag(G0 kron K - C P C')
        as (n, t) arrays."""
        _, V_inv, _, XtVX_inv, P = self._solve(G0, R0)
        b = XtVX_inv @ self.X.T @ V_inv @ self.y
        C = np.kron(G0, self.K)[:, self.keep]
        u = (C @ P @ self.y).reshape(self.t, self.n).T
        pev = (np.diag(np.kron(G0, self.K)) - np.einsum("ij,ji->i", C @ P, C.T))
        return b, np.sqrt(np.diag(XtVX_inv)), u, pev.reshape(self.t, self.n).T

    def theta(self, G0, R0):
        return np.array([(G0 if v == "u" else R0)[a, b] for _, v, a, b in self.parts.values()])

    def maximise(self, G0, R0):
        """max loglik over G0 = L_G L_G', R0 = L_R L_R' (lower-triangular factors, so every point
        is positive semi-definite, the edge included) by BFGS with the analytic gradient."""
        t = self.t
        tri = np.tril_indices(t)
        m = len(tri[0])

        def unpack(x):
            out = []
            for part in (x[:m], x[m:]):
                L = np.zeros((t, t))
                L[tri] = part
                out.append(L @ L.T)
            return out

        def objective(x):
            G, R = unpack(x)
            try:
                value, score = self.loglik(G, R, score=True)
            except np.linalg.LinAlgError:
                return np.inf, np.zeros_like(x)
            grad = []
            for j, v in enumerate("ue"):
                L = np.zeros((t, t))
                L[tri] = x[j * m:(j + 1) * m]
                S = np.zeros((t, t))  # dl/dSigma, symmetric: a covariance counts twice
                for s, (_, vv, a, b) in zip(score, self.parts.values(), strict=True):
                    if vv == v:
                        S[a, b] = S[b, a] = s if a == b else s / 2
                grad.append((2 * S @ L)[tri])  # d l(L L') / dL
            return -value, -np.concatenate(grad)

        x0 = np.concatenate([np.linalg.cholesky(G0)[tri], np.linalg.cholesky(R0)[tri]])
        res = opt.minimize(objective, x0, jac=True, method="BFGS",
                           options={"gtol": 1e-10, "maxiter": 500})
        G, R = unpack(res.x)
        return G, R, -res.fun


def complete_rows(Y):
    return np.asarray(Y)[np.isfinite(np.asarray(Y)).all(axis=1)]


def components_of(fit):
    """The table of estimates and SEs (a method of REMLResult, an attribute of GBLUPResult)."""
    return fit.components()


def delta_se(dense, G0, R0, cov):
    """h2 of each trait and the genetic and residual correlations, with delta-method SEs from the
    dense parameter covariance ``cov``, keyed by lmmbook's row names."""
    theta = dict(zip(dense.names, dense.theta(G0, R0), strict=True))
    index = {name: j for j, name in enumerate(dense.names)}
    out = {}
    traits = names_of(dense.t)
    for a in traits:
        g, e = theta[f"var(u:{a})"], theta[f"var(e:{a})"]
        grad = np.zeros(len(theta))
        grad[index[f"var(u:{a})"]] = e / (g + e) ** 2
        grad[index[f"var(e:{a})"]] = -g / (g + e) ** 2
        out[f"h2(u:{a})"] = (g / (g + e), np.sqrt(grad @ cov @ grad))
    for v in "ue":
        for i, a in enumerate(traits):
            for b in traits[i + 1:]:
                va, vb = theta[f"var({v}:{a})"], theta[f"var({v}:{b})"]
                c = theta[f"cov({v}:{a},{v}:{b})"]
                r = c / np.sqrt(va * vb)
                grad = np.zeros(len(theta))
                grad[index[f"cov({v}:{a},{v}:{b})"]] = 1 / np.sqrt(va * vb)
                grad[index[f"var({v}:{a})"]] = -r / (2 * va)
                grad[index[f"var({v}:{b})"]] = -r / (2 * vb)
                out[f"cor({v}:{a},{v}:{b})"] = (r, np.sqrt(grad @ cov @ grad))
    return out


def assert_matches_dense(fit, dense, on_edge=False):
    """lmmbook's REML fit (REMLResult or estimated GBLUPResult) against the dense formulas at its
    own estimates: likelihood, score 0 (unless ``on_edge``: G0 singular), SEs from the expected
    information, h2 and correlations by the delta method, b and u by GLS/BLUP, and PEV."""
    G0, R0 = np.asarray(fit.sigma2_u), np.asarray(fit.sigma2_e)
    # the log-likelihood reported is the naive formula at the estimates (same numbers, another
    # order of operations: round-off only)
    assert fit.loglik == pytest.approx(dense.loglik(G0, R0), rel=1e-11, abs=1e-9)
    # an interior maximum: the score vanishes; scaled by each parameter's own magnitude
    # (sqrt(var_a var_b) for a covariance) it is dimensionless. AI (and EM on the data sets
    # here) stops at a Newton distance of 1e-10 of the total variance: scaled scores ~1e-10
    # measured, 1e-6 asked.
    theta = dense.theta(G0, R0)
    scale = np.array([np.sqrt((G0 if v == "u" else R0)[a, a] * (G0 if v == "u" else R0)[b, b])
                      for _, v, a, b in dense.parts.values()])
    if not on_edge:
        np.testing.assert_allclose(dense.score(G0, R0) * scale, 0, atol=1e-6)
    info = dense.information(G0, R0)
    cov = np.linalg.inv(info)
    table = components_of(fit)
    np.testing.assert_allclose(table.loc[dense.names, "estimate"], theta, rtol=1e-14, atol=0)
    # the same traces in another order, then one inverse of a 6 x 6 (or 12 x 12) matrix of
    # condition ~1e3: 1e-8 relative leaves room for that
    np.testing.assert_allclose(table.loc[dense.names, "se"], np.sqrt(np.diag(cov)), rtol=1e-8)
    for name, (value, se) in delta_se(dense, G0, R0, cov).items():
        assert table.loc[name, "estimate"] == pytest.approx(value, rel=1e-12, abs=1e-14)
        assert table.loc[name, "se"] == pytest.approx(se, rel=1e-8)
    b, b_se, u, pev = dense.gls_blup(G0, R0)
    scale_b = np.abs(b).max()
    np.testing.assert_allclose(fit.b, b, rtol=1e-8, atol=1e-10 * scale_b)
    if hasattr(fit, "b_se"):
        np.testing.assert_allclose(fit.b_se, b_se, rtol=1e-8)
    np.testing.assert_allclose(fit.u, u, rtol=1e-7, atol=1e-9 * np.abs(u).max())
    if hasattr(fit, "pev"):
        np.testing.assert_allclose(fit.pev, pev, rtol=1e-8, atol=1e-10 * np.trace(G0))
    return table


# ---- 1. against the dense likelihood, maximised by scipy ----------------------------------------

MAXIMISED = [  # (seed, n, t, fraction of values missing, method)
    (11, 80, 2, 0.15, "ai"),
    (11, 80, 2, 0.15, "em"),
    (10, 60, 3, 0.15, "ai"),
    (10, 60, 3, 0.15, "em"),
]
G0_TRUE = {2: np.array([[1.0, 0.5], [0.5, 1.5]]),
           3: np.array([[1.0, 0.5, 0.2], [0.5, 1.5, -0.3], [0.2, -0.3, 1.2]])}
R0_TRUE = {2: np.array([[1.0, 0.3], [0.3, 1.0]]),
           3: np.array([[1.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.8]])}


@pytest.fixture(scope="module")
def maximised():
    """Each data set of MAXIMISED with the dense REML maximum found by scipy (computed once)."""
    out = {}
    for seed, n, t, missing, _ in MAXIMISED:
        if (seed, n, t, missing) in out:
            continue
        Y, X, K = simulate(seed, n, t, missing, G0_TRUE[t], R0_TRUE[t])
        dense = DenseREML(Y, X, K)
        start = np.cov(complete_rows(Y).T) / 2  # half the phenotypic covariance each
        out[seed, n, t, missing] = (Y, X, K, dense, dense.maximise(start, start))
    return out


@pytest.mark.parametrize(("seed", "n", "t", "missing", "method"), MAXIMISED)
def test_reml_maximises_the_dense_likelihood(maximised, seed, n, t, missing, method):
    Y, X, K, dense, (G_max, R_max, ll_max) = maximised[seed, n, t, missing]
    assert np.isnan(Y.to_numpy()).any()
    fit = lmmbook.reml(Y, X, None, K, method=method)
    assert fit.converged and fit.boundary is None and fit.method == method
    assert fit.traits == tuple(names_of(t))
    assert fit.n_obs == n and len(fit.unused_records) == 0
    assert fit.sigma2_u.shape == fit.sigma2_e.shape == (t, t) and fit.h2.shape == (t,)
    # the same maximum: scipy's BFGS stops at a gradient of 1e-10 in the Cholesky factors, AI at
    # a Newton distance of 1e-10 of the total variance (measured: both methods within 1e-10 of
    # the total of scipy's maximum); 1e-8 of the total asked of AI. EM may also stop by reml's
    # second rule, about 1e-6 of the total away (see test_ai_and_em_agree_...): 2e-6 asked. At
    # a maximum the likelihood is flat to second order, so its values agree far closer, and
    # lmmbook's is never the lower.
    total = np.trace(G_max) + np.trace(R_max)
    atol = (1e-8 if method == "ai" else 2e-6) * total
    np.testing.assert_allclose(fit.sigma2_u, G_max, rtol=0, atol=atol)
    np.testing.assert_allclose(fit.sigma2_e, R_max, rtol=0, atol=atol)
    assert fit.loglik == pytest.approx(ll_max, abs=1e-9)
    assert fit.loglik >= ll_max - 1e-10
    assert_matches_dense(fit, dense)
    # h2 and sigma2_u_se as attributes, not only in the table
    np.testing.assert_allclose(fit.h2, np.diag(fit.sigma2_u) / np.diag(fit.sigma2_u
                                                                       + fit.sigma2_e))
    table = fit.components()
    np.testing.assert_allclose(np.diag(fit.sigma2_u_se),
                               table.loc[[f"var(u:{a})" for a in fit.traits], "se"], rtol=1e-14)
    np.testing.assert_allclose(fit.h2_se, table.loc[[f"h2(u:{a})" for a in fit.traits], "se"],
                               rtol=1e-14)


def test_gblup_estimates_with_a_missing_value_take_the_general_path():
    """One value missing: the canonical transformation does not apply; gblup's general V form is
    the dense REML maximum, and predicts u and PEV as the dense BLUP does."""
    Y, X, K = simulate(5, 70, 2, 0.0)
    Y.iloc[40, 1] = np.nan
    fit = lmmbook.gblup(Y, X, K)
    assert not fit.rotated and fit.estimated and fit.boundary is None
    dense = DenseREML(Y, X, K)
    assert_matches_dense(fit, dense)
    # and the same as reml over the same V form
    general = lmmbook.reml(Y, X, None, K, method="ai")
    assert_same_fit(fit, general)


# ---- the canonical path against the general path ------------------------------------------------

def assert_same_fit(a, b, rtol=1e-8):
    """Two fits of the same model and data: estimates, SEs (the components tables), loglik, b, u.

    Both stop AI at a Newton distance of 1e-10 of the total variance from the same start, along
    paths that differ by round-off only: 1e-8 relative (the variances, 1e-9 of the total
    absolutely)."""
    total = np.trace(np.asarray(a.sigma2_u)) + np.trace(np.asarray(a.sigma2_e))
    np.testing.assert_allclose(a.sigma2_u, b.sigma2_u, rtol=rtol, atol=1e-9 * total)
    np.testing.assert_allclose(a.sigma2_e, b.sigma2_e, rtol=rtol, atol=1e-9 * total)
    ta, tb = components_of(a), components_of(b)
    assert ta.index.tolist() == tb.index.tolist()
    np.testing.assert_allclose(ta["estimate"], tb["estimate"], rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(ta["se"], tb["se"], rtol=rtol)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(a.b, b.b, rtol=rtol, atol=1e-9 * np.abs(b.b).max())
    np.testing.assert_allclose(a.u, b.u, rtol=1e-7, atol=1e-9 * np.abs(b.u).max())


@pytest.mark.parametrize(("seed", "n", "t", "unphenotyped", "on_edge"),
                         [(22, 90, 2, 0, False), (24, 60, 3, 0, False), (21, 80, 2, 10, False),
                          (23, 80, 2, 10, True)])
def test_canonical_path_equals_the_general_v_form(seed, n, t, unphenotyped, on_edge):
    Y, X, K = simulate(seed, n, t, 0.0, unphenotyped=unphenotyped)
    fit = lmmbook.gblup(Y, X, K)
    assert fit.rotated and fit.estimated
    assert fit.n_obs == n - unphenotyped
    general = lmmbook.reml(Y, X, None, K, method="ai")
    # the same estimate on the edge of the cone too (a genetic correlation of 1 here)
    assert fit.boundary == general.boundary
    assert (fit.boundary is not None) == on_edge
    assert_same_fit(fit, general)
    # PEV from the rotation against the dense formula at the same estimates; rows without
    # records are predicted too (reml's u has a row per record, phenotyped or not)
    assert_matches_dense(fit, DenseREML(Y, X, K), on_edge=on_edge)
    assert fit.u.shape == fit.pev.shape == fit.reliability.shape == (n, t)
    reliability = 1 - fit.pev / np.outer(np.diag(K), np.diag(fit.sigma2_u))
    np.testing.assert_allclose(fit.reliability, reliability, rtol=1e-12, atol=1e-14)
    assert np.all((fit.reliability > 0) & (fit.reliability < 1))


@pytest.mark.parametrize(("missing", "unphenotyped"), [(0.0, 0), (0.0, 6), (0.25, 0), (0.25, 6)])
def test_gblup_at_given_covariances_equals_solve_mme(missing, unphenotyped):
    """Given G0 and R0: gblup (canonical without missing values, else the V form) against the
    mixed-model equations with K^-1 = G^-1; rows with no trait are predicted from their
    relatives in both."""
    Y, X, K = simulate(31, 50, 2, missing, unphenotyped=unphenotyped)
    G0, R0 = np.array([[1.2, -0.4], [-0.4, 0.9]]), np.array([[0.8, 0.25], [0.25, 1.1]])
    fit = lmmbook.gblup(Y, X, K, sigma2_u=G0, sigma2_e=R0)
    assert fit.rotated == (missing == 0) and not fit.estimated and fit.component_table is None
    mme = lmmbook.solve_mme(Y, X, None, np.linalg.inv(K), G0, R0)
    assert len(mme.unused_records) == unphenotyped
    scale = np.abs(mme.u).max()
    np.testing.assert_allclose(fit.b, mme.b, rtol=1e-9, atol=1e-10 * np.abs(mme.b).max())
    assert fit.fixed_names.tolist() == mme.fixed_names.tolist() == ["T1:0", "T1:1", "T2:0",
                                                                    "T2:1"]
    np.testing.assert_allclose(fit.u, mme.u, rtol=1e-8, atol=1e-10 * scale)
    np.testing.assert_allclose(fit.pev, mme.pev, rtol=1e-9)
    np.testing.assert_allclose(fit.reliability, mme.reliability, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(fit.sigma2_u, G0)
    np.testing.assert_allclose(fit.h2, np.diag(G0) / np.diag(G0 + R0), rtol=1e-15)
    # the likelihood at the given values is the dense one
    assert fit.loglik == pytest.approx(DenseREML(Y, X, K).loglik(G0, R0), rel=1e-11)
    if unphenotyped:
        assert fit.n_obs == 50 - unphenotyped
        assert np.isnan(fit.v_inv_residual[-unphenotyped:]).all()


# ---- 2. Mrode & Pocrnic (2023), Example 11.13 ---------------------------------------------------

def mrode_11_13():
    ex = mrode_example_11_13()
    M = ex.genotypes
    G = lmmbook.genomic_relationship(M) + 0.01 * np.eye(len(M))  # G of 5 calves is singular
    r = ex.records.set_index("calf").loc[M.index]
    X = lmmbook.incidence(r["sex"], levels=["M", "F"])
    return ex, r[["wwg", "pwg"]], X, pd.DataFrame(G, index=M.index, columns=M.index)


# ex-11-13.md, label "sex (WWG, PWG)": WWG male, female, PWG male, female
SEX_11_13 = [4.323, 3.416, 6.753, 5.921]
# ex-11-13.md, label "calves 4-8"
GEBV_11_13 = {"wwg": [0.081, -0.212, 0.181, -0.209, 0.159],
              "pwg": [0.108, -0.419, 0.377, -0.302, 0.235]}


def test_mrode_11_13_bivariate_gblup():
    ex, Y, X, G = mrode_11_13()
    v = ex.variances
    fit = lmmbook.gblup(Y, X, G, sigma2_u=v["G0"], sigma2_e=v["R0"])
    assert fit.rotated and fit.traits == ("wwg", "pwg") and fit.ids.tolist() == [4, 5, 6, 7, 8]
    assert fit.fixed_names.tolist() == ["wwg:M", "wwg:F", "pwg:M", "pwg:F"]
    np.testing.assert_allclose(fit.b, SEX_11_13, atol=PRINTED)
    gebv = fit.to_frame()["gebv"]
    np.testing.assert_allclose(gebv["wwg"], GEBV_11_13["wwg"], atol=PRINTED)
    np.testing.assert_allclose(gebv["pwg"], GEBV_11_13["pwg"], atol=PRINTED)


def test_mrode_11_13_through_the_mixed_model_equations():
    ex, Y, X, G = mrode_11_13()
    v = ex.variances
    mme = lmmbook.solve_mme(Y, X, None, np.linalg.inv(G.to_numpy()), v["G0"], v["R0"])
    np.testing.assert_allclose(mme.b, SEX_11_13, atol=PRINTED)
    np.testing.assert_allclose(mme.u[:, 0], GEBV_11_13["wwg"], atol=PRINTED)
    np.testing.assert_allclose(mme.u[:, 1], GEBV_11_13["pwg"], atol=PRINTED)
    fit = lmmbook.gblup(Y, X, G, sigma2_u=v["G0"], sigma2_e=v["R0"])
    np.testing.assert_allclose(fit.u, mme.u, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.pev, mme.pev, rtol=1e-10)


# ---- 3. properties ------------------------------------------------------------------------------

gblup_problems = st.builds(
    simulate, seed=st.integers(0, 2**32 - 1), n=st.integers(60, 100), t=st.sampled_from([2, 3]),
    missing=st.just(0.0), unphenotyped=st.sampled_from([0, 4]))


def interior(fit, margin=0.01, units=None):
    """Estimates away from the edge of the cone: smallest eigenvalue of G0 and R0 above
    ``margin`` of the trace (after dividing trait a by ``units[a]``, when given).

    Near the edge the likelihood is flat in some combination of the traits, so two fits that
    reach the same maximum can still differ there by more than the tolerances below; the
    properties are therefore checked on interior estimates. (Before AI tried a step in theta
    itself near the edge, it stalled there in 3 of 150 two-trait and 10 of 150 three-trait
    problems of this file's kind: see test_ai_does_not_stall_near_the_edge_of_the_cone.)
    """
    if fit.boundary is not None:
        return False
    inverse = np.diag(1 / np.asarray(units)) if units is not None else np.eye(len(fit.traits))
    return all(np.linalg.eigvalsh(inverse @ M @ inverse / np.trace(inverse @ M @ inverse))[0]
               > margin for M in (np.asarray(fit.sigma2_u), np.asarray(fit.sigma2_e)))


def equivariance_tolerance(fit):
    # both fits stop at a Newton distance of 1e-10 of the total variance, from starting values
    # that transform like the data: agreement to ~1e-9 relative; 1e-7 asked
    return {"rtol": 1e-7, "atol": 1e-8 * (np.trace(fit.sigma2_u) + np.trace(fit.sigma2_e))}


@settings(max_examples=8)
@given(gblup_problems, st.randoms(use_true_random=False), st.booleans())
def test_permuting_the_records_leaves_the_fit_unchanged(problem, rnd, one_missing):
    Y, X, K = problem
    n = len(Y)
    if one_missing:  # the general path, at a size it handles quickly
        Y = Y.iloc[:40, :2].copy()
        X, K = X[:40], K[:40, :40]
        n = 40
        Y.iloc[5, 1] = np.nan
    fit = lmmbook.gblup(Y, X, K)
    assume(interior(fit))
    order = np.array(rnd.sample(range(n), n))
    moved = lmmbook.gblup(Y.iloc[order].reset_index(drop=True), X[order], K[np.ix_(order, order)])
    assume(interior(moved))
    assert moved.rotated == fit.rotated == (not one_missing)
    tol = equivariance_tolerance(fit)
    np.testing.assert_allclose(moved.sigma2_u, fit.sigma2_u, **tol)
    np.testing.assert_allclose(moved.sigma2_e, fit.sigma2_e, **tol)
    np.testing.assert_allclose(moved.components()["se"], fit.components()["se"], rtol=1e-6)
    assert moved.loglik == pytest.approx(fit.loglik, rel=1e-10, abs=1e-8)
    np.testing.assert_allclose(moved.b, fit.b, rtol=1e-6, atol=1e-7 * np.abs(fit.b).max())
    np.testing.assert_allclose(moved.u, fit.u[order], rtol=1e-6, atol=1e-7 * np.abs(fit.u).max())
    np.testing.assert_allclose(moved.pev, fit.pev[order], rtol=1e-6)


@settings(max_examples=12)
@given(gblup_problems)
def test_swapping_traits_permutes_g0_and_r0(problem):
    Y, X, K = problem
    fit = lmmbook.gblup(Y, X, K)
    assume(interior(fit))
    t = Y.shape[1]
    order = np.arange(t)[::-1]
    swapped = lmmbook.gblup(Y.iloc[:, order], X, K)
    assume(interior(swapped))
    assert swapped.traits == tuple(Y.columns[order])
    tol = equivariance_tolerance(fit)
    np.testing.assert_allclose(swapped.sigma2_u, fit.sigma2_u[np.ix_(order, order)], **tol)
    np.testing.assert_allclose(swapped.sigma2_e, fit.sigma2_e[np.ix_(order, order)], **tol)
    np.testing.assert_allclose(swapped.h2, fit.h2[order], rtol=1e-7)
    np.testing.assert_allclose(swapped.u, fit.u[:, order], rtol=1e-6,
                               atol=1e-7 * np.abs(fit.u).max())
    assert swapped.loglik == pytest.approx(fit.loglik, rel=1e-10, abs=1e-8)
    # the table is keyed by name: the same rows (a correlation named in the other order)
    a, b = fit.components(), swapped.components()
    for name in a.index:
        other = name
        if name.startswith("c"):
            kind, pair = name[:3], name[4:-1].split(",")
            other = f"{kind}({pair[1]},{pair[0]})"
        assert b.loc[other, "estimate"] == pytest.approx(a.loc[name, "estimate"], rel=1e-6,
                                                         abs=1e-7)
        assert b.loc[other, "se"] == pytest.approx(a.loc[name, "se"], rel=1e-6)


@settings(max_examples=12)
@given(gblup_problems, st.floats(0.05, 20.0))
def test_scaling_a_trait_scales_its_rows_and_columns(problem, c):
    """y_2 -> c y_2: G0 and R0 -> D G0 D and D R0 D with D = diag(1, c, 1...); h2 and every
    correlation unchanged; u_2 scaled by c; the REML log-likelihood falls by (N_2 - p_2) log c
    (log|V| gains 2 N_2 log c, log|X'V^-1 X| loses 2 p_2 log c, y'Py is unchanged)."""
    Y, X, K = problem
    fit = lmmbook.gblup(Y, X, K)
    assume(interior(fit))
    scaled_Y = Y.copy()
    scaled_Y["T2"] *= c
    scaled = lmmbook.gblup(scaled_Y, X, K)
    units = [1.0, c] + [1.0] * (Y.shape[1] - 2)
    assume(interior(scaled, units=units))  # judged in the units of the first fit
    D = np.diag(units)
    G0, R0 = D @ fit.sigma2_u @ D, D @ fit.sigma2_e @ D
    tol = {"rtol": 1e-7, "atol": 1e-8 * (np.trace(G0) + np.trace(R0))}
    np.testing.assert_allclose(scaled.sigma2_u, G0, **tol)
    np.testing.assert_allclose(scaled.sigma2_e, R0, **tol)
    np.testing.assert_allclose(scaled.h2, fit.h2, rtol=1e-7)
    ratio = [name for name in fit.components().index if name.startswith(("h2", "cor"))]
    np.testing.assert_allclose(scaled.components().loc[ratio], fit.components().loc[ratio],
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(scaled.u, fit.u @ D, rtol=1e-6,
                               atol=1e-7 * np.abs(fit.u @ D).max())
    N2 = int(np.isfinite(Y["T2"]).sum())
    assert scaled.loglik == pytest.approx(fit.loglik - (N2 - X.shape[1]) * np.log(c), rel=1e-10,
                                          abs=1e-8)


reml_problems = st.builds(
    simulate, seed=st.integers(0, 2**32 - 1), n=st.integers(30, 45), t=st.just(2),
    missing=st.sampled_from([0.0, 0.15]), G0=st.just(G0_TRUE[2]), R0=st.just(R0_TRUE[2]))


def positive_definite_path(fit):
    """Every iterate of ``history`` as (G0, R0), each positive definite (smallest eigenvalue
    relative to the trace), and the log-likelihoods."""
    t = len(fit.traits)
    m = t * (t + 1) // 2
    history = fit.history
    assert history.columns.tolist() == [*fit.parameter_names, "loglik"]
    smallest = []
    for row in history[list(fit.parameter_names)].to_numpy():
        for part in (row[:m], row[m:]):
            M = np.zeros((t, t))
            M[np.tril_indices(t)] = part  # vech order: (0,0), (1,0), (1,1), ...
            M = M + np.tril(M, -1).T
            smallest.append(np.linalg.eigvalsh(M)[0] / np.trace(M))
    return np.array(smallest), history["loglik"].to_numpy()


@settings(max_examples=6)
@given(reml_problems)
def test_ai_and_em_agree_and_em_stays_positive_definite(problem):
    Y, X, K = problem
    ai = lmmbook.reml(Y, X, None, K, method="ai")
    # EM's rate falls as the estimate nears the edge of the cone (each update is multiplied by
    # G0 on both sides): at a smallest eigenvalue of 4e-5 of the trace 5000 cycles were seen not
    # to converge. Compared where it converges in tens of cycles.
    assume(interior(ai, margin=0.05))
    em = lmmbook.reml(Y, X, None, K, method="em")
    assert ai.converged and em.converged
    # AI stops at a Newton distance of 1e-10 of the total variance. EM stops there too, or by
    # reml's second rule (documented under ``tol``): after 20 cycles that raise the likelihood
    # by less than 1e-12 of it, at a distance below 1e-6 of the total. With two traits that rule
    # fires on interior estimates while EM still climbs (seen: seed 529, n = 30, EM 7.6e-7 of
    # the total from the optimum, AI 1e-10; tol=1e-12 changes nothing). The rule bounds the
    # distance a Newton step predicts, not the distance itself (seed 60753471, n = 36: 9.2e-7
    # predicted, 1.06e-6 actual): 2e-6 of the total asked. The likelihood is flat to second
    # order there: 1e-10 relative.
    total = np.trace(ai.sigma2_u) + np.trace(ai.sigma2_e)
    np.testing.assert_allclose(em.sigma2_u, ai.sigma2_u, rtol=0, atol=2e-6 * total)
    np.testing.assert_allclose(em.sigma2_e, ai.sigma2_e, rtol=0, atol=2e-6 * total)
    assert em.loglik == pytest.approx(ai.loglik, rel=1e-10, abs=1e-9)
    # SEs are smooth in the estimates: 2e-6 of the total is up to ~4e-5 of a small variance
    np.testing.assert_allclose(em.components()["se"], ai.components()["se"], rtol=1e-4)
    for fit in (ai, em):
        smallest, loglik = positive_definite_path(fit)
        assert len(loglik) == fit.n_iter + 1
        assert np.all(smallest > 0)
        # EM (and AI with its step halving) never lets the likelihood fall
        assert np.all(np.diff(loglik) >= -1e-12 * np.abs(loglik[1:]))
        assert loglik[-1] == pytest.approx(fit.loglik, rel=1e-14)


def test_a_one_column_table_is_the_single_trait_model():
    Y, X, K = simulate(41, 40, 2, 0.1)
    one = lmmbook.reml(Y[["T1"]], X, None, K)
    vector = lmmbook.reml(Y["T1"], X, None, K)
    assert one.traits is None and np.ndim(one.sigma2_u) == 0
    assert one.sigma2_u == vector.sigma2_u and one.loglik == vector.loglik


# ---- the boundary: G0 singular -------------------------------------------------------------------

def test_genetic_correlation_one_reaches_the_edge_of_the_cone():
    """u_2 = u_1 in the simulation (G0 = [[1, 1], [1, 1]], singular). The likelihood over
    unconstrained (co)variances peaks beyond a correlation of 1; REML's estimate is on the edge,
    reported as G0 singular; no point of the cone (scipy over Cholesky factors, which reach the
    edge) has a higher likelihood, and the conditions of a maximum on the edge hold."""
    R0 = np.array([[1.0, 0.2], [0.2, 1.0]])
    rng = np.random.default_rng(7)
    n = 80
    _, X, K = simulate(7, n, 2, 0.0, np.eye(2), R0)  # K and X; the records are made here
    U = np.linalg.cholesky(K) @ rng.normal(size=n)
    E = rng.normal(size=(n, 2)) @ np.linalg.cholesky(R0).T
    Y = pd.DataFrame(np.column_stack([U, U]) + E + 1.0, columns=["T1", "T2"])
    Y.iloc[rng.choice(np.arange(4, n), 12, replace=False), 1] = np.nan
    fit = lmmbook.reml(Y, X, None, K, method="ai")
    assert fit.converged
    assert fit.boundary is not None and "G0 of (u:T1, u:T2) singular" in fit.boundary
    cor = fit.components().loc["cor(u:T1,u:T2)", "estimate"]
    assert abs(cor) == pytest.approx(1.0, abs=1e-6)  # G0's smallest eigenvalue is 5e-17
    dense = DenseREML(Y, X, K)
    assert fit.loglik == pytest.approx(dense.loglik(fit.sigma2_u, fit.sigma2_e), rel=1e-11)
    start = np.cov(complete_rows(Y).T) / 2
    G_max, R_max, ll_max = dense.maximise(start, start)
    assert fit.loglik >= ll_max - 1e-9
    # the same point (measured 1.5e-9 apart, of a total variance of 3)
    np.testing.assert_allclose(fit.sigma2_u, G_max, rtol=0, atol=1e-8 * np.trace(G_max + R_max))
    np.testing.assert_allclose(fit.sigma2_e, R_max, rtol=0, atol=1e-8 * np.trace(G_max + R_max))
    # Karush-Kuhn-Tucker at G0 = w w' (rank 1): with S = d loglik / d G0 (symmetric), the score
    # vanishes along the edge (S w = 0) and points out of the cone (v'S v < 0 for v orthogonal to
    # w: moving to G0 - eps v v', which is indefinite, would raise the likelihood, so the
    # maximum over unconstrained (co)variances lies beyond a correlation of 1); R0's score is 0.
    score = dict(zip(dense.names, dense.score(fit.sigma2_u, fit.sigma2_e), strict=True))
    S = np.array([[score["var(u:T1)"], score["cov(u:T1,u:T2)"] / 2],
                  [score["cov(u:T1,u:T2)"] / 2, score["var(u:T2)"]]])
    values, vectors = np.linalg.eigh(fit.sigma2_u)
    v, w = vectors[:, 0], vectors[:, 1] * np.sqrt(values[1])
    assert values[0] <= 1e-6 * values[1]
    np.testing.assert_allclose(S @ w * np.linalg.norm(w), 0, atol=1e-6)
    assert v @ S @ v * np.trace(fit.sigma2_u) < -0.1
    residual_scale = np.sqrt(np.outer(np.diag(fit.sigma2_e), np.diag(fit.sigma2_e)))
    np.testing.assert_allclose(np.array([score["var(e:T1)"], score["cov(e:T1,e:T2)"],
                                         score["var(e:T2)"]])
                               * residual_scale[np.tril_indices(2)], 0, atol=1e-6)
    # gblup's canonical path meets the same edge on the complete records
    complete = np.isfinite(Y.to_numpy()).all(axis=1)
    g = lmmbook.gblup(Y[complete], X[complete], K[np.ix_(complete, complete)])
    assert g.rotated and g.boundary == fit.boundary


# ---- names and refusals -------------------------------------------------------------------------

def test_parameter_names_of_g0_and_r0():
    Y, X, K = simulate(51, 40, 3, 0.1)
    fit = lmmbook.reml(Y, X, None, K, method="ai", max_iter=2)  # names do not need convergence
    assert fit.parameter_names == (
        "var(u:T1)", "cov(u:T1,u:T2)", "var(u:T2)", "cov(u:T1,u:T3)", "cov(u:T2,u:T3)",
        "var(u:T3)", "var(e:T1)", "cov(e:T1,e:T2)", "var(e:T2)", "cov(e:T1,e:T3)",
        "cov(e:T2,e:T3)", "var(e:T3)")
    rows = fit.components().index.tolist()
    assert rows[12:] == ["h2(u:T1)", "h2(u:T2)", "h2(u:T3)", "cor(u:T1,u:T2)", "cor(u:T1,u:T3)",
                         "cor(u:T2,u:T3)", "cor(e:T1,e:T2)", "cor(e:T1,e:T3)", "cor(e:T2,e:T3)"]
    assert "var(e:T3)" in fit.summary() and "cor(e:T2,e:T3)" in fit.summary()


def test_the_general_v_form_is_refused_above_its_size(monkeypatch):
    Y, X, K = simulate(61, 30, 2, 0.0)
    assert genomic.GENERAL_MAX_VALUES == 5000
    monkeypatch.setattr(genomic, "GENERAL_MAX_VALUES", 50)
    assert lmmbook.gblup(Y, X, K).rotated  # 60 values, but the rotated path has no limit
    Y.iloc[[3, 8], 1] = np.nan
    with pytest.raises(InputError,
                       match=r"2 of the 30 phenotyped individuals' trait values are missing.*"
                             r"general V form over 58 values \(more than "
                             r"lmmbook\.genomic\.GENERAL_MAX_VALUES = 50\).*Fit the "
                             r"individuals with every trait recorded"):
        lmmbook.gblup(Y, X, K)
    # given covariances take the same path and are refused the same way
    with pytest.raises(InputError, match="GENERAL_MAX_VALUES = 50"):
        lmmbook.gblup(Y, X, K, sigma2_u=np.eye(2), sigma2_e=np.eye(2))


def test_init_of_the_wrong_shape_is_refused():
    Y, X, K = simulate(11, 80, 2, 0.15, G0_TRUE[2], R0_TRUE[2])
    with pytest.raises(ShapeMismatchError,
                       match=r"init \(random effect 1\) must be a \(2, 2\) covariance matrix.*"
                             r"got shape \(3, 3\)"):
        lmmbook.reml(Y, X, None, K, method="ai", init=[np.eye(3), np.eye(2)])
    with pytest.raises(ShapeMismatchError,
                       match=r"init \(residual R0\) must be a \(2, 2\) covariance matrix.*"
                             r"got shape \(\)"):
        lmmbook.reml(Y, X, None, K, method="em", init=[np.eye(2), 1.0])
    with pytest.raises(InputError, match="init must hold 2 entries"):
        lmmbook.reml(Y, X, None, K, method="ai", init=[np.eye(2)])
    # a good init is used: started at the estimate, AI stops at once where it started
    fit = lmmbook.reml(Y, X, None, K, method="ai")
    again = lmmbook.reml(Y, X, None, K, method="ai", init=[fit.sigma2_u, fit.sigma2_e])
    assert again.n_iter <= 2
    np.testing.assert_allclose(again.history.iloc[0, :-1],
                               fit.components()["estimate"].iloc[:6], rtol=1e-12)


def test_gwas_refuses_a_fit_of_several_traits():
    rng = np.random.default_rng(81)
    M = rng.binomial(2, 0.4, size=(40, 60)).astype(float)
    G = lmmbook.genomic_relationship(M)
    Y = pd.DataFrame(rng.normal(size=(40, 2)), columns=["T1", "T2"])
    fit = lmmbook.gblup(Y, np.ones((40, 1)), G, sigma2_u=np.eye(2), sigma2_e=np.eye(2))
    with pytest.raises(InputError, match=r"fit is a GBLUP of 2 traits \(T1, T2\); these tests "
                                         r"are for one trait"):
        lmmbook.gwas(fit, M)


def test_ai_does_not_stall_near_the_edge_of_the_cone():
    """With these traits in reverse order AI's Cholesky steps reached a nearly singular G0 by
    iteration 5 (a factor's diagonal near 0, where the likelihood is flat in it) and stayed there
    for 200 iterations, 1.7 log-likelihood units below the maximum that the other order, EM and
    scipy reach; the step in theta near the edge takes it out."""
    Y, X, K = simulate(710, 84, 3)
    forward = lmmbook.reml(Y, X, None, K, method="ai")
    reverse = lmmbook.reml(Y.iloc[:, ::-1], X, None, K, method="ai")
    assert forward.converged and reverse.converged
    assert reverse.loglik == pytest.approx(forward.loglik, abs=1e-8)
    np.testing.assert_allclose(np.asarray(reverse.sigma2_u)[::-1, ::-1], forward.sigma2_u,
                               rtol=1e-6)
    g = lmmbook.gblup(Y.iloc[:, ::-1], X, K)
    assert g.converged and g.loglik == pytest.approx(forward.loglik, abs=1e-8)


def test_ai_reaches_a_rank_deficient_maximum_of_three_traits():
    """The maximum is a singular G0 of rank 2 with no correlation at +-1: AI gets there (EM is
    still 2e-4 below after 3000 cycles) and reports the rank."""
    Y, X, K = simulate(16, 60, 3, 0.15, G0_TRUE[3], R0_TRUE[3])
    fit = lmmbook.reml(Y, X, None, K, method="ai")
    dense = DenseREML(Y, X, K)
    start = np.cov(complete_rows(Y).T) / 2
    _, _, ll_max = dense.maximise(start, start)
    assert fit.converged and fit.loglik == pytest.approx(ll_max, abs=1e-8)
    assert "rank 2 of 3" in fit.boundary


def test_ai_leaves_a_worse_point_of_the_edge_for_the_best_one():
    """Here the maximum is a singular G0 (rank 2 of 3), but AI from the default start ended on
    another point of the edge, 0.16 log-likelihood units lower, and stalled there for 200
    iterations (converged=False, a warning from gblup); EM reaches the maximum only slowly. The
    restart from that point moved inside the cone finds it, in either order of the records."""
    Y, X, K = simulate(166312, 72, 3)
    fit = lmmbook.reml(Y, X, None, K, method="ai")
    em = lmmbook.reml(Y, X, None, K, method="em", max_iter=400)
    best = lmmbook.reml(Y, X, None, K, method="ai", init=[em.sigma2_u, em.sigma2_e])
    assert fit.converged and best.converged and "rank 2 of 3" in fit.boundary
    assert fit.loglik == pytest.approx(best.loglik, abs=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmmbook.errors.LmmbookWarning)
        g = lmmbook.gblup(Y.iloc[::-1].reset_index(drop=True), X[::-1], K[::-1, ::-1])
    assert g.converged and g.loglik == pytest.approx(best.loglik, abs=1e-8)


def test_an_indefinite_g_is_refused_on_the_rotated_path():
    Y, X, K = simulate(3, 40, 2)
    w, Q = np.linalg.eigh(K)
    w[0] = -0.2 * w.mean()  # clearly negative, as for a G built wrongly
    with pytest.raises(lmmbook.errors.NotPositiveDefiniteError,
                       match=r"G is indefinite: its smallest eigenvalue"):
        lmmbook.gblup(Y, X, (Q * w) @ Q.T)
