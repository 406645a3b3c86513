"""Haseman-Elston regression with randomised traces (lmmbook.haseman_elston): against a slow dense
reference with the explicit G, P and V; the random traces against the exact ones within their Monte
Carlo error; unbiasedness and the sampling standard errors over replicates of y simulated from the
model; chunked PLINK files equal to the dense matrix; properties; REML on the same data;
refusals."""

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import (
    InputError,
    NonFiniteError,
    RankDeficientError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
)


def genotypes(n, m, seed, missing=0.0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.5, m)
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    if missing:
        M[rng.random((n, m)) < missing] = np.nan
        M[0] = np.where(np.isnan(M[0]), 1.0, M[0])  # every marker keeps a call
    return M


def phenotypes(M, X, sigma2_u, sigma2_e, seed, allele_freq=None):
    """y = X b + g + e with g ~ N(0, sigma2_u G) exactly: g = W alpha, alpha ~ N(0, sigma2_u/c)."""
    rng = np.random.default_rng(seed)
    W = lmmbook.markers.center(M, allele_freq)
    p = lmmbook.allele_frequencies(M) if allele_freq is None else np.asarray(allele_freq)
    c = 2 * np.sum(p * (1 - p))
    alpha = rng.normal(0, np.sqrt(sigma2_u / c), M.shape[1])
    b = rng.normal(0, 1, X.shape[1])
    return X @ b + W @ alpha + rng.normal(0, np.sqrt(sigma2_e), M.shape[0])


def dense_reference(y, X, M, allele_freq=None, at=None):
    """The moment equations and their sampling covariance with the explicit n x n G, P and V:
    Cov(y'By, y'Cy) = 2 tr(B V C V) for Gaussian y, B and C the matrices of the two moments, V at
    the estimates (negative ones as 0) or at the variances ``at``."""
    G = lmmbook.genomic_relationship(M, allele_freq=allele_freq)
    o = np.isfinite(y)
    G_o, X_o, y_o = G[np.ix_(o, o)], X[o], y[o]
    P = np.eye(o.sum()) - X_o @ np.linalg.inv(X_o.T @ X_o) @ X_o.T
    PGP = P @ G_o @ P
    S = np.array([[np.trace(PGP @ G_o), np.trace(P @ G_o)], [np.trace(P @ G_o), np.trace(P)]])
    q = np.array([y_o @ PGP @ y_o, y_o @ P @ y_o])
    theta = np.linalg.solve(S, q)
    su, se = np.clip(theta, 0, None) if at is None else at
    V = su * G_o + se * np.eye(o.sum())
    mats = (PGP, P)
    Vq = np.array([[2 * np.trace(B @ V @ C @ V) for C in mats] for B in mats])
    S_inv = np.linalg.inv(S)
    return theta, S_inv @ Vq @ S_inv, np.trace(PGP @ PGP)


@pytest.mark.parametrize("n, m, p, missing_y, missing_calls", [
    (120, 60, 1, 0.0, 0.0),    # m < n: the m x m Gram
    (60, 150, 2, 0.2, 0.02),   # n < m: the n x n A, records and calls missing
    (90, 90, 3, 0.1, 0.0),
])
def test_exact_traces_equal_the_dense_reference(n, m, p, missing_y, missing_calls):
    M = genotypes(n, m, seed=n + m, missing=missing_calls)
    rng = np.random.default_rng(p)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = phenotypes(M, X, 1.5, 1.0, seed=1)
    y[rng.random(n) < missing_y] = np.nan
    theta, cov, _ = dense_reference(y, X, M)
    fit = lmmbook.he_regression(y, X, M, traces="exact")
    # several n x n products in the reference: agreement to round-off of sums over ~1e4 terms
    np.testing.assert_allclose([fit.sigma2_u, fit.sigma2_e], theta, rtol=1e-10)
    np.testing.assert_allclose(fit.covariance, cov, rtol=1e-9)
    assert fit.n_obs == np.isfinite(y).sum() and fit.n_fixed == p and fit.n_probes == 0
    assert fit.sigma2_u_mc_se == fit.sigma2_e_mc_se == fit.h2_mc_se == 0.0
    np.testing.assert_allclose(fit.sigma2_u_se, np.sqrt(cov[0, 0]), rtol=1e-9)
    assert fit.h2 == pytest.approx(fit.sigma2_u / (fit.sigma2_u + fit.sigma2_e), rel=1e-12)
    assert fit.sigma2_alpha == pytest.approx(fit.sigma2_u / fit.c, rel=1e-12)
    _, cov_at, _ = dense_reference(y, X, M, at=(2.0, 0.5))
    np.testing.assert_allclose(fit.covariance_at(2.0, 0.5), cov_at, rtol=1e-9)


def test_given_allele_frequencies_leave_monomorphic_markers_out_as_genomic_relationship_does():
    M = genotypes(80, 40, seed=3)
    p = lmmbook.allele_frequencies(M)
    p[:3] = [0.0, 1.0, 0.3]  # two markers monomorphic under the given p: not in G
    X = np.ones((80, 1))
    y = phenotypes(M, X, 1.0, 1.0, seed=2)
    theta, cov, _ = dense_reference(y, X, M, allele_freq=p)
    fit = lmmbook.he_regression(y, X, M, traces="exact", allele_freq=p)
    np.testing.assert_allclose([fit.sigma2_u, fit.sigma2_e], theta, rtol=1e-10)
    assert fit.n_markers == 38
    assert fit.c == pytest.approx(2 * np.sum(p[2:] * (1 - p[2:])), rel=1e-12)


def test_random_traces_agree_with_the_exact_ones_within_their_monte_carlo_error():
    M = genotypes(300, 200, seed=5)
    X = np.ones((300, 1))
    y = phenotypes(M, X, 2.0, 1.0, seed=3)
    exact = lmmbook.he_regression(y, X, M, traces="exact")
    fits = [lmmbook.he_regression(y, X, M, probes=30, seed=s) for s in range(40)]
    estimates = np.array([f.sigma2_u for f in fits])
    mc_se = np.array([f.sigma2_u_mc_se for f in fits])
    # every single fit within 4 of its own Monte Carlo SE (40 fits: a 4-sigma miss has p ~ 0.003)
    assert np.all(np.abs(estimates - exact.sigma2_u) < 4 * mc_se)
    # the reported Monte Carlo SE is the spread over seeds (40 seeds: the sd is known to ~11 %)
    assert 0.7 < estimates.std(ddof=1) / mc_se.mean() < 1.4
    # tr(A) is exact, tr(A^2) within its error, and the moments do not depend on the probes
    for f in fits[:5]:
        assert f.traces[0] == pytest.approx(exact.traces[0], rel=1e-12)
        assert abs(f.traces[1] - exact.traces[1]) < 4 * f.trace_mc_se[1]
        np.testing.assert_allclose(f.moments, exact.moments, rtol=1e-12)
    # more probes, less Monte Carlo error: 1 / sqrt(probes)
    few, many = (lmmbook.he_regression(y, X, M, probes=b, seed=1) for b in (25, 400))
    assert 0.15 < many.sigma2_u_mc_se / few.sigma2_u_mc_se < 0.4  # sqrt(25 / 400) = 0.25
    # the sampling SE hardly depends on the probes (tr(A^3), tr(A^4) enter it, not the estimate)
    assert many.sigma2_u_se == pytest.approx(exact.sigma2_u_se, rel=0.1)


def test_unbiased_and_standard_errors_right_over_replicates_of_y():
    """y simulated 200 times from the model with the same genotypes (the SE is for y given the
    genotypes): the mean of the estimates is the truth within its standard error, and the spread
    of the estimates is the reported sampling SE (2,000 replicates gave 0.258 and 0.155 against
    0.260 and 0.156 from the formula, on 400 animals)."""
    M = genotypes(300, 200, seed=11)
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(300), rng.normal(size=300)])
    truth = np.array([1.2, 0.8])
    fits = [lmmbook.he_regression(phenotypes(M, X, *truth, seed=r), X, M, traces="exact")
            for r in range(200)]
    est = np.array([[f.sigma2_u, f.sigma2_e] for f in fits])
    se = np.array([[f.sigma2_u_se, f.sigma2_e_se] for f in fits])
    mean_error = est.std(axis=0, ddof=1) / np.sqrt(len(fits))
    assert np.all(np.abs(est.mean(axis=0) - truth) < 3 * mean_error)
    # the SE at the estimates (its median; it varies with them); the sd is known to 5 %, so
    # 3 of its SE is 0.15
    assert np.all(np.abs(est.std(axis=0, ddof=1) / np.median(se, axis=0) - 1) < 0.15)
    # and the SE at the true variances (covariance_at), which does not vary with the estimates
    at_truth = np.sqrt(np.diag(fits[0].covariance_at(*truth)))
    assert np.all(np.abs(est.std(axis=0, ddof=1) / at_truth - 1) < 0.15)
    h2 = np.array([f.h2 for f in fits])
    assert abs(np.median(h2) - truth[0] / truth.sum()) < 3 * h2.std() / np.sqrt(len(h2))


def write_bed(path, M):
    n, m = M.shape
    to_bed(path, M.astype(np.float32), properties={
        "iid": [f"a{i}" for i in range(n)], "sid": [f"s{j}" for j in range(m)]})
    return path


@pytest.mark.parametrize("chunk", [7, 64, 500])
def test_chunked_plink_files_give_the_dense_result(tmp_path, chunk):
    M = genotypes(131, 77, seed=chunk, missing=0.03)
    lazy = lmmbook.read_plink(write_bed(tmp_path / "g.bed", M), chunks=chunk)
    X = np.column_stack([np.ones(131), np.arange(131) % 3 == 0])
    y = phenotypes(M, X, 1.0, 1.0, seed=4)
    y[::10] = np.nan
    for kwargs in ({"traces": "exact"}, {"probes": 20, "seed": 3}):
        a = lmmbook.he_regression(y, X, lazy, **kwargs)
        b = lmmbook.he_regression(y, X, M, **kwargs)
        np.testing.assert_allclose([a.sigma2_u, a.sigma2_e, a.sigma2_u_se, a.sigma2_u_mc_se],
                                   [b.sigma2_u, b.sigma2_e, b.sigma2_u_se, b.sigma2_u_mc_se],
                                   rtol=1e-10)
    # a dask array of blocks of rows is one more chunked source
    da = pytest.importorskip("dask.array")
    d = lmmbook.he_regression(y, X, da.from_array(M, chunks=(chunk, -1)), probes=20, seed=3)
    assert d.sigma2_u == pytest.approx(b.sigma2_u, rel=1e-10)
    # the reader's IDs join a Series of phenotypes
    by_id = pd.Series(y, index=lazy.ids).dropna().sample(frac=1.0, random_state=0)
    c = lmmbook.he_regression(by_id, X, lazy, traces="exact")
    assert c.sigma2_u == pytest.approx(lmmbook.he_regression(y, X, M, traces="exact").sigma2_u,
                                       rel=1e-10)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31), scale=st.floats(1e-3, 1e3), shift=st.floats(-100, 100))
def test_scaling_shifting_and_permuting(seed, scale, shift):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(30, 70)), int(rng.integers(10, 90))
    M = genotypes(n, m, seed=seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = phenotypes(M, X, 1.0, 1.0, seed=seed)
    base = lmmbook.he_regression(y, X, M, probes=10, seed=seed)
    # y -> k y + X d: variances times k^2 (both standard errors too), h2 unchanged; same probes
    moved = lmmbook.he_regression(scale * y + X @ [shift, 2.0], X, M, probes=10, seed=seed)
    for name in ("sigma2_u", "sigma2_e", "sigma2_u_se", "sigma2_e_se", "sigma2_u_mc_se"):
        assert getattr(moved, name) == pytest.approx(scale**2 * getattr(base, name), rel=1e-7,
                                                     abs=1e-12 * scale**2)
    assert moved.h2 == pytest.approx(base.h2, rel=1e-7, abs=1e-9)
    # animals in another order (rows of y, X and M together): the same exact estimates
    order = rng.permutation(n)
    exact = lmmbook.he_regression(y, X, M, traces="exact")
    shuffled = lmmbook.he_regression(y[order], X[order], M[order], traces="exact")
    np.testing.assert_allclose([shuffled.sigma2_u, shuffled.sigma2_e, shuffled.sigma2_u_se],
                               [exact.sigma2_u, exact.sigma2_e, exact.sigma2_u_se], rtol=1e-8,
                               atol=1e-12)


def test_deterministic_with_a_seed_and_a_generator():
    M = genotypes(60, 30, seed=1)
    X = np.ones((60, 1))
    y = phenotypes(M, X, 1.0, 1.0, seed=1)
    a, b = (lmmbook.he_regression(y, X, M, probes=8, seed=7) for _ in range(2))
    assert a.sigma2_u == b.sigma2_u and a.sigma2_u_mc_se == b.sigma2_u_mc_se
    c = lmmbook.he_regression(y, X, M, probes=8, seed=np.random.default_rng(7))
    assert c.sigma2_u == a.sigma2_u
    assert lmmbook.he_regression(y, X, M, probes=8, seed=8).sigma2_u != a.sigma2_u


def test_passes_are_logged_and_nothing_is_printed(caplog, capsys):
    M = genotypes(50, 20, seed=2)
    X = np.ones((50, 1))
    with caplog.at_level("INFO", logger="lmmbook.haseman_elston"):
        lmmbook.he_regression(phenotypes(M, X, 1.0, 1.0, seed=2), X, M, probes=4)
    assert "pass 1" in caplog.text and "pass 5 of 5" in caplog.text
    assert capsys.readouterr() == ("", "")


def test_close_to_exact_reml():
    """HE against REML (gblup) on the same data: both estimate the same sigma2_u; REML is the
    more precise, so the difference is measured in units of HE's total SE (here -0.6; on 1,500
    mice of the real-data chapter -0.1 to -1.1 in units of HE's SE at REML's estimates)."""
    n, m = 1000, 800
    M = genotypes(n, m, seed=2024)
    X = np.ones((n, 1))
    y = phenotypes(M, X, 1.0, 1.0, seed=17)
    he = lmmbook.he_regression(y, X, M, probes=50, seed=0)
    reml = lmmbook.gblup(y, X, lmmbook.genomic_relationship(M))
    total_se = np.hypot(he.sigma2_u_se, he.sigma2_u_mc_se)
    assert abs(he.sigma2_u - reml.sigma2_u) < 2 * total_se
    assert abs(he.sigma2_e - reml.sigma2_e) < 2 * np.hypot(he.sigma2_e_se, he.sigma2_e_mc_se)
    assert he.sigma2_u_mc_se < 0.3 * he.sigma2_u_se  # 50 probes: the sampling error dominates
    table = he.summary()
    assert list(table.index) == ["sigma2_u", "sigma2_e", "h2"]
    assert table.loc["sigma2_u", "se_total"] == pytest.approx(total_se, rel=1e-12)


def test_refusals():
    M = genotypes(40, 20, seed=9)
    X = np.ones((40, 1))
    y = phenotypes(M, X, 1.0, 1.0, seed=9)
    with pytest.raises(InputError, match="traces must be 'random' or 'exact'"):
        lmmbook.he_regression(y, X, M, traces="fast")
    for probes in (1, 2.5, True):
        with pytest.raises(InputError, match="probes must be an integer of at least 2"):
            lmmbook.he_regression(y, X, M, probes=probes)
    with pytest.raises(ShapeMismatchError, match="y has 39 entries"):
        lmmbook.he_regression(y[:-1], X, M)
    with pytest.raises(RankDeficientError, match="full column rank"):
        lmmbook.he_regression(y, np.column_stack([X, 2 * X]), M)
    X_nan = np.column_stack([X, np.arange(40.0)])
    X_nan[5, 1] = np.nan
    with pytest.raises(NonFiniteError):
        lmmbook.he_regression(y, X_nan, M)
    few = np.full(40, np.nan)
    few[:2] = [1.0, 2.0]
    with pytest.raises(InputError, match="more phenotyped rows than fixed effects"):
        lmmbook.he_regression(few, X, M)
    with pytest.raises(InputError, match="no marker is polymorphic"):
        lmmbook.he_regression(y, X, np.zeros((40, 5)))
    with pytest.raises(InputError, match="allele_freq must hold one frequency per marker"):
        lmmbook.he_regression(y, X, M, allele_freq=np.full(19, 0.5))
    with pytest.raises(InputError, match="moment equations are singular"):  # all rows alike
        lmmbook.he_regression(y, X, np.ones((40, 5)), allele_freq=np.full(5, 0.3),
                              traces="exact")
    with pytest.raises(UnknownIdError, match="no genotype"):
        lmmbook.he_regression(pd.Series([1.0, 2.0], index=["x", "zz"]), X,
                              pd.DataFrame(M, index=[f"a{i}" for i in range(40)]))
    with pytest.raises(VarianceError, match="sigma2_u must be positive"):
        lmmbook.he_regression(y, X, M, traces="exact").covariance_at(-1.0, 1.0)
    with pytest.raises(InputError, match="counts of one allele"):
        lmmbook.he_regression(y, X, np.full((40, 5), 3.0))


@pytest.mark.cluster
def test_on_a_local_cluster_equals_the_local_run(tmp_path):
    """With a dask.distributed client active the blocks are read and multiplied on the workers,
    with no change to the call, and the estimates are the local ones (the same sums in the same
    order). The context managers close the cluster, also on failure."""
    distributed = pytest.importorskip("distributed")
    import logging

    M = genotypes(90, 40, seed=31, missing=0.02)
    X = np.ones((90, 1))
    y = phenotypes(M, X, 1.0, 1.0, seed=31)
    lazy = lmmbook.read_plink(write_bed(tmp_path / "g.bed", M), chunks=25)
    local = lmmbook.he_regression(y, X, lazy, probes=10, seed=2, cache_bytes=0)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client, \
            distributed.get_task_stream(client) as stream:
        remote = lmmbook.he_regression(y, X, lazy, probes=10, seed=2, cache_bytes=0)
        workers = set(client.scheduler_info()["workers"])
    ran = {}
    for task in stream.data:
        name = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        ran.setdefault(name.split("-")[0], set()).add(task["worker"])
    assert ran["_bed_codes"] <= workers and ran["_rmatmat"] <= workers
    for name in ("sigma2_u", "sigma2_e", "sigma2_u_se", "sigma2_u_mc_se"):
        assert getattr(remote, name) == pytest.approx(getattr(local, name), rel=1e-12)
