import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import lmmbook
from lmmbook.errors import InputError, ShapeMismatchError
from lmmbook.readers import GenotypeData


def problem(seed, n, m, missing_y, estimate=True):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, freq, size=(n, m)).astype(float)
    M[:, 0] = 0.0  # a monomorphic marker
    W = M - M.mean(axis=0)
    y = 1 + W @ rng.normal(0, 0.5 / np.sqrt(m), m) + rng.normal(0, 1, n)
    y[rng.random(n) < missing_y] = np.nan
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = lmmbook.genomic_relationship(M)
    variances = {} if estimate else {"sigma2_u": 0.7, "sigma2_e": 1.3}
    fit = lmmbook.gblup(y, X, G, **variances)
    return y, X, M, fit


def dense_projection(fit, X, G, observed):
    """P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1 over the phenotyped rows, by explicit inverses."""
    V = fit.sigma2_u * G[np.ix_(observed, observed)] + fit.sigma2_e * np.eye(observed.sum())
    Xo = X[observed]
    if fit.sigma2_e == 0:  # REML's boundary: V is singular, P = N (N'V N)^-1 N' with N'X = 0
        N = np.linalg.svd(Xo, full_matrices=True)[0][:, Xo.shape[1]:]
        return N @ np.linalg.inv(N.T @ V @ N) @ N.T
    Vi = np.linalg.inv(V)
    return Vi - Vi @ Xo @ np.linalg.inv(Xo.T @ Vi @ Xo) @ Xo.T @ Vi


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(15, 40), m=st.sampled_from([8, 30, 90]),
       missing_y=st.sampled_from([0.0, 0.3]), estimate=st.booleans())
def test_backsolve_is_the_dense_formula(seed, n, m, missing_y, estimate):
    y, X, M, fit = problem(seed, n, m, missing_y, estimate)
    observed = np.isfinite(y)
    G = lmmbook.genomic_relationship(M)
    P = dense_projection(fit, X, G, observed)
    freq = M.mean(axis=0) / 2
    W = (M - 2 * freq)[observed]
    c = 2 * np.sum(freq * (1 - freq))
    effect = fit.sigma2_u / c * W.T @ P @ y[observed]
    with np.errstate(invalid="ignore"):  # round-off below 0 where w'Pw = 0 (not compared)
        se = fit.sigma2_u / c * np.sqrt(np.diag(W.T @ P @ W))
    out = lmmbook.gwas(fit, M)
    # markers constant on the phenotyped rows (the monomorphic one among them) are explained by
    # the intercept: w'Pw = 0, NaN; the others are tested
    constant = np.ptp(M[observed], axis=0) == 0
    assert constant[0]
    np.testing.assert_array_equal(out["se"].isna().to_numpy(), constant)
    poly = np.flatnonzero(~constant)
    scale = 1 + np.abs(effect[poly]).max()
    np.testing.assert_allclose(out["effect"].to_numpy()[poly], effect[poly], rtol=1e-8,
                               atol=1e-10 * scale)
    if fit.sigma2_u > 1e-8:  # at sigma2_u = 0 both effects and SEs are 0
        np.testing.assert_allclose(out["se"].to_numpy()[poly], se[poly], rtol=1e-7)
        z = effect[poly] / se[poly]
        np.testing.assert_allclose(out["z"].to_numpy()[poly], z, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(out["p"].to_numpy()[poly], 2 * stats.norm.sf(np.abs(z)),
                                   rtol=1e-6, atol=1e-12)


def test_backsolve_effects_are_backsolve_snp_effects():
    y, X, M, fit = problem(3, 60, 120, 0.2)
    alpha = lmmbook.backsolve_snp_effects(fit, M)
    out = lmmbook.gwas(fit, M)
    np.testing.assert_allclose(out["effect"].to_numpy()[1:], alpha.to_numpy()[1:], rtol=1e-12,
                               atol=1e-14)


def gls_loop(y, X, M, fit):
    """Each marker as a fixed effect: GLS of y on [X, m_k] (raw counts) with V = the fit's, by
    statsmodels with the scale held at 1 (the variances are those of the null fit)."""
    observed = np.isfinite(y)
    G = lmmbook.genomic_relationship(M)
    V = fit.sigma2_u * G[np.ix_(observed, observed)] + fit.sigma2_e * np.eye(observed.sum())
    rows = []
    for k in range(M.shape[1]):
        if np.ptp(M[observed, k]) == 0:  # the intercept's column: not estimable
            rows.append((np.nan, np.nan))
            continue
        design = np.column_stack([X[observed], M[observed, k]])
        res = sm.GLS(y[observed], design, sigma=V).fit(cov_type="fixed scale",
                                                       cov_kwds={"scale": 1.0})
        rows.append((res.params[-1], res.bse[-1]))
    return np.array(rows)


@pytest.mark.parametrize("seed, missing_y", [(5, 0.0), (6, 0.3)])
def test_single_marker_is_a_gls_loop(seed, missing_y):
    y, X, M, fit = problem(seed, 50, 40, missing_y)
    ref = gls_loop(y, X, M, fit)
    out = lmmbook.gwas(fit, M, method="single_marker")
    assert out.iloc[0].isna().all()  # monomorphic: in the column space of the intercept
    np.testing.assert_allclose(out["effect"].to_numpy()[1:], ref[1:, 0], rtol=1e-8)
    np.testing.assert_allclose(out["se"].to_numpy()[1:], ref[1:, 1], rtol=1e-8)
    z = ref[1:, 0] / ref[1:, 1]
    np.testing.assert_allclose(out["p"].to_numpy()[1:], 2 * stats.norm.sf(np.abs(z)), rtol=1e-6)


@pytest.fixture(scope="module")
def qtl_population():
    pop = lmmbook.simulate_population(2, 100, 10, n_snp=400, n_qtl=3, h2=0.6, seed=2)
    M = pop.genotype_frame()
    y = pop.phenotypes["y"].to_numpy()
    X = np.ones((len(y), 1))
    fit = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M))
    return pop, M, y, X, fit


def test_backsolve_agrees_with_the_single_marker_gls(qtl_population):
    """Back-solved p-values against the single-marker GLS of statsmodels on data with large QTL.
    With both variances held at the null fit's, the two statistics are one, w'Py / sqrt(w'Pw)
    (Frisch-Waugh-Lovell in the metric V^-1): on this population -log10 p differed by 4e-14 at
    most (measured; largest -log10 p 6.0) and correlated to 1 - 2e-16. The bound 1e-8 leaves
    room for BLAS round-off on other CPUs; the effects and SEs themselves (where a wrong
    sigma2_u / c would show, since it cancels in z) are checked against the dense formula."""
    pop, M, y, X, fit = qtl_population
    ref = gls_loop(y, X, M.to_numpy(), fit)
    bs = lmmbook.gwas(fit, M)
    poly = bs["p"].notna().to_numpy()
    logp_ref = -np.log10(2 * stats.norm.sf(np.abs(ref[poly, 0] / ref[poly, 1])))
    logp = -np.log10(bs["p"].to_numpy()[poly])
    np.testing.assert_allclose(logp, logp_ref, rtol=1e-8, atol=1e-8)
    assert np.corrcoef(logp, logp_ref)[0, 1] > 1 - 1e-10
    # a QTL is found: the smallest p sits within two markers of one
    top = M.columns.get_loc(bs["p"].idxmin())
    assert min(abs(top - M.columns.get_loc(q)) for q in pop.qtl_effects.index) <= 2


def test_planted_effect_gets_a_tiny_p(qtl_population):
    pop, M, y, X, _ = qtl_population
    k = 57
    w = M.iloc[:, k].to_numpy() - M.iloc[:, k].mean()
    y_planted = y + 3.0 * np.nanstd(y) * w / np.std(w)
    fit = lmmbook.gblup(y_planted, X, lmmbook.genomic_relationship(M))
    for method in ("backsolve", "single_marker"):
        out = lmmbook.gwas(fit, M, method=method)
        assert out["p"].iloc[k] < 1e-20
        assert out["p"].idxmin() == M.columns[k]
        assert np.median(out["p"].dropna()) > 1e-3  # not every marker


def test_marker_map_of_a_reader():
    y, X, M, fit = problem(8, 30, 12, 0.0)
    snps = pd.DataFrame({"chromosome": ["1"] * 6 + ["2"] * 6, "name": [f"s{k}" for k in range(12)],
                         "cM": 0.0, "position": np.arange(12) * 1000, "A1": "A", "A2": "G"})
    data = GenotypeData(M=M, ids=np.array([f"i{i}" for i in range(30)]), snps=snps)
    out = lmmbook.gwas(fit, data)
    assert out.columns.tolist() == ["chromosome", "position", "effect", "se", "z", "p"]
    assert out.index.tolist() == snps["name"].tolist()
    assert out["chromosome"].tolist() == snps["chromosome"].tolist()
    frame = pd.DataFrame(M, columns=snps["name"])
    plain = lmmbook.gwas(fit, frame)
    assert plain.columns.tolist() == ["effect", "se", "z", "p"]
    pd.testing.assert_frame_equal(plain, out[["effect", "se", "z", "p"]])


def test_errors():
    y, X, M, fit = problem(9, 30, 20, 0.0)
    with pytest.raises(ShapeMismatchError, match="M has 29 rows but the GBLUP fit has 30"):
        lmmbook.gwas(fit, M[:-1])
    other = np.random.default_rng(1).binomial(2, 0.5, size=M.shape).astype(float)
    with pytest.raises(InputError, match="do not reproduce the GEBVs"):
        lmmbook.gwas(fit, other)
    fit2 = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, method="vanraden2"))
    with pytest.raises(InputError, match="do not reproduce the GEBVs"):
        lmmbook.gwas(fit2, M)
    with pytest.raises(InputError, match="method must be 'backsolve' or 'single_marker'"):
        lmmbook.gwas(fit, M, method="emmax")
    with pytest.raises(InputError, match="result of lmmbook.gblup"):
        lmmbook.gwas(lmmbook.snp_blup(y, X, M), M)
