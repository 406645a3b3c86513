import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
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
def test_snp_blup_is_gblup(problem_):
    """The same model: GEBVs, variance components (with sigma2_u = 2 sum p(1-p) sigma2_alpha) and
    REML log-likelihoods agree, whether there are fewer markers than animals or more."""
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
