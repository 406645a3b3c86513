import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import InputError


def problem(seed, n, m, missing_y, missing_calls):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    M[:, 0] = 1.0  # a monomorphic marker
    W = M - 2 * p
    y = 2 + W @ rng.normal(0, 0.3 / np.sqrt(m), m) + rng.normal(0, 1, n)
    y[rng.random(n) < missing_y] = np.nan
    y[:3] = [1.0, 2.0, 3.0]  # a few records at least
    if missing_calls:
        mask = rng.random((n, m)) < missing_calls
        mask[:, 1] = False  # keep every individual with a call
        M[mask] = np.nan
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return y, X, M


problems = st.builds(problem, seed=st.integers(0, 2**32 - 1), n=st.integers(10, 40),
                     m=st.sampled_from([5, 15, 80]), missing_y=st.sampled_from([0.0, 0.3]),
                     missing_calls=st.sampled_from([0.0, 0.05]))


@settings(max_examples=40)
@given(problems)
# REML at sigma2_e = 0 (80 markers on 10 and 14 animals): the two G's once gave log-likelihoods
# 2.6e-6 apart, and sigma2_u = 2.2 against a boundary sigma2_u = 0 (tests/test_spectral.py)
@example(problem(1, 10, 80, 0.0, 0.0))
@example(problem(19042, 14, 80, 0.0, 0.0))
def test_snp_blup_is_gblup(problem_):
    """The same model: GEBVs, variance components (with sigma2_u = 2 sum p(1-p) sigma2_alpha) and
    REML log-likelihoods agree, whether there are fewer markers than animals or more, also when
    the estimate is sigma2_e = 0 (both then say so)."""
    y, X, M = problem_
    snp = lmmbook.snp_blup(y, X, M)
    G = lmmbook.genomic_relationship(M)
    gb = lmmbook.gblup(y, X, G)
    p = lmmbook.allele_frequencies(M)
    scale = 2 * np.sum(p * (1 - p))
    # With as many markers as records the optimum can sit at sigma2_e -> 0, where only absolute
    # agreement (a small fraction of the total variance) is meaningful.
    total = gb.sigma2_u + gb.sigma2_e
    assert snp.sigma2_u == pytest.approx(gb.sigma2_u, rel=1e-7, abs=1e-6 * total)
    assert snp.sigma2_alpha * scale == pytest.approx(snp.sigma2_u, rel=1e-12)
    assert snp.sigma2_e == pytest.approx(gb.sigma2_e, rel=1e-7, abs=1e-6 * total)
    assert snp.loglik == pytest.approx(gb.loglik, rel=1e-8, abs=1e-6)
    np.testing.assert_allclose(snp.gebv, gb.u, atol=1e-5 * (1 + np.abs(gb.u).max()))
    # back-solving the GBLUP fit gives SNP-BLUP's marker effects
    alpha = lmmbook.backsolve_snp_effects(gb, M)
    np.testing.assert_allclose(alpha.to_numpy(), snp.alpha,
                               atol=1e-5 * (1 + np.abs(snp.alpha).max()))
    assert snp.alpha[0] == 0.0  # the monomorphic marker
    assert snp.boundary == gb.boundary


def test_given_variances_and_prediction_of_new_animals():
    y, X, M = problem(3, 60, 40, 0.0, 0.0)
    train = np.arange(60) < 45
    fit = lmmbook.snp_blup(y[train], X[train], M[train], sigma2_alpha=0.02, sigma2_e=1.0)
    # the new animals' GEBV: centred with the training frequencies, times alpha
    p = lmmbook.allele_frequencies(M[train])
    W_new = M[~train] - 2 * p
    np.testing.assert_allclose(fit.predict(M[~train]), W_new @ fit.alpha, atol=1e-12)
    # ... which is what GBLUP gives them when they are in G (built with the training p) unphenotyped
    G = lmmbook.genomic_relationship(M, allele_freq=p)
    gb = lmmbook.gblup(np.where(train, y, np.nan), X, G,
                       sigma2_u=0.02 * 2 * np.sum(p * (1 - p)), sigma2_e=1.0)
    np.testing.assert_allclose(fit.predict(M[~train]), gb.u[~train], atol=1e-10)
    assert fit.effects().index.tolist() == list(range(40))


def test_marker_space_never_needs_an_n_by_n_matrix():
    """n >> m: the thin SVD of the 3000 x 50 markers; V would be 3000 x 3000."""
    y, X, M = problem(5, 3000, 50, 0.1, 0.0)
    fit = lmmbook.snp_blup(y, X, M)
    assert fit.gebv.shape == (3000,) and np.isfinite(fit.loglik)


def test_ids_and_names_from_a_dataframe():
    y, X, M = problem(7, 20, 10, 0.0, 0.0)
    frame = pd.DataFrame(M, index=[f"a{i}" for i in range(20)],
                         columns=[f"snp{k}" for k in range(10)])
    fit = lmmbook.snp_blup(pd.Series(y[5:], index=frame.index[5:]), X, frame)
    assert fit.ids.tolist() == frame.index.tolist() and fit.n_obs == 15
    assert fit.snp_names.tolist() == frame.columns.tolist()


def test_backsolve_refuses_or_warns_when_not_exact():
    y, X, M = problem(9, 30, 60, 0.0, 0.0)
    G = lmmbook.genomic_relationship(M)
    blended = lmmbook.gblup(y, X, 0.9 * G + 0.1 * np.eye(30), sigma2_u=1.0, sigma2_e=1.0)
    with pytest.raises(InputError, match="do not reproduce the GEBVs.*exact=False"):
        lmmbook.backsolve_snp_effects(blended, M)
    with pytest.warns(UserWarning, match="do not reproduce the GEBVs"):
        approx = lmmbook.backsolve_snp_effects(blended, M, exact=False)
    assert np.isfinite(approx).all()
    with pytest.raises(InputError, match="M has 10 rows but the GBLUP fit has 30"):
        lmmbook.backsolve_snp_effects(blended, M[:10])


def test_errors():
    y, X, M = problem(11, 20, 10, 0.0, 0.0)
    with pytest.raises(InputError, match="give both sigma2_alpha and sigma2_e"):
        lmmbook.snp_blup(y, X, M, sigma2_alpha=0.1)
    fit = lmmbook.snp_blup(y, X, M, sigma2_alpha=0.1, sigma2_e=1.0)
    with pytest.raises(InputError, match="M_new has 9 markers but the fit has 10"):
        fit.predict(M[:, :9])
    with pytest.raises(InputError, match=r"M holds 5\.0"):
        lmmbook.snp_blup(y, X, np.where(M == 2, 5, M))


# ---- back-solving for any G = W D_alpha W' / c ------------------------------------------------

def weighted_problem(seed, q, m, missing_y, missing_calls):
    """Genotypes with their true frequencies p (a base population: then G is invertible when
    m >= q) and random positive marker weights d."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(q, m)).astype(float)
    if missing_calls:
        mask = rng.random((q, m)) < missing_calls
        mask[:, 0] = False  # every individual keeps a call
        M[mask] = np.nan
    d = rng.lognormal(0.0, 1.0, m)
    W = np.where(np.isnan(M), 0.0, M - 2 * p)
    y = 1 + W @ rng.normal(0, np.sqrt(d / d.sum()), m) + rng.normal(0, 1, q)
    y[rng.random(q) < missing_y] = np.nan
    y[:3] = [1.0, 2.0, 3.0]
    X = np.column_stack([np.ones(q), rng.normal(size=q)])
    return y, X, M, p, d


def scaling_by_hand(M, method, p, d):
    """W, the diagonal of D_alpha and c, straight from the definitions (chapter 4)."""
    W = np.where(np.isnan(M), 0.0, M - 2 * p)
    het = p * (1 - p)
    poly = het > 0
    if method == "vanraden1":
        D, c = np.where(poly, 1.0, 0.0), 2 * het[poly].sum()
    else:
        D, c = np.where(poly, 1 / (2 * np.where(poly, het, 1)), 0.0), float(poly.sum())
    return W, (D if d is None else D * d), c


weighted_problems = st.builds(weighted_problem, seed=st.integers(0, 2**32 - 1),
                              q=st.integers(8, 30), m=st.sampled_from([5, 40, 90]),
                              missing_y=st.sampled_from([0.0, 0.3]),
                              missing_calls=st.sampled_from([0.0, 0.05]))


@settings(max_examples=40)
@given(weighted_problems, st.sampled_from(["vanraden1", "vanraden2"]), st.booleans(),
       st.booleans())
def test_backsolve_is_exact_for_any_weighted_G(problem_, method, weighted, base):
    """For G = W D_alpha W' / c, alpha_hat = D_alpha W' G^-1 u_hat / c gives W alpha_hat = u_hat,
    three ways: the property itself, the dense formula with np.linalg.inv(G), and SNP-BLUP with
    marker variances sigma2_u D_alpha / c solved densely."""
    y, X, M, p_true, d_true = problem_
    d = d_true if weighted else None
    p = p_true if base else None
    G = lmmbook.genomic_relationship(M, method=method, allele_freq=p, weights=d)
    fit = lmmbook.gblup(y, X, G, sigma2_u=1.3, sigma2_e=0.8)
    alpha = lmmbook.backsolve_snp_effects(fit, M, method=method, allele_freq=p, weights=d)
    freq = p_true if base else lmmbook.allele_frequencies(M)
    W, D, c = scaling_by_hand(M, method, freq, d)
    # 1. W alpha_hat = u_hat: measured up to 5e-15 relative (800 cases); 1e-12 leaves room for
    #    other BLAS
    np.testing.assert_allclose(W @ alpha.to_numpy(), fit.u, rtol=0,
                               atol=1e-12 * (1 + np.abs(fit.u).max()))
    # 2. the dense formula, where G is invertible (base frequencies and m >= q); the error of
    #    inv(G) grows with the condition number of G
    if base and M.shape[1] >= 2 * M.shape[0]:
        G_dense = (W * D) @ W.T / c
        np.testing.assert_allclose(G, G_dense, atol=1e-12 * np.abs(G_dense).max())
        dense = D * (W.T @ np.linalg.inv(G_dense) @ fit.u) / c
        scale = np.linalg.cond(G_dense) * np.abs(dense).max()
        np.testing.assert_allclose(alpha.to_numpy(), dense, rtol=0, atol=1e-13 * scale)
    # 3. SNP-BLUP with heterogeneous marker variances Var(alpha_k) = sigma2_u d_k / c
    o, keep = np.isfinite(y), D > 0
    Xo, Wo = X[o], W[o][:, keep]
    lhs = np.block([[Xo.T @ Xo, Xo.T @ Wo],
                    [Wo.T @ Xo, Wo.T @ Wo + np.diag(0.8 * c / (1.3 * D[keep]))]])
    sol = np.linalg.solve(lhs, np.r_[Xo.T @ y[o], Wo.T @ y[o]])
    np.testing.assert_allclose(sol[:2], fit.b, atol=1e-10 * (1 + np.abs(fit.b).max()))
    np.testing.assert_allclose(alpha.to_numpy()[keep], sol[2:],
                               atol=1e-10 * (1 + np.abs(sol[2:]).max()))


def test_backsolve_of_a_weighted_G_with_estimated_variances_and_a_zero_weight():
    y, X, M, p, d = weighted_problem(21, 50, 120, 0.2, 0.02)
    d[5] = 0.0  # a marker without weight carries no effect
    G = lmmbook.genomic_relationship(M, method="vanraden2", weights=d)
    fit = lmmbook.gblup(y, X, G)  # REML
    assert fit.boundary is None and fit.h2 > 0.2  # GEBVs that are not all 0
    alpha = lmmbook.backsolve_snp_effects(fit, M, method="vanraden2", weights=d)
    W = lmmbook.markers.center(M)
    np.testing.assert_allclose(W @ alpha.to_numpy(), fit.u, rtol=0,
                               atol=1e-12 * (1 + np.abs(fit.u).max()))
    assert alpha.iloc[5] == 0.0
    # unit weights are no weights
    ones = lmmbook.backsolve_snp_effects(
        lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, weights=np.ones(120)),
                      sigma2_u=1.0, sigma2_e=1.0), M, weights=np.ones(120))
    plain = lmmbook.backsolve_snp_effects(
        lmmbook.gblup(y, X, lmmbook.genomic_relationship(M), sigma2_u=1.0, sigma2_e=1.0), M)
    np.testing.assert_allclose(ones, plain, atol=1e-12 * np.abs(plain).max())


def test_backsolve_refuses_a_G_it_does_not_describe():
    y, X, M, p, d = weighted_problem(23, 30, 60, 0.0, 0.0)
    v2 = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, method="vanraden2"),
                       sigma2_u=1.0, sigma2_e=1.0)
    with pytest.raises(InputError, match=r"do not reproduce the GEBVs \(largest difference "
                       r".*not W D_alpha W' / c of method='vanraden1'.*exact=False"):
        lmmbook.backsolve_snp_effects(v2, M)  # built with VanRaden 2, told VanRaden 1
    weighted = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, weights=d), sigma2_u=1.0,
                             sigma2_e=1.0)
    with pytest.raises(InputError, match="do not reproduce the GEBVs"):
        lmmbook.backsolve_snp_effects(weighted, M)  # the weights forgotten
    yang = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, method="yang"), sigma2_u=1.0,
                         sigma2_e=1.0)
    with pytest.raises(InputError, match="do not reproduce the GEBVs"):
        lmmbook.backsolve_snp_effects(yang, M, method="vanraden2")  # Yang's diagonal differs
    with pytest.raises(InputError, match=r"method must be 'vanraden1' or 'vanraden2' .*got "
                       r"'yang'\. Yang's G is not of that form"):
        lmmbook.backsolve_snp_effects(yang, M, method="yang")
    with pytest.raises(InputError, match=r"weights must hold one weight per marker \(60\), got "
                       r"shape \(59,\)"):
        lmmbook.backsolve_snp_effects(weighted, M, weights=d[:59])
    with pytest.raises(InputError, match=r"weights must be finite and non-negative .*marker 3 "
                       r"has -1\.0"):
        lmmbook.backsolve_snp_effects(weighted, M, weights=np.where(np.arange(60) == 3, -1, d))
    with pytest.raises(InputError, match=r"marker 0 has nan"):
        lmmbook.backsolve_snp_effects(weighted, M, weights=np.r_[np.nan, d[1:]])
    with pytest.raises(InputError, match=r"g_weight must be in \(0, 1\], got 1\.5"):
        lmmbook.backsolve_snp_effects(weighted, M, weights=d, g_weight=1.5)
    # a blend of the weighted G with A (here I): the marker part, exactly
    blended = lmmbook.gblup(y, X, 0.9 * lmmbook.genomic_relationship(M, weights=d)
                            + 0.1 * np.eye(30), sigma2_u=1.0, sigma2_e=1.0)
    part = lmmbook.backsolve_snp_effects(blended, M, weights=d, g_weight=0.9)
    polygenic = 0.1 * blended.sigma2_u * np.eye(30) @ np.nan_to_num(blended.v_inv_residual)
    W = lmmbook.markers.center(M)
    np.testing.assert_allclose(W @ part.to_numpy() + polygenic, blended.u, atol=1e-12)
