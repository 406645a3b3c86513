import numpy as np
import pandas as pd
import pytest
import scipy.linalg.blas
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import (
    DuplicateIdError,
    InputError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    UnknownIdError,
)


def reference_G(M, method, p=None):
    """Plain NumPy, marker by marker, straight from the formulas of chapter 5."""
    M = np.asarray(M, float)
    n, m = M.shape
    p = np.nanmean(M, axis=0) / 2 if p is None else np.asarray(p)
    G = np.zeros((n, n))
    used = [k for k in range(m) if 0 < p[k] < 1]
    denom = 2 * sum(p[k] * (1 - p[k]) for k in used)
    for k in used:
        w = np.where(np.isnan(M[:, k]), 0.0, M[:, k] - 2 * p[k])
        if method == "vanraden1":
            G += np.outer(w, w) / denom
        else:
            G += np.outer(w, w) / (2 * p[k] * (1 - p[k])) / len(used)
    if method == "yang":
        for i in range(n):
            terms = [(M[i, k] ** 2 - (1 + 2 * p[k]) * M[i, k] + 2 * p[k] ** 2)
                     / (2 * p[k] * (1 - p[k])) for k in used if not np.isnan(M[i, k])]
            G[i, i] = 1 + (np.mean(terms) if terms else 0.0)
    return G


def genotypes(seed, n, m, missing):
    rng = np.random.default_rng(seed)
    M = rng.binomial(2, rng.uniform(0.0, 1.0, m), size=(n, m)).astype(float)
    M[:, 0] = 2  # always one monomorphic marker
    if missing:
        M[rng.random((n, m)) < missing] = np.nan
        M[:, 0] = 2  # the monomorphic marker is always called: no individual all missing
        M[:, np.isnan(M).all(axis=0)] = 1
    return M


markers = st.builds(genotypes, seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30),
                    m=st.integers(2, 60), missing=st.sampled_from([0.0, 0.1]))


@settings(max_examples=60)
@given(markers, st.sampled_from(["vanraden1", "vanraden2", "yang"]))
def test_against_reference_and_exact_properties(M, method):
    p = np.nanmean(M, axis=0) / 2
    if not np.any((p > 0) & (p < 1)):
        with pytest.raises(InputError, match="no marker is polymorphic"):
            lmmbook.genomic_relationship(M, method=method)
        return
    G = lmmbook.genomic_relationship(M, method=method)
    np.testing.assert_allclose(G, reference_G(M, method), atol=1e-12)
    np.testing.assert_array_equal(G, G.T)  # symmetric to the last bit
    if method != "yang":
        # sample frequencies with mean imputation: W's columns sum to zero, so G 1 = 0
        np.testing.assert_allclose(G.sum(axis=1), 0, atol=1e-10)
        assert np.linalg.eigvalsh(G)[0] > -1e-10  # positive semi-definite
    if method == "vanraden1":
        W = lmmbook.markers.center(M)
        het = p * (1 - p)
        np.testing.assert_allclose(G, W @ W.T / (2 * het[het > 0].sum()), atol=1e-12)


def test_hand_computed_small_case():
    M = np.array([[0, 1, 2], [1, 1, 0], [2, 1, 1]])
    # p = (1/2, 1/2, 1/2); W = [[-1, 0, 1], [0, 0, -1], [1, 0, 0]]; 2 sum p(1-p) = 1.5
    expected = np.array([[2, -1, -1], [-1, 1, 0], [-1, 0, 1]]) / 1.5
    np.testing.assert_allclose(lmmbook.genomic_relationship(M), expected, atol=1e-15)


def test_supplied_frequencies_and_monomorphic_markers():
    rng = np.random.default_rng(1)
    M = rng.binomial(2, 0.3, size=(10, 8)).astype(float)
    base = np.r_[0.0, np.full(7, 0.3)]  # marker 0 monomorphic in the base: left out
    G = lmmbook.genomic_relationship(M, allele_freq=base)
    np.testing.assert_allclose(G, reference_G(M, "vanraden1", base), atol=1e-12)
    assert np.isfinite(G).all()
    with pytest.raises(InputError, match="method must be"):
        lmmbook.genomic_relationship(M, method="gcta")


def gblup_problem(seed, n, missing):
    rng = np.random.default_rng(seed)
    M = rng.binomial(2, rng.uniform(0.1, 0.9, 3 * n), size=(n, 3 * n)).astype(float)
    G = lmmbook.genomic_relationship(M)
    Gw = 0.95 * G + 0.05 * np.eye(n)  # blended: positive definite, well conditioned
    X = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
    u = np.linalg.cholesky(Gw) @ rng.normal(0, 1, n)
    y = X @ [5.0, 1.0] + u + rng.normal(0, 1, n)
    y[rng.random(n) < missing] = np.nan
    return y, X, Gw


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1), st.integers(12, 40), st.sampled_from([0.0, 0.25]))
def test_gblup_equals_mme_and_reml(seed, n, missing):
    y, X, Gw = gblup_problem(seed, n, missing)
    fit = lmmbook.gblup(y, X, Gw)
    ref = lmmbook.reml(y, X, None, Gw)
    assert fit.sigma2_u == pytest.approx(ref.sigma2_u, rel=1e-9, abs=1e-12)
    assert fit.sigma2_e == pytest.approx(ref.sigma2_e, rel=1e-9)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(fit.u, ref.u, atol=1e-9 * (1 + np.abs(ref.u).max()))
    if fit.boundary is None:  # solve_mme needs both variances positive
        mme = lmmbook.solve_mme(y, X, np.eye(n), np.linalg.inv(Gw), fit.sigma2_u, fit.sigma2_e,
                                K_diag=np.diag(Gw))
        scale = 1 + np.abs(mme.u).max()
        np.testing.assert_allclose(fit.u, mme.u, atol=1e-8 * scale)
        np.testing.assert_allclose(fit.b, mme.b, atol=1e-8 * scale)
        np.testing.assert_allclose(fit.pev, mme.pev, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(fit.reliability, mme.reliability, atol=1e-7)


def test_given_variances_and_singular_G():
    rng = np.random.default_rng(2)
    M = rng.binomial(2, 0.5, size=(30, 10)).astype(float)  # n > m: G singular (rank <= 9)
    G = lmmbook.genomic_relationship(M)
    assert np.linalg.matrix_rank(G) < 30
    y = rng.normal(size=30)
    fit = lmmbook.gblup(y, np.ones((30, 1)), G, sigma2_u=0.5, sigma2_e=1.0)
    V = 0.5 * G + np.eye(30)
    Vi = np.linalg.inv(V)
    b = np.sum(Vi @ y) / np.sum(Vi)
    np.testing.assert_allclose(fit.u, 0.5 * G @ Vi @ (y - b), atol=1e-12)
    assert not fit.estimated and fit.sigma2_u == 0.5


def test_ids_join_phenotypes_to_genotypes():
    y, X, Gw = gblup_problem(5, 20, 0.0)
    ids = [f"g{i}" for i in range(20)]
    by_position = lmmbook.gblup(np.r_[y[:15], np.full(5, np.nan)], X, Gw)
    # phenotypes of the first 15 only, given in another order, as a Series keyed by ID
    order = np.random.default_rng(0).permutation(15)
    y_by_id = pd.Series(y[:15][order], index=[ids[i] for i in order])
    joined = lmmbook.gblup(y_by_id, X, pd.DataFrame(Gw, index=ids, columns=ids))
    np.testing.assert_allclose(joined.u, by_position.u, atol=1e-12)
    assert joined.ids.tolist() == ids and joined.n_obs == 15
    assert joined.to_frame().index.tolist() == ids
    with pytest.raises(UnknownIdError, match="'x9' of y has a phenotype but no genotype"):
        lmmbook.gblup(pd.Series([1.0, 2.0], index=["g1", "x9"]), X, Gw, ids=ids)
    with pytest.raises(DuplicateIdError, match="'g1' more than once"):
        lmmbook.gblup(y, X, Gw, ids=["g1"] * 20)
    with pytest.raises(ShapeMismatchError, match="ids has 3 entries but G has 20"):
        lmmbook.gblup(y, X, Gw, ids=["a", "b", "c"])


def test_yang_small_negative_eigenvalues_are_fine_but_indefinite_G_is_refused():
    pop = lmmbook.simulate_population(1, 60, 5, n_snp=2000, n_qtl=10, seed=3)
    Gy = lmmbook.genomic_relationship(pop.genotypes, method="yang")
    assert np.linalg.eigvalsh(Gy)[0] < 0  # Yang's GRM need not be PSD
    fit = lmmbook.gblup(pop.phenotypes["y"], np.ones((len(Gy), 1)), Gy, ids=pop.ids)
    assert np.isfinite(fit.u).all()
    bad = np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.9], [0.9, 0.9, 1.0]])
    smallest = np.linalg.eigvalsh(bad)[0]
    with pytest.raises(NotPositiveDefiniteError,
                       match=f"{smallest:.4g}.*add more than {-smallest:.3g} to the diagonal"):
        lmmbook.gblup([1.0, 2.0, 3.0], np.zeros((3, 0)), bad)
    # the remedy the message names is enough: the ridged matrix is accepted
    ridged = bad + 1.01 * (-smallest) * np.eye(3)
    assert np.isfinite(lmmbook.gblup([1.0, 2.0, 3.0], np.zeros((3, 0)), ridged).u).all()


def test_gblup_errors():
    y, X, Gw = gblup_problem(1, 10, 0.0)
    with pytest.raises(InputError, match="give both"):
        lmmbook.gblup(y, X, Gw, sigma2_u=1.0)
    with pytest.raises(ShapeMismatchError, match="G must be square"):
        lmmbook.gblup(y, X, Gw[:, :5])
    with pytest.raises(ShapeMismatchError, match="y has 9 entries but G has 10"):
        lmmbook.gblup(y[:9], X, Gw)
    with pytest.raises(InputError, match="more phenotyped individuals than fixed effects"):
        lmmbook.gblup(np.r_[y[:2], np.full(8, np.nan)], X, Gw)


def test_a_missing_id_is_refused():
    G = pd.DataFrame(np.eye(3), index=["a", np.nan, "c"], columns=["a", np.nan, "c"])
    with pytest.raises(InputError, match="the index of G has a missing ID at position 1"):
        lmmbook.gblup(pd.Series([1.0, 2.0], index=["c", "a"]), np.ones((3, 1)), G,
                      sigma2_u=1.0, sigma2_e=1.0)
    with pytest.raises(InputError, match="ids has a missing ID at position 0"):
        lmmbook.gblup([1.0, 2.0, 3.0], np.ones((3, 1)), np.eye(3), ids=[None, "b", "c"],
                      sigma2_u=1.0, sigma2_e=1.0)


def reference_weighted_G(M, method, d, p=None):
    """sum_k d_k w_k w_k' D_alpha,kk / c, marker by marker (chapter 5): D_alpha = 1, c = 2 sum
    p(1-p) for VanRaden 1; D_alpha = 1 / (2 p_k (1 - p_k)), c = m for VanRaden 2."""
    M = np.asarray(M, float)
    p = np.nanmean(M, axis=0) / 2 if p is None else np.asarray(p)
    used = [k for k in range(M.shape[1]) if 0 < p[k] < 1]
    c = 2 * sum(p[k] * (1 - p[k]) for k in used) if method == "vanraden1" else len(used)
    G = np.zeros((len(M), len(M)))
    for k in used:
        w = np.where(np.isnan(M[:, k]), 0.0, M[:, k] - 2 * p[k])
        base = 1.0 if method == "vanraden1" else 1 / (2 * p[k] * (1 - p[k]))
        G += d[k] * base * np.outer(w, w) / c
    return G


@settings(max_examples=40)
@given(markers, st.sampled_from(["vanraden1", "vanraden2"]), st.integers(0, 2**32 - 1))
def test_weighted_G_against_reference_and_properties(M, method, seed):
    p = np.nanmean(M, axis=0) / 2
    if not np.any((p > 0) & (p < 1)):
        return
    d = np.random.default_rng(seed).lognormal(0.0, 1.0, M.shape[1])
    G = lmmbook.genomic_relationship(M, method=method, weights=d)
    np.testing.assert_allclose(G, reference_weighted_G(M, method, d), atol=1e-12)
    np.testing.assert_array_equal(G, G.T)  # symmetric to the last bit
    assert np.linalg.eigvalsh(G)[0] > -1e-10 * max(1.0, np.abs(G).max())
    # unit weights are VanRaden's G; weights times 3 give 3 G (c does not move)
    plain = lmmbook.genomic_relationship(M, method=method)
    np.testing.assert_allclose(lmmbook.genomic_relationship(M, method=method,
                                                            weights=np.ones_like(d)),
                               plain, atol=1e-12)
    np.testing.assert_allclose(lmmbook.genomic_relationship(M, method=method, weights=3 * d),
                               3 * G, atol=1e-12 * np.abs(G).max())


def test_weights_errors():
    M = np.array([[0, 1, 2], [1, 1, 0], [2, 1, 1]])
    with pytest.raises(InputError, match=r"weights must hold one weight per marker \(3\), got "
                       r"shape \(2,\)"):
        lmmbook.genomic_relationship(M, weights=[1.0, 1.0])
    with pytest.raises(InputError, match=r"finite and non-negative .*marker 1 has -0\.5"):
        lmmbook.genomic_relationship(M, method="vanraden2", weights=[1.0, -0.5, 1.0])
    with pytest.raises(InputError, match=r"marker 2 has inf"):
        lmmbook.genomic_relationship(M, weights=[1.0, 1.0, np.inf])
    with pytest.raises(InputError, match=r"weights apply to method='vanraden1' or 'vanraden2'.*"
                       r"Yang's G .*takes no weights"):
        lmmbook.genomic_relationship(M, method="yang", weights=[1.0, 1.0, 1.0])
    # a weight of 0 removes the marker from G but not from c
    G = lmmbook.genomic_relationship(M, weights=[1.0, 1.0, 0.0])
    W = np.array([[-1, 0, 1], [0, 0, -1], [1, 0, 0]], float)  # p = 1/2 everywhere, c = 1.5
    np.testing.assert_allclose(G, W[:, :2] @ W[:, :2].T / 1.5, atol=1e-15)


def test_single_precision_product_of_shifted_counts_is_exact():
    """G of complete genotypes multiplies M - round(2p), integers from -2 to 2, in float32 (BLAS
    ssyrk): every partial sum is an integer far below 2**24, so on any BLAS kernel the product
    is the integer one."""
    M_s = np.random.default_rng(11).integers(-2, 3, size=(60, 5000)).astype(np.float32)
    C = scipy.linalg.blas.ssyrk(1.0, M_s.T, trans=1, lower=0)
    exact = M_s.astype(np.int64) @ M_s.astype(np.int64).T
    np.testing.assert_array_equal(np.triu(C), np.triu(exact))


def test_G_of_rare_alleles_and_by_chunks_of_markers(monkeypatch):
    rng = np.random.default_rng(12)
    p = rng.choice([0.001, 0.01, 0.3, 0.99, 0.999], 300)
    M = rng.binomial(2, p, size=(200, 300)).astype(float)
    W = lmmbook.markers.center(M)
    freq = lmmbook.markers.allele_frequencies(M)
    het = freq * (1 - freq)
    G = lmmbook.genomic_relationship(M)
    np.testing.assert_allclose(G, W @ W.T / (2 * het[het > 0].sum()), atol=1e-12)
    # more markers than one exact single-precision product takes: summed chunk by chunk
    monkeypatch.setattr(lmmbook.markers, "EXACT_CHUNK", 7)
    np.testing.assert_allclose(lmmbook.genomic_relationship(M), G, atol=1e-12)
    base = np.clip(freq + 0.01, 0, 1)
    np.testing.assert_allclose(lmmbook.genomic_relationship(M, allele_freq=base),
                               reference_G(M, "vanraden1", base), atol=1e-12)
