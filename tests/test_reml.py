import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import reml_loglik, reml_score_and_information

import lmmbook
from lmmbook.datasets import dyestuff
from lmmbook.errors import (
    InputError,
    NonFiniteError,
    NotPositiveDefiniteError,
    RankDeficientError,
    ShapeMismatchError,
    UnknownIdError,
)


def one_effect_problem(seed, n, p, kind, missing):
    """y = X b + Z u + e with Z an incidence matrix (kind "groups") or Z = I and K a genomic-like
    relationship matrix (kind "kernel", possibly singular)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    s2u, s2e = rng.uniform(0.3, 2.0, 2)
    if kind == "groups":
        q = int(rng.integers(3, max(4, n // 3)))
        Z = np.zeros((n, q))
        Z[np.arange(n), rng.integers(0, q, n)] = 1.0
        K = None
        H = Z @ Z.T
    else:
        m = int(rng.integers(n // 2, 2 * n))
        M = rng.binomial(2, rng.uniform(0.1, 0.9, m), size=(n, m)).astype(float)
        W = M - M.mean(axis=0)
        Z, K = None, W @ W.T / m + 0.01 * np.eye(n)
        H = K
    L = np.linalg.cholesky(H + 1e-9 * np.eye(n))
    e = rng.normal(0, np.sqrt(s2e), n)
    y = X @ rng.normal(size=p) + np.sqrt(s2u) * L @ rng.normal(size=n) + e
    y[rng.random(n) < missing] = np.nan
    return y, X, Z, K, H


problems = st.builds(
    one_effect_problem,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(15, 50),
    p=st.integers(1, 3),
    kind=st.sampled_from(["groups", "kernel"]),
    missing=st.sampled_from([0.0, 0.15]),
)


def observed(y, X, H):
    obs = np.isfinite(y)
    return y[obs], X[obs], H[np.ix_(obs, obs)]


@settings(max_examples=30)
@given(problems)
def test_spectral_against_the_dense_likelihood(problem):
    y, X, Z, K, H = problem
    yo, Xo, Ho = observed(y, X, H)
    assume(len(yo) > X.shape[1] + 2)
    fit = lmmbook.reml(y, X, Z, K)
    theta = np.array([fit.sigma2_u, fit.sigma2_e])
    # the log-likelihood we report is the naive formula at our estimates
    assert fit.loglik == pytest.approx(reml_loglik(yo, Xo, [Ho], theta), rel=1e-10, abs=1e-9)
    score, info = reml_score_and_information(yo, Xo, [Ho], theta)
    if fit.boundary is None:
        # an interior maximum: the score vanishes (scaled by the variances: dimensionless)
        np.testing.assert_allclose(score * theta, 0, atol=1e-6)
        cov = np.linalg.inv(info)
        assert fit.sigma2_u_se == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-7)
        assert fit.sigma2_e_se == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-7)
    else:
        # a boundary: sigma2_u = 0, or sigma2_e = 0 (possible when K has full rank); the variance
        # is exactly 0 and the likelihood falls from there into the interior
        k = {"sigma2_u = 0": 0, "sigma2_e = 0": 1}[fit.boundary]
        assert theta[k] == 0.0
        assert score[k] <= 1e-8 * abs(score).max() + 1e-12


@settings(max_examples=30)
@given(problems, st.sampled_from([(1.0, 1.0), (1.0, 0.99), (0.99, 1.0), (1.01, 1.0), (1.0, 1.01),
                                  (0.98, 1.02)]))
def test_loglik_at_the_estimate_is_not_below_nearby_points(problem, factors):
    y, X, Z, K, H = problem
    yo, Xo, Ho = observed(y, X, H)
    assume(len(yo) > X.shape[1] + 2)
    fit = lmmbook.reml(y, X, Z, K)
    nearby = np.array([fit.sigma2_u * factors[0] + (factors[0] - 1) * 1e-3,
                       fit.sigma2_e * factors[1]])
    assume(nearby[0] >= 0)
    assert reml_loglik(yo, Xo, [Ho], nearby) <= fit.loglik + 1e-9 * abs(fit.loglik)


@settings(max_examples=12)
@given(problems)
def test_three_methods_agree(problem):
    y, X, Z, K, H = problem
    assume(np.isfinite(y).sum() > X.shape[1] + 2)
    spectral = lmmbook.reml(y, X, Z, K, method="spectral")
    assume(spectral.boundary is None)  # boundaries: compared absolutely in their own test
    for method in ("ai", "em"):
        # the default tol (1e-10 of the total variance) is as far as EM's updates go reliably in
        # floating point; the agreement asked for is 1e-6
        other = lmmbook.reml(y, X, Z, K, method=method)
        assert other.converged
        # 1e-6 relative; for a variance that is a tiny share of the total (h2 near 0) relative
        # precision means nothing, so 1e-7 of the total variance is accepted too
        total = spectral.sigma2_u + spectral.sigma2_e
        assert other.sigma2_u == pytest.approx(spectral.sigma2_u, rel=1e-6, abs=1e-7 * total)
        assert other.sigma2_e == pytest.approx(spectral.sigma2_e, rel=1e-6, abs=1e-7 * total)
        assert other.loglik == pytest.approx(spectral.loglik, rel=1e-10, abs=1e-9)
        np.testing.assert_allclose(other.u, spectral.u, rtol=1e-5,
                                   atol=1e-6 * np.abs(spectral.u).max())


@settings(max_examples=15)
@given(problems, st.floats(0.1, 30.0), st.floats(-50.0, 50.0))
def test_scaling_and_shifting_y(problem, c, shift):
    y, X, Z, K, H = problem
    assume(np.isfinite(y).sum() > X.shape[1] + 2)
    fit = lmmbook.reml(y, X, Z, K)
    scaled = lmmbook.reml(c * y, X, Z, K)
    # scaling y by c scales the variances by c^2 (absolutely at a boundary, where they are 0)
    assert scaled.sigma2_u == pytest.approx(c**2 * fit.sigma2_u, rel=1e-7, abs=1e-12 * c**2)
    assert scaled.sigma2_e == pytest.approx(c**2 * fit.sigma2_e, rel=1e-7)
    shifted = lmmbook.reml(y + shift, X, Z, K)  # X holds an intercept
    assert shifted.sigma2_u == pytest.approx(fit.sigma2_u, rel=1e-7, abs=1e-9)
    assert shifted.sigma2_e == pytest.approx(fit.sigma2_e, rel=1e-7)
    assert shifted.b[0] == pytest.approx(fit.b[0] + shift, rel=1e-9, abs=1e-7)
    np.testing.assert_allclose(shifted.b[1:], fit.b[1:], rtol=1e-6, atol=1e-7)


def test_dyestuff_matches_lme4():
    """lme4's published fit of Yield ~ 1 + (1 | Batch): variances 1764 and 2451 (printed rounded;
    the balanced design gives 1764.05 and 2451.25 exactly), intercept 1527.50 (SE 19.38), REML
    criterion 319.7 (-2 loglik; nlme's gls on the same model prints logLik -159.8271), and
    conditional modes A..F -17.6068514 0.3912634 28.5622256 -23.0845385 56.7331877 -44.9952868."""
    d = dyestuff()
    for method in ("spectral", "ai", "em"):
        fit = lmmbook.reml(d["yield_"], np.ones((30, 1)), lmmbook.incidence(d["batch"]),
                           method=method)
        assert fit.sigma2_u == pytest.approx(1764.05, rel=1e-8)
        assert fit.sigma2_e == pytest.approx(2451.25, rel=1e-8)
        assert fit.b[0] == pytest.approx(1527.5, rel=1e-12)
        assert fit.b_se[0] == pytest.approx(19.38341, abs=1e-5)
        assert fit.loglik == pytest.approx(-159.8271, abs=1e-4)
        np.testing.assert_allclose(
            fit.u, [-17.6068514, 0.3912634, 28.5622256, -23.0845385, 56.7331877, -44.9952868],
            atol=1e-6)
        assert fit.levels.tolist() == list("ABCDEF")


def test_variety_trial_matches_statsmodels():
    d = lmmbook.simulate_variety_trial(seed=2026).data
    fit = lmmbook.reml(d["y"], lmmbook.incidence(d["environment"]), lmmbook.incidence(d["variety"]))
    sm = smf.mixedlm("y ~ 0 + environment", d, groups=d["variety"]).fit(reml=True)
    # statsmodels stops its optimiser earlier than our root of the score: 1e-4 relative
    assert fit.sigma2_u == pytest.approx(sm.cov_re.iloc[0, 0], rel=1e-4)
    assert fit.sigma2_e == pytest.approx(sm.scale, rel=1e-4)
    # its llf is the same REML log-likelihood (same convention), flat at the optimum
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-8)


def test_thin_factor_equals_full_eigendecomposition():
    """Z with fewer columns than records takes the thin-SVD path; giving H = Z K Z' as K with
    Z = None takes the eigendecomposition path: same model, same estimates."""
    rng = np.random.default_rng(4)
    n, q = 80, 12
    Z = np.zeros((n, q))
    Z[np.arange(n), rng.integers(0, q, n)] = 1
    A = rng.normal(size=(q, q))
    K = A @ A.T / q + 0.1 * np.eye(q)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + Z @ np.linalg.cholesky(K) @ rng.normal(size=q) + rng.normal(size=n)
    y[[3, 17]] = np.nan
    thin = lmmbook.reml(y, X, Z, K)
    full = lmmbook.reml(y, X, None, Z @ K @ Z.T)
    assert thin.sigma2_u == pytest.approx(full.sigma2_u, rel=1e-8)
    assert thin.sigma2_e == pytest.approx(full.sigma2_e, rel=1e-8)
    assert thin.loglik == pytest.approx(full.loglik, rel=1e-11)
    # full.u is one value per record (Z = I): Z u of the thin fit, at the observed records
    obs = np.isfinite(y)
    np.testing.assert_allclose((Z @ thin.u)[obs], full.u[obs], rtol=1e-6, atol=1e-9)


def test_boundary_estimate_is_exactly_zero():
    # every batch has the same records in another order: no variation between batch means
    base = np.array([3.1, 4.7, 5.2, 2.9, 4.4])
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.permutation(base) for _ in range(6)])
    Z = lmmbook.incidence(np.repeat(list("ABCDEF"), 5))
    spectral = lmmbook.reml(y, np.ones((30, 1)), Z)
    assert spectral.sigma2_u == 0.0 and spectral.boundary == "sigma2_u = 0"
    assert spectral.sigma2_e == pytest.approx(np.var(y, ddof=1), rel=1e-12)
    np.testing.assert_array_equal(spectral.u, 0.0)
    ai = lmmbook.reml(y, np.ones((30, 1)), Z, method="ai")
    # AI holds sigma2_u at its floor (1e-9 of the total variance): compare absolutely, and allow
    # the log-likelihood the drop that such a tiny variance costs at this slope (~1e-8)
    assert ai.converged and ai.boundary == "sigma2_u = 0"
    assert ai.sigma2_u == pytest.approx(0.0, abs=1e-8 * spectral.sigma2_e)
    assert ai.loglik == pytest.approx(spectral.loglik, abs=1e-7)
    # plain EM only creeps towards a boundary (each update shrinks sigma2_u by a term in
    # sigma2_u^2); with the SQUAREM extrapolation it gets there
    em = lmmbook.reml(y, np.ones((30, 1)), Z, method="em")
    assert em.converged and em.boundary == "sigma2_u = 0"
    assert em.sigma2_u == pytest.approx(0.0, abs=1e-8 * spectral.sigma2_e)
    assert em.loglik == pytest.approx(spectral.loglik, abs=1e-7)
    assert "boundary" in spectral.summary()


def test_missing_records_leave_the_likelihood_but_are_predicted():
    d = lmmbook.simulate_variety_trial(25, 3, seed=8).data
    y = d["y"].to_numpy().copy()
    only_v01 = (d["variety"] == "V01").to_numpy()
    y[only_v01] = np.nan  # V01 loses all its records
    X, Z = lmmbook.incidence(d["environment"]), lmmbook.incidence(d["variety"])
    fit = lmmbook.reml(y, X, Z)
    keep = ~only_v01
    subset = lmmbook.reml(y[keep], X.matrix[keep], Z.matrix[keep])
    assert fit.sigma2_u == pytest.approx(subset.sigma2_u, rel=1e-10)
    assert fit.n_obs == keep.sum()
    assert fit.u[0] == 0.0  # unrelated and unobserved: predicted at the mean
    np.testing.assert_allclose(fit.u[1:], subset.u[1:], rtol=1e-9, atol=1e-12)


def test_two_random_effects_ai_and_em_agree_and_solve_the_score():
    rng = np.random.default_rng(12)
    n = 120
    Z1 = np.zeros((n, 10))
    Z1[np.arange(n), rng.integers(0, 10, n)] = 1
    Z2 = np.zeros((n, 15))
    Z2[np.arange(n), rng.integers(0, 15, n)] = 1
    X = np.ones((n, 1))
    y = 5 + Z1 @ rng.normal(0, 1.0, 10) + Z2 @ rng.normal(0, 0.7, 15) + rng.normal(0, 1.0, n)
    ai = lmmbook.reml(y, X, [Z1, Z2], method="ai")
    em = lmmbook.reml(y, X, [Z1, Z2], method="em", tol=1e-12)
    assert isinstance(ai.sigma2_u, tuple) and len(ai.u) == 2 and len(ai.u[1]) == 15
    np.testing.assert_allclose(em.sigma2_u, ai.sigma2_u, rtol=1e-6)
    assert em.sigma2_e == pytest.approx(ai.sigma2_e, rel=1e-6)
    theta = np.array([*ai.sigma2_u, ai.sigma2_e])
    Hs = [Z1 @ Z1.T, Z2 @ Z2.T]
    assert ai.loglik == pytest.approx(reml_loglik(y, X, Hs, theta), rel=1e-12)
    score, info = reml_score_and_information(y, X, Hs, theta)
    np.testing.assert_allclose(score * theta, 0, atol=1e-6)
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    np.testing.assert_allclose(ai.sigma2_u_se, se[:2], rtol=1e-8)
    assert sum(ai.h2) < 1 and ai.h2[0] == pytest.approx(theta[0] / theta.sum())
    assert "u2" in ai.summary()


def test_labelled_kernel_joined_to_records_by_id():
    rng = np.random.default_rng(3)
    ids = [f"a{i}" for i in range(30)]
    W = rng.normal(size=(30, 50))
    K = pd.DataFrame(W @ W.T / 50 + 0.05 * np.eye(30), index=ids, columns=ids)
    y = pd.Series(rng.normal(size=30), index=ids)
    fit = lmmbook.reml(y, np.ones((30, 1)), None, K)
    order = rng.permutation(30)
    y_shuffled = y.iloc[order]
    fit2 = lmmbook.reml(y_shuffled, np.ones((30, 1)), None, K)
    assert fit2.sigma2_u == pytest.approx(fit.sigma2_u, rel=1e-9)
    assert fit2.levels.tolist() == [ids[i] for i in order]
    with pytest.raises(UnknownIdError, match="'zz'"):
        lmmbook.reml(pd.Series(y.to_numpy(), index=ids[:-1] + ["zz"]), np.ones((30, 1)), None, K)


# ---- errors ------------------------------------------------------------------------------

def small():
    rng = np.random.default_rng(1)
    y = rng.normal(size=12)
    X = np.ones((12, 1))
    Z = np.repeat(np.eye(4), 3, axis=0)
    return y, X, Z


def test_z_and_k_both_none_is_not_identifiable():
    y, X, _ = small()
    with pytest.raises(InputError, match="both None.*cannot be told apart"):
        lmmbook.reml(y, X)


def test_spectral_refuses_two_effects_and_names_the_others():
    y, X, Z = small()
    with pytest.raises(InputError, match="method='ai'.*method='em'"):
        lmmbook.reml(y, X, [Z, Z[:, ::-1]], method="spectral")
    # the default picks AI for several effects
    assert lmmbook.reml(y, X, [Z, Z[:, ::-1]]).method == "ai"


def test_k_not_symmetric_says_by_how_much():
    y, X, Z = small()
    K = np.eye(4)
    K[0, 1] = 0.3
    with pytest.raises(NotPositiveDefiniteError, match="not symmetric.*0.3"):
        lmmbook.reml(y, X, Z, K)


@pytest.mark.parametrize("method", ["spectral", "ai"])
def test_k_not_positive_semidefinite_gives_smallest_eigenvalue(method):
    y, X, Z = small()
    K = np.array([[1.0, 0.9, 0, 0], [0.9, 1.0, 0.9, 0], [0, 0.9, 1.0, 0], [0, 0, 0, 1.0]])
    smallest = np.linalg.eigvalsh(K)[0]
    with pytest.raises(NotPositiveDefiniteError, match=f"smallest eigenvalue is {smallest:.4g}"):
        lmmbook.reml(y, X, Z, K, method=method)
    with pytest.raises(NotPositiveDefiniteError, match="smallest eigenvalue"):
        lmmbook.reml(y, X, None, Z @ K @ Z.T - 0.5 * np.eye(12), method=method)


def test_fewer_records_than_fixed_effects():
    y, X, Z = small()
    y = y.copy()
    y[2:] = np.nan
    with pytest.raises(InputError, match="2 observed record.*2 fixed effect"):
        lmmbook.reml(y, np.column_stack([X, np.arange(12.0)]), Z)


def test_shape_and_value_errors():
    y, X, Z = small()
    with pytest.raises(ShapeMismatchError, match="K must be square"):
        lmmbook.reml(y, X, Z, np.ones((4, 3)))
    with pytest.raises(ShapeMismatchError, match=r"K has 5 rows but Z \(columns\) has 4"):
        lmmbook.reml(y, X, Z, np.eye(5))
    with pytest.raises(ShapeMismatchError, match="K has 4 rows but y has 12"):
        lmmbook.reml(y, X, None, np.eye(4))
    with pytest.raises(ShapeMismatchError, match="one entry each per random effect"):
        lmmbook.reml(y, X, [Z, Z], [np.eye(4), np.eye(4), np.eye(4)], method="ai")
    with pytest.raises(NonFiniteError, match="K holds nan"):
        lmmbook.reml(y, X, Z, np.full((4, 4), np.nan))
    with pytest.raises(RankDeficientError, match="'a', 'b'"):
        lmmbook.reml(y, pd.DataFrame({"a": np.ones(12), "b": np.ones(12)}), Z)
    with pytest.raises(InputError, match="method must be"):
        lmmbook.reml(y, X, Z, method="newton")
    with pytest.raises(InputError, match="init must end with a positive residual variance"):
        lmmbook.reml(y, X, Z, method="ai", init=[1.0, -1.0])
    with pytest.raises(InputError, match="init must hold 2 entries"):
        lmmbook.reml(y, X, Z, method="ai", init=[1.0, 1.0, 1.0])
