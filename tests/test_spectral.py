"""The private spectral core against dense references, on both sides of sigma2_e = 0.

References: the REML log-likelihood of the error contrasts N'y (N'X = 0, N'N = I; lme4's
convention, log|V| + log|X'V^-1 X| = log|N'VN| + log|X'X|), which is defined wherever N'VN is
positive definite - also at sigma2_e = 0 with a singular ZKZ' -, the bordered system
[[V, X], [X', 0]] [m; b] = [y; 0] (b the BLUE, m = P y, the lower right block of its inverse
-(X'V^-1 X)^-1), and P = N (N'VN)^-1 N'.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook import _spectral
from lmmbook.markers import cross_product

LOG_2PI = np.log(2 * np.pi)


def contrasts(X):
    return np.linalg.qr(X, mode="complete")[0][:, X.shape[1]:]


def dense_loglik(y, X, H, s2u, s2e):
    """REML log-likelihood from the error contrasts."""
    N = contrasts(X)
    VN = N.T @ (s2u * H + s2e * np.eye(len(y))) @ N
    yN = N.T @ y
    return -0.5 * (len(yN) * LOG_2PI + np.linalg.slogdet(VN)[1]
                   + np.linalg.slogdet(X.T @ X)[1] + yN @ np.linalg.solve(VN, yN))


def dense_profile(y, X, H, eta):
    """The same with sigma2 profiled out: at sigma2 = 1, S = y'Py, then sigma2 = S / (n - n_b)."""
    N = contrasts(X)
    dof = N.shape[1]
    VN = N.T @ (eta * H + (1 - eta) * np.eye(len(y))) @ N
    yN = N.T @ y
    S = yN @ np.linalg.solve(VN, yN)
    return -0.5 * (dof * (LOG_2PI + 1 + np.log(S / dof)) + np.linalg.slogdet(VN)[1]
                   + np.linalg.slogdet(X.T @ X)[1])


def dense_P(X, V):
    N = contrasts(X)
    return N @ np.linalg.solve(N.T @ V @ N, N.T)


def bordered(y, X, V):
    """b, P y and (X'V^-1 X)^-1 from [[V, X], [X', 0]], regular also where V is singular."""
    n, p = X.shape
    K = np.block([[V, X], [X.T, np.zeros((p, p))]])
    sol = np.linalg.solve(K, np.r_[y, np.zeros(p)])
    return sol[n:], sol[:n], -np.linalg.inv(K)[n:, n:]


def rotations(y, X, L):
    """The same H = L L' by an eigendecomposition and by the thin SVD of L."""
    return {"eigh": _spectral.rotate_eigh(y, X, L @ L.T), "svd": _spectral.rotate_factor(y, X, L)}


def singular_problem(seed, n, p, d0):
    """H of rank n - d0 with d0 <= p: every null direction meets the columns of X (k = d0)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    L = rng.normal(size=(n, n - d0)) / np.sqrt(n)
    y = X @ rng.normal(size=p) + L @ rng.normal(size=n - d0) + 0.3 * rng.normal(size=n)
    return y, X, L


# ---- the likelihood, its derivative and the GLS quantities -------------------------------------

@pytest.mark.parametrize("d0", [1, 2, 3])
def test_profile_and_score_up_to_eta_one(d0):
    y, X, L = singular_problem(d0, 12, 3, d0)
    H = L @ L.T
    for name, rot in rotations(y, X, L).items():
        assert rot.null.n_null == d0 and rot.null.n_seen == d0, name
        # on the old code: -inf at 1, and 3e-4 off at 1 - 1e-13 (cancellation of 1/(1 - eta))
        for eta in [0.0, 0.3, 0.9, 1 - 1e-6, 1 - 1e-9, 1 - 1e-13, 1.0]:
            assert _spectral.profile_loglik(rot, eta) == pytest.approx(
                dense_profile(y, X, H, eta), abs=1e-10), (name, eta)
        for eta in [0.3, 0.9, 1 - 1e-4]:
            h = 1e-4 * min(0.01, 1 - eta)  # the likelihood is steep near 1 here
            numeric = (dense_profile(y, X, H, eta + h) - dense_profile(y, X, H, eta - h)) / (2 * h)
            assert _spectral.profile_score(rot, eta) == pytest.approx(numeric, rel=1e-6, abs=1e-7)
        # the score is continuous up to eta = 1, where it is finite
        s1 = _spectral.profile_score(rot, 1.0)
        assert np.isfinite(s1)
        assert _spectral.profile_score(rot, 1 - 1e-12) == pytest.approx(s1, rel=1e-8, abs=1e-8)


def test_more_null_directions_than_x_reaches():
    """d0 > n_b: at eta = 1 a contrast has no variance and the likelihood is -inf; inside, the
    split-off null block changes nothing."""
    y, X, L = singular_problem(4, 12, 2, 5)
    H = L @ L.T
    for name, rot in rotations(y, X, L).items():
        assert rot.null.n_null == 5 and rot.null.n_seen == 2, name
        assert _spectral.profile_loglik(rot, 1.0) == -np.inf
        assert np.isnan(_spectral.profile_score(rot, 1.0))
        for eta in [0.0, 0.5, 1 - 1e-6]:
            assert _spectral.profile_loglik(rot, eta) == pytest.approx(
                dense_profile(y, X, H, eta), abs=1e-9), (name, eta)
        with pytest.raises(ValueError, match="not positive definite"):
            _spectral.gls_at(rot, 1.0, 0.0)


@pytest.mark.parametrize("s2e", [0.4, 1e-12, 0.0])
def test_gls_quantities_match_the_bordered_system(s2e):
    y, X, L = singular_problem(7, 10, 3, 2)
    H, s2u = L @ L.T, 1.7
    V = s2u * H + s2e * np.eye(len(y))
    b_ref, Py_ref, cov_ref = bordered(y, X, V)
    P = dense_P(X, V)
    info_ref = np.array([[0.5 * np.trace(P @ A @ P @ B) for B in (H, np.eye(10))]
                         for A in (H, np.eye(10))])
    for name, rot in rotations(y, X, L).items():
        b, loglik = _spectral.gls_at(rot, s2u, s2e)
        np.testing.assert_allclose(b, b_ref, rtol=1e-9, atol=1e-10, err_msg=name)
        assert loglik == pytest.approx(dense_loglik(y, X, H, s2u, s2e), abs=1e-9), name
        np.testing.assert_allclose(_spectral.v_inverse_residual(rot, s2u, s2e, b), Py_ref,
                                   atol=1e-9 * np.abs(Py_ref).max())
        np.testing.assert_allclose(_spectral.fixed_effect_covariance(rot, s2u, s2e), cov_ref,
                                   atol=1e-9 * np.abs(cov_ref).max())
        np.testing.assert_allclose(_spectral.information(rot, s2u, s2e), info_ref,
                                   rtol=1e-8, atol=1e-10 * np.abs(info_ref).max())
    # PEVs need diag(C'PC) for C = G_oa: in the eigenbasis, B = C'U
    rot = rotations(y, X, L)["eigh"]
    C = np.random.default_rng(8).normal(size=(10, 6))
    np.testing.assert_allclose(_spectral.p_quadratic(rot, s2u, s2e, C.T @ rot.U),
                               np.einsum("ij,ik,kj->j", C, P, C), rtol=1e-8,
                               atol=1e-10 * np.abs(C.T @ P @ C).max())


# ---- the search: the sigma2_e = 0 boundary, found the same way by every rotation ---------------

def genomic_problem(seed, n, m):
    """problem(seed, n, m, 0.0, 0.0) of tests/test_snpblup.py (the same draws)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    M[:, 0] = 1.0
    W = M - 2 * p
    y = 2 + W @ rng.normal(0, 0.3 / np.sqrt(m), m) + rng.normal(0, 1, n)
    rng.random(n)  # the draw that sets missing records there (none here)
    y[:3] = [1.0, 2.0, 3.0]
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return y, X, M


@pytest.mark.parametrize("seed, n", [(1, 10), (19042, 14)])
def test_the_sigma2_e_zero_boundary_of_a_genomic_model(seed, n):
    """With 80 markers on 10 or 14 animals the REML likelihood rises all the way to sigma2_e = 0,
    where G's null vector 1 is absorbed by the intercept. The old search stopped at different
    points near eta = 1 for the two G's (log-likelihoods 2.6e-6 apart for seed 1), or, finding
    no sign change of the score, returned sigma2_u = 0 with a log-likelihood 0.14 lower
    (seed 19042)."""
    y, X, M = genomic_problem(seed, n, 80)
    G = lmmbook.genomic_relationship(M)
    p = lmmbook.allele_frequencies(M)
    poly = p * (1 - p) > 0
    W, c = (M - 2 * p)[:, poly], 2 * np.sum(p * (1 - p))
    fits = {
        "gblup": _spectral.fit(_spectral.rotate_eigh(y, X, np.array(G), clip=False)),
        "snp_blup": _spectral.fit(_spectral.rotate_eigh(y, X, cross_product(W, 1 / c))),
        "thin": _spectral.fit(_spectral.rotate_factor(y, X, W / np.sqrt(c))),
    }
    limit = dense_profile(y, X, G, 1.0)
    grid = max(dense_profile(y, X, G, eta) for eta in np.linspace(0, 1, 201)[:-1])
    assert limit > grid  # the maximum is the boundary
    ref = fits["gblup"]
    for name, res in fits.items():
        assert res.boundary == "sigma2_e = 0" and res.eta == 1.0 and res.sigma2_e == 0.0, name
        assert res.loglik == pytest.approx(limit, abs=1e-10), name
        assert res.sigma2_u == pytest.approx(ref.sigma2_u, rel=1e-10), name
        np.testing.assert_allclose(res.b, ref.b, rtol=1e-9, atol=1e-10)


def random_problem(seed, n, p, rank):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    L = rng.normal(size=(n, rank)) * rng.lognormal(0, 1, rank)
    y = X @ rng.normal(size=p) + L @ rng.normal(0, rng.uniform(0, 2), rank) + rng.normal(size=n)
    return y, X, L


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(6, 16), st.integers(1, 3), st.integers(-2, 3))
def test_search_is_global_and_the_same_for_both_rotations(seed, n, p, shortfall):
    """Whatever the rank of H (n - shortfall, capped at n), the search finds the global maximum
    of the dense likelihood on [0, 1], and the eigendecomposition and the thin SVD agree."""
    y, X, L = random_problem(seed, n, p, min(n, max(n - shortfall, 1)))
    H = L @ L.T
    fits = {name: _spectral.fit(rot) for name, rot in rotations(y, X, L).items()}
    dense = max(dense_profile(y, X, H, eta) for eta in np.linspace(0, 1, 101)[:-1])
    at_one = dense_profile(y, X, H, 1.0) if fits["eigh"].eta == 1.0 else -np.inf
    for name, res in fits.items():
        assert res.loglik >= max(dense, at_one) - 1e-9, name
        assert res.loglik == pytest.approx(fits["eigh"].loglik, abs=1e-9), name
        assert res.boundary == fits["eigh"].boundary, name
        total = res.sigma2_u + res.sigma2_e
        assert res.sigma2_u == pytest.approx(fits["eigh"].sigma2_u, rel=1e-6, abs=1e-7 * total)
        assert res.sigma2_e == pytest.approx(fits["eigh"].sigma2_e, rel=1e-6, abs=1e-7 * total)
