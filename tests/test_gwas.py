import dataclasses
import importlib
import tracemalloc

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


# --- windows: the share of the GEBVs' variance per window of markers (Wang et al. 2012) ---

LENGTHS = {"300kb": 3e5, "1Mb": 1e6, "2.5MB": 2.5e6}


def random_map(rng, m, n_chromosomes):
    """A map of m markers on n_chromosomes chromosomes of random sizes, positions sorted within
    each (ties allowed), chromosome names as a .bim gives them (str)."""
    cuts = np.sort(rng.choice(np.arange(1, m), n_chromosomes - 1, replace=False))
    sizes = np.diff(np.r_[0, cuts, m])
    chromosome = np.repeat([str(k + 1) for k in range(n_chromosomes)], sizes)
    position = np.concatenate([np.sort(rng.integers(1, 6_000_000, size)) for size in sizes])
    return pd.DataFrame({"chromosome": chromosome, "name": [f"s{k}" for k in range(m)],
                         "cM": 0.0, "position": position, "A1": "A", "A2": "G"})


def reference_windows(chromosome, position, window):
    """The windows as lists of marker indices, one marker at a time: a new window at a new
    chromosome, after `window` markers (an int) or at a new bin of the length in bp."""
    windows = []
    for k in range(len(chromosome)):
        new = k == 0 or chromosome[k] != chromosome[k - 1]
        if isinstance(window, int):
            new = new or len(windows[-1]) == window
        else:
            width = LENGTHS[window]
            new = new or position[k] // width != position[k - 1] // width
        if new:
            windows.append([])
        windows[-1].append(k)
    return windows


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(15, 40), m=st.sampled_from([8, 30, 90]),
       missing_y=st.sampled_from([0.0, 0.3]), n_chromosomes=st.integers(1, 3),
       window=st.one_of(st.integers(1, 12), st.sampled_from(sorted(LENGTHS))),
       with_map=st.booleans())
def test_windows_are_the_dense_computation(seed, n, m, missing_y, n_chromosomes, window,
                                           with_map):
    y, X, M, fit = problem(seed, n, m, missing_y)
    rng = np.random.default_rng(seed)
    snps = random_map(rng, m, n_chromosomes)
    if not with_map:  # a plain array: one chromosome, no positions; only windows of markers
        window = window if isinstance(window, int) else 5
        snps["chromosome"], snps["position"] = "all", 0
    genotypes = GenotypeData(M=M, ids=np.array([f"i{i}" for i in range(n)]), snps=snps)
    res = lmmbook.gwas(fit, genotypes if with_map else M, window=window)
    assert isinstance(res, lmmbook.GWASResult)
    pd.testing.assert_frame_equal(res.snps, lmmbook.gwas(fit, genotypes if with_map else M))
    # dense: alpha_hat = (sigma2_u / c) W_o' P y_o by explicit inverses, the windows one by one
    observed = np.isfinite(y)
    P = dense_projection(fit, X, lmmbook.genomic_relationship(M), observed)
    freq = M.mean(axis=0) / 2
    W = M - 2 * freq
    alpha = fit.sigma2_u / (2 * np.sum(freq * (1 - freq))) * W[observed].T @ P @ y[observed]
    u = fit.u  # the fit's GEBVs
    windows = reference_windows(snps["chromosome"].to_numpy(), snps["position"].to_numpy(),
                                window)
    out = res.windows
    assert len(out) == len(windows)
    assert out["n_snps"].tolist() == [len(k) for k in windows]
    assert out["first_snp"].tolist() == [k[0] if not with_map else f"s{k[0]}" for k in windows]
    assert out["last_snp"].tolist() == [k[-1] if not with_map else f"s{k[-1]}" for k in windows]
    if with_map:
        assert out["chromosome"].tolist() == [snps["chromosome"][k[0]] for k in windows]
        assert out["start"].tolist() == [snps["position"][k[0]] for k in windows]
        assert out["end"].tolist() == [snps["position"][k[-1]] for k in windows]
        # no window crosses a chromosome
        assert all(len(set(snps["chromosome"][k])) == 1 for k in windows)
    else:
        assert "chromosome" not in out.columns and "start" not in out.columns
    parts = np.column_stack([W[:, k] @ alpha[k] for k in windows])
    variance = np.var(parts, axis=0, ddof=1)
    var_u = np.var(u, ddof=1)
    if var_u == 0:  # REML at sigma2_u = 0: every part is 0, no share
        assert out["share"].isna().all() and out["variance_pct"].isna().all()
        np.testing.assert_array_equal(out["variance"], 0.0)
        return
    share = np.array([np.cov(parts[:, r], u)[0, 1] for r in range(len(windows))]) / var_u
    # the library divides by Var(W alpha_hat), which equals Var(u_hat) to the 1e-6 relative
    # tolerance backsolve_snp_effects accepts; on 180 such problems it was 7e-16 relative at most
    np.testing.assert_allclose(out["variance"], variance, rtol=1e-8, atol=1e-12 * var_u)
    np.testing.assert_allclose(out["variance_pct"], 100 * variance / var_u, rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_allclose(out["share"], share, rtol=1e-8, atol=1e-10)
    assert abs(out["share"].sum() - 1) < 1e-10  # u_hat = sum of the windows' parts
    np.testing.assert_allclose(parts.sum(axis=1), u, atol=1e-8 * (1 + np.abs(u).max()))


def test_windows_split_at_chromosome_boundaries():
    y, X, M, fit = problem(11, 30, 12, 0.0)
    snps = pd.DataFrame({"chromosome": ["1"] * 7 + ["2"] * 5, "name": [f"s{k}" for k in range(12)],
                         "cM": 0.0, "position": np.r_[np.arange(7), np.arange(5)] * 1000,
                         "A1": "A", "A2": "G"})
    data = GenotypeData(M=M, ids=np.array([f"i{i}" for i in range(30)]), snps=snps)
    out = lmmbook.gwas(fit, data, window=3).windows
    assert out.columns.tolist() == ["chromosome", "first_snp", "last_snp", "start", "end",
                                    "n_snps", "variance", "variance_pct", "share"]
    assert out["chromosome"].tolist() == ["1", "1", "1", "2", "2"]
    assert out["n_snps"].tolist() == [3, 3, 1, 3, 2]  # each chromosome's last window shorter
    assert out["first_snp"].tolist() == ["s0", "s3", "s6", "s7", "s10"]
    assert out["last_snp"].tolist() == ["s2", "s5", "s6", "s9", "s11"]
    assert out["start"].tolist() == [0, 3000, 6000, 0, 3000]
    assert out.index.name == "window" and out.index.tolist() == list(range(5))
    # a window larger than a chromosome: one window per chromosome
    assert lmmbook.gwas(fit, data, window=100).windows["n_snps"].tolist() == [7, 5]
    # one marker per window: the marker's variance, var(w_k) alpha_k^2
    single = lmmbook.gwas(fit, data, window=1).windows
    alpha = lmmbook.backsolve_snp_effects(fit, M).to_numpy()
    np.testing.assert_allclose(single["variance"], np.var(M, axis=0, ddof=1) * alpha**2,
                               rtol=1e-10, atol=1e-15)
    # the windows do not depend on the test: single_marker gives the same frame
    pd.testing.assert_frame_equal(lmmbook.gwas(fit, data, window=3, method="single_marker")
                                  .windows, out)


def test_windows_in_base_pairs():
    y, X, M, fit = problem(12, 30, 8, 0.0)
    position = [100, 900_000, 1_000_000, 1_500_000, 2_999_999, 5, 2_000_000, 2_000_001]
    snps = pd.DataFrame({"chromosome": ["1"] * 5 + ["X"] * 3, "name": [f"s{k}" for k in range(8)],
                         "cM": 0.0, "position": position, "A1": "A", "A2": "G"})
    data = GenotypeData(M=M, ids=np.array([f"i{i}" for i in range(30)]), snps=snps)
    for window in ("1Mb", "1mb", "1000kb", "1000000bp", " 1 Mb "):
        out = lmmbook.gwas(fit, data, window=window).windows
        # bins [0, 1Mb), [1Mb, 2Mb), [2Mb, 3Mb) of each chromosome; empty bins are no windows
        assert out["n_snps"].tolist() == [2, 2, 1, 1, 2], window
        assert out["chromosome"].tolist() == ["1", "1", "1", "X", "X"]
        assert out["start"].tolist() == [100, 1_000_000, 2_999_999, 5, 2_000_000]
        assert out["end"].tolist() == [900_000, 1_500_000, 2_999_999, 5, 2_000_001]
    assert lmmbook.gwas(fit, data, window="500kb").windows["n_snps"].tolist() == [1, 1, 1, 1,
                                                                                  1, 1, 2]
    assert lmmbook.gwas(fit, data, window="1.5Mb").windows["n_snps"].tolist() == [3, 2, 1, 2]
    assert lmmbook.gwas(fit, data, window="10Mb").windows["n_snps"].tolist() == [5, 3]


def test_window_errors():
    y, X, M, fit = problem(13, 30, 12, 0.0)
    ids = np.array([f"i{i}" for i in range(30)])
    snps = pd.DataFrame({"chromosome": ["1"] * 6 + ["2"] * 6, "name": [f"s{k}" for k in range(12)],
                         "cM": 0.0, "position": np.tile(np.arange(6) * 1000, 2), "A1": "A",
                         "A2": "G"})
    for bad in (0, -3):
        with pytest.raises(InputError, match=f"at least 1 marker, got {bad}"):
            lmmbook.gwas(fit, M, window=bad)
    for bad in (2.5, True, [3]):
        with pytest.raises(InputError, match="number of markers \\(an int >= 1\\) or a length"):
            lmmbook.gwas(fit, M, window=bad)
    for bad in ("1 megabase", "Mb", "-1Mb", "3"):
        with pytest.raises(InputError, match="is not a length"):
            lmmbook.gwas(fit, M, window=bad)
    pd.testing.assert_frame_equal(lmmbook.gwas(fit, M, window=np.int64(4)).windows,
                                  lmmbook.gwas(fit, M, window=4).windows)
    with pytest.raises(InputError, match="shorter than one base pair"):
        lmmbook.gwas(fit, M, window="0bp")
    # a length needs positions: none for an array, a DataFrame, or a map with positions all 0
    message = "window of 1000000 bp needs the markers' positions"
    with pytest.raises(InputError, match=message):
        lmmbook.gwas(fit, M, window="1Mb")
    with pytest.raises(InputError, match=message):
        lmmbook.gwas(fit, pd.DataFrame(M, columns=snps["name"]), window="1Mb")
    with pytest.raises(InputError, match=message):
        lmmbook.gwas(fit, GenotypeData(M=M, ids=ids, snps=snps.assign(position=0)),
                     window="1Mb")
    # a chromosome that comes back, and a position that goes back
    shuffled = snps.assign(chromosome=["1"] * 3 + ["2"] * 6 + ["1"] * 3)
    with pytest.raises(InputError, match="chromosome '1' comes back at marker 's9' \\(column 9\\)"):
        lmmbook.gwas(fit, GenotypeData(M=M, ids=ids, snps=shuffled), window=2)
    unsorted = snps.assign(position=np.r_[0, 2000, 1000, 3000, 4000, 5000, np.arange(6) * 1000])
    with pytest.raises(InputError, match="marker 's2' \\(column 2\\), 1000, is before"):
        lmmbook.gwas(fit, GenotypeData(M=M, ids=ids, snps=unsorted), window="1kb")
    # a position falling back at a new chromosome is fine
    assert len(lmmbook.gwas(fit, GenotypeData(M=M, ids=ids, snps=snps), window="2kb")
               .windows) == 6


# --- the fit's own eigendecomposition, and the markers streamed in blocks (issue 16: speed) ---

gwas_module = importlib.import_module("lmmbook.gwas")


def assert_same_tests(a, b, rtol):
    """Two frames of marker tests equal to rtol (NaN in the same places), the effects and SEs
    relative to their largest value (an effect near 0 has no relative precision)."""
    assert a.columns.tolist() == b.columns.tolist() and a.index.equals(b.index)
    for column in ("effect", "se", "z", "p"):
        x, y = a[column].to_numpy(), b[column].to_numpy()
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        scale = np.nanmax(np.abs(y)) if np.isfinite(y).any() else 1.0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, equal_nan=True)


@pytest.mark.parametrize("seed, missing_y, estimate",
                         [(21, 0.0, True), (22, 0.3, True), (23, 0.0, False), (24, 0.3, False)])
def test_kept_rotation_gives_what_a_fresh_one_gives(seed, missing_y, estimate):
    """gblup keeps its eigendecomposition of G_oo; gwas reuses it, or (keep_rotation=False)
    computes it again from the markers. The two eigenbases differ at round-off (G formed in
    single-precision integers for the fit, streamed in double for gwas), the tests by 1e-15
    (measured); 1e-10 leaves room for other CPUs. Also at given variances."""
    y, X, M, fit = problem(seed, 60, 90, missing_y, estimate)
    variances = {} if estimate else {"sigma2_u": 0.7, "sigma2_e": 1.3}
    G = lmmbook.genomic_relationship(M)
    fresh = lmmbook.gblup(y, X, G, keep_rotation=False, **variances)
    assert fit.rotation is not None and fresh.rotation is None
    assert fit.rotation.U.shape == (np.isfinite(y).sum(),) * 2
    np.testing.assert_array_equal(fit.u, fresh.u)
    assert (fit.sigma2_u, fit.sigma2_e) == (fresh.sigma2_u, fresh.sigma2_e)
    for method in ("backsolve", "single_marker"):
        assert_same_tests(lmmbook.gwas(fit, M, method=method),
                          lmmbook.gwas(fresh, M, method=method), 1e-10)
    kept, again = lmmbook.gwas(fit, M, window=7), lmmbook.gwas(fresh, M, window=7)
    pd.testing.assert_frame_equal(kept.windows, again.windows, rtol=1e-10)
    # and both are the dense formula
    observed = np.isfinite(y)
    P = dense_projection(fit, X, G, observed)
    freq = M.mean(axis=0) / 2
    W = (M - 2 * freq)[observed]
    c = 2 * np.sum(freq * (1 - freq))
    effect = fit.sigma2_u / c * W.T @ P @ y[observed]
    for out in (kept.snps, again.snps):
        np.testing.assert_allclose(out["effect"].to_numpy()[1:], effect[1:], rtol=1e-8,
                                   atol=1e-10 * np.abs(effect).max())


@pytest.mark.parametrize("keep", [True, False])
def test_markers_streamed_in_blocks_give_the_one_block_result(monkeypatch, keep):
    """Blocks of 1, 4, 13 and 64 markers (centred, multiplied, dropped) give what one block of
    all 90 gives: tests, effects and windows (with missing phenotypes and a missing call)."""
    y, X, M, _ = problem(31, 50, 90, 0.3)
    M[3, 5] = np.nan
    G = lmmbook.genomic_relationship(M)
    fit = lmmbook.gblup(y, X, G, keep_rotation=keep)
    monkeypatch.setattr(gwas_module, "_CHUNK", 10**6)
    one = lmmbook.gwas(fit, M, window=6)
    single = lmmbook.gwas(fit, M, method="single_marker")
    for chunk in (1, 4, 13, 64):
        monkeypatch.setattr(gwas_module, "_CHUNK", chunk)
        out = lmmbook.gwas(fit, M, window=6)
        assert_same_tests(out.snps, one.snps, 1e-10)
        pd.testing.assert_frame_equal(out.windows, one.windows, rtol=1e-10)
        assert_same_tests(lmmbook.gwas(fit, M, method="single_marker"), single, 1e-10)
    alpha = lmmbook.backsolve_snp_effects(fit, M).to_numpy()
    np.testing.assert_allclose(one.snps["effect"].to_numpy()[1:], alpha[1:], rtol=1e-12,
                               atol=1e-14)


def test_no_copy_of_the_markers(monkeypatch):
    """Blocks of 128 markers: what gwas allocates (tracemalloc sees NumPy's arrays) stays far
    below one copy of the 300 x 8000 float64 markers (19 MB): 0.11 and 0.15 of it with and
    without the kept rotation (measured; a few blocks of 300 x 128, the n x n rotation, the
    result's m rows), so a quarter allows for change; an n x m copy (W, W_o, as in
    back-solving before) would exceed it alone."""
    rng = np.random.default_rng(41)
    M = rng.binomial(2, rng.uniform(0.05, 0.95, 8000), size=(300, 8000)).astype(float)
    y = M[:, 10] - M[:, 10].mean() + rng.normal(0, 1, 300)
    y[::7] = np.nan
    X = np.ones((300, 1))
    G = lmmbook.genomic_relationship(M)
    monkeypatch.setattr(gwas_module, "_CHUNK", 128)
    for keep in (True, False):
        fit = lmmbook.gblup(y, X, G, keep_rotation=keep)
        lmmbook.gwas(fit, M, window=100)  # warm up (numba's first calls)
        tracemalloc.start()
        try:
            lmmbook.gwas(fit, M, window=100)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < M.nbytes / 4, (keep, peak / M.nbytes)


def test_refuses_a_rotation_of_another_g():
    """A fit whose GEBVs are right but whose kept eigendecomposition is of another G (here
    VanRaden's second) is refused: the eigenvalues are checked against the markers."""
    y, X, M, fit = problem(32, 40, 30, 0.0)
    other = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M, method="vanraden2"))
    altered = dataclasses.replace(fit, rotation=other.rotation)
    with pytest.raises(InputError, match="eigendecomposition of G_oo is not that of W W' / c"):
        lmmbook.gwas(altered, M)
    pd.testing.assert_frame_equal(lmmbook.gwas(dataclasses.replace(fit, rotation=None), M),
                                  lmmbook.gwas(fit, M), rtol=1e-10)


def test_weighted_gblup_keeps_the_rotation_of_its_plain_fit_only():
    """weighted_gblup keeps many fits: only the first, plain GBLUP (which gwas can test), keeps
    its eigenvectors, and gwas of it is gwas of gblup."""
    y, X, M, fit = problem(33, 40, 30, 0.2, estimate=False)
    res = lmmbook.weighted_gblup(y, X, M, iterations=3, sigma2_u=0.7, sigma2_e=1.3)
    assert res.fits[0].rotation is not None
    assert all(f.rotation is None for f in res.fits[1:])
    assert_same_tests(lmmbook.gwas(res.fits[0], M), lmmbook.gwas(fit, M), 1e-10)
