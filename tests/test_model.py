"""The general model (chapter 4): several random effects, correlated effects, their REML.

Checked against Mrode & Pocrnic (2023)'s printed solutions of Examples 5.1, 5.2 and 8.1, against
the dense V form of tests/reference.py on random problems, and REML against a likelihood written
out with inv(V) and maximised by scipy independently of lmmbook's AI and EM.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as la
import scipy.optimize as opt
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import gls_blup_general, reml_loglik, reml_score_and_information

import lmmbook
from lmmbook import model
from lmmbook.datasets import mrode_example_5_1, mrode_example_5_2, mrode_example_8_1
from lmmbook.errors import NotPositiveDefiniteError, ShapeMismatchError, VarianceError

# Mrode prints 3 decimals; the example files accept 0.001 (0.002 where they say so).
PRINTED = 1e-3


def pedigree_of(example):
    p = example.pedigree
    return lmmbook.Pedigree(p["animal"], p["sire"], p["dam"])


def dummies(values, prefix):
    return pd.get_dummies(pd.Series(values), prefix=prefix, prefix_sep="").astype(float)


# ---- Mrode's worked examples -------------------------------------------------------------------

def mrode_5_1(method="direct"):
    ex = mrode_example_5_1()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    X = pd.concat([dummies(r["hys"], "hys"), dummies(r["parity"], "parity")], axis=1)
    X = X.drop(columns=["hys1", "hys3"])  # the book's constraints HYS 1 = HYS 3 = 0
    fit = lmmbook.solve_mme(r["fat_yield"].to_numpy(), X.to_numpy(), [ped.incidence(r["cow"]),
                            lmmbook.incidence(r["cow"])], [ped.A_inverse(), None],
                            [v["sigma2_a"], v["sigma2_pe"]], v["sigma2_e"], method=method,
                            names=["animal", "pe"])
    return fit, X


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_mrode_5_1_repeatability(method):
    fit, _ = mrode_5_1(method)
    np.testing.assert_allclose(fit.b, [44.065, 0.013, 175.472, 241.893], atol=PRINTED)
    a, pe = fit.u
    np.testing.assert_allclose(a, [10.148, -3.084, -7.063, 13.581, -18.207, -18.387, 9.328,
                                   24.194], atol=PRINTED)
    np.testing.assert_allclose(pe, [8.417, -7.146, -17.229, -1.390, 17.347], atol=PRINTED)
    assert fit.levels[1].tolist() == [4, 5, 6, 7, 8]
    assert fit.names == ("animal", "pe")


def test_mrode_5_1_estimable_functions_do_not_depend_on_the_constraint():
    fit, X = mrode_5_1()
    ex = mrode_example_5_1()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    other = pd.concat([dummies(r["hys"], "hys"), dummies(r["parity"], "parity")], axis=1)
    other = other.drop(columns=["hys2", "hys4"])
    refit = lmmbook.solve_mme(r["fat_yield"].to_numpy(), other.to_numpy(),
                              [ped.incidence(r["cow"]), lmmbook.incidence(r["cow"])],
                              [ped.A_inverse(), None], [v["sigma2_a"], v["sigma2_pe"]],
                              v["sigma2_e"])
    assert not np.allclose(refit.b, fit.b)
    np.testing.assert_allclose(other.to_numpy() @ refit.b, X.to_numpy() @ fit.b, rtol=1e-10)
    for u, u_ref in zip(refit.u, fit.u, strict=True):
        np.testing.assert_allclose(u, u_ref, rtol=1e-9, atol=1e-9)


def test_mrode_5_1_rank_deficient_x_is_refused_with_the_columns_to_drop():
    ex = mrode_example_5_1()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    X = pd.concat([dummies(r["hys"], "hys"), dummies(r["parity"], "parity")], axis=1)
    with pytest.raises(lmmbook.RankDeficientError, match="rank 4 of 6.*drop"):
        lmmbook.solve_mme(r["fat_yield"].to_numpy(), X, [ped.incidence(r["cow"]),
                          lmmbook.incidence(r["cow"])], [ped.A_inverse(), None],
                          [v["sigma2_a"], v["sigma2_pe"]], v["sigma2_e"])


def test_formula_x_gives_the_same_blups_as_mrode_5_1():
    fit, _ = mrode_5_1()
    ex = mrode_example_5_1()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    # parity nested in HYS here, so "C(hys) - 1" alone spans the same space as [HYS | parity]
    byf = lmmbook.solve_mme(r["fat_yield"], "~ C(hys) - 1", [ped.incidence(r["cow"]),
                            lmmbook.incidence(r["cow"])], [ped.A_inverse(), None],
                            [v["sigma2_a"], v["sigma2_pe"]], v["sigma2_e"], data=r)
    assert byf.fixed_names.tolist() == ["C(hys)[1]", "C(hys)[2]", "C(hys)[3]", "C(hys)[4]"]
    for u, u_ref in zip(byf.u, fit.u, strict=True):
        np.testing.assert_allclose(u, u_ref, rtol=1e-9, atol=1e-9)


def test_mrode_5_2_litter_effect():
    ex = mrode_example_5_2()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    fit = lmmbook.solve_mme(r["weaning_weight"].to_numpy(),
                            lmmbook.incidence(r["sex"], levels=["M", "F"]),
                            [ped.incidence(r["piglet"]), lmmbook.incidence(r["litter_dam"])],
                            [ped.A_inverse(), None], [v["sigma2_a"], v["sigma2_c"]], v["sigma2_e"])
    np.testing.assert_allclose(fit.b, [91.493, 75.764], atol=PRINTED)
    a, c = fit.u
    np.testing.assert_allclose(a, [-1.441, -1.175, 1.441, 1.441, -0.266, -1.098, -1.667, -2.334,
                                   3.925, 2.895, -1.141, 1.525, 0.448, 0.545, -3.819],
                               atol=PRINTED)
    np.testing.assert_allclose(c, [-1.762, 2.161, -0.399], atol=PRINTED)
    assert fit.levels[1].tolist() == [2, 4, 5]


def mrode_8_1_inputs():
    ex = mrode_example_8_1()
    r, v, ped = ex.records, ex.variances, pedigree_of(ex)
    X = pd.concat([dummies(r["herd"], "herd"), dummies(r["pen"], "pen")], axis=1)
    Z = [(ped.incidence(r["calf"]), ped.incidence(r["dam"])), lmmbook.incidence(r["dam"])]
    return r["birth_weight"].to_numpy(), X, Z, [ped.A_inverse(), None], [v["G0"],
                                                                       v["sigma2_pe"]], v


@pytest.mark.parametrize("method", ["direct", "pcg"])
def test_mrode_8_1_maternal_model(method):
    y, X, Z, K_inv, sigma2_u, v = mrode_8_1_inputs()
    fit = lmmbook.solve_mme(y, X.drop(columns=["herd1"]), Z, K_inv, sigma2_u, v["sigma2_e"],
                            method=method, names=["direct", "maternal", "pe"])
    np.testing.assert_allclose(fit.b, [3.386, 1.434, 34.540, 27.691], atol=PRINTED)
    assert fit.levels[0].tolist() == fit.levels[1].tolist()  # A^-1's order (parents first)
    animals = list(range(1, 15))
    direct = fit.random_effects("direct").loc[animals, "u"]
    maternal = fit.random_effects("maternal").loc[animals, "u"]
    pe = fit.u[2]
    np.testing.assert_allclose(direct, [0.564, -1.244, 1.165, -0.484, 0.630, -0.859, -1.156,
                                        1.917, -0.553, -1.055, 0.385, 0.863, -2.980, 1.751],
                               atol=PRINTED)
    np.testing.assert_allclose(maternal, [0.262, -1.583, 0.736, 0.586, -0.507, 0.841, 1.299,
                                          -0.158, 0.660, -0.153, 0.916, 0.442, 0.093, 0.362],
                               atol=PRINTED)
    np.testing.assert_allclose(pe, [-1.701, 0.415, 0.825, 0.461], atol=PRINTED)
    table = fit.random_effects()
    assert table.loc[("maternal", 7), "u"] == pytest.approx(1.299, abs=PRINTED)
    assert fit.random_effects("pe").index.tolist() == [2, 5, 6, 7]


def test_mrode_8_1_variance_ratios_and_the_429_non_zeros():
    y, X, Z, K_inv, sigma2_u, v = mrode_8_1_inputs()
    np.testing.assert_allclose(v["sigma2_e"] * np.linalg.inv(v["G0"]),
                               [[2.647, 1.176], [1.176, 4.412]], atol=PRINTED)
    effects = model.random_effects(Z, K_inv, None, len(y), inverse=True)
    G0s = model.covariances(sigma2_u, effects)
    observed = np.ones(len(y), dtype=bool)
    W = model.observed_design(effects, observed, sparse=True)
    C, _ = model.coefficient_matrix(X.to_numpy(), W, effects, G0s, v["sigma2_e"], sparse=True)
    assert C.shape == (37, 37)
    C = C.toarray()
    assert np.count_nonzero(np.abs(C) > 1e-12) == 429


# ---- against the dense V form -------------------------------------------------------------------

def random_general(seed, n, q, k, missing):
    """Records on q related levels with k correlated designs (the second links to a 'dam'), and
    an uncorrelated identity-structure effect with its own levels."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    designs = []
    for _ in range(k):
        Z = np.zeros((n, q))
        Z[np.arange(n), rng.integers(0, q, n)] = 1.0
        designs.append(Z)
    q2 = max(2, q // 3)
    Z2 = np.zeros((n, q2))
    Z2[np.arange(n), rng.integers(0, q2, n)] = 1.0
    L = rng.normal(size=(q, q)) / np.sqrt(q)
    K = L @ L.T + 0.5 * np.eye(q)
    B = rng.normal(size=(k, k))
    G0 = B @ B.T + 0.3 * np.eye(k)
    s2_2, s2e = rng.uniform(0.2, 2.0, 2)
    y = X @ rng.normal(size=2) + sum(Z @ rng.normal(size=q) for Z in designs) + rng.normal(size=n)
    y[rng.random(n) < missing] = np.nan
    y[0] = 1.0
    return y, X, designs, Z2, K, G0, s2_2, s2e


general = st.builds(random_general, seed=st.integers(0, 2**32 - 1), n=st.integers(15, 50),
                    q=st.integers(3, 12), k=st.integers(1, 3), missing=st.sampled_from([0.0, 0.2]))


@settings(max_examples=40)
@given(general, st.booleans())
def test_general_mme_agree_with_the_dense_v_form(problem, sparse):
    y, X, designs, Z2, K, G0, s2_2, s2e = problem
    k, q = len(designs), len(K)
    G = la.block_diag(np.kron(G0, K), s2_2 * np.eye(Z2.shape[1]))
    b_ref, u_ref, pev_ref = gls_blup_general(y, X, [*designs, Z2], G, s2e)
    K_inv = np.linalg.inv(K)
    if sparse:
        designs, Z2, K_inv = [sp.csr_array(Z) for Z in designs], sp.csr_array(Z2), sp.csr_array(
            K_inv)
    entry = tuple(designs) if k > 1 else designs[0]
    fit = lmmbook.solve_mme(y, X, [entry, Z2], [K_inv, None],
                            [G0 if k > 1 else G0[0, 0], s2_2], s2e, K_diag=[np.diag(K), None])
    np.testing.assert_allclose(fit.b, b_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.concatenate(fit.u), u_ref, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(np.concatenate(fit.pev), pev_ref, rtol=1e-7, atol=1e-9)
    expected_rel = 1 - pev_ref / np.diag(G)
    np.testing.assert_allclose(np.concatenate(fit.reliability), expected_rel, atol=1e-8)
    assert len(fit.u) == k + 1 and all(len(u) == q for u in fit.u[:k])
    pcg = lmmbook.solve_mme(y, X, [entry, Z2], [K_inv, None], [G0 if k > 1 else G0[0, 0], s2_2],
                            s2e, method="pcg", tol=1e-11, maxiter=500)
    np.testing.assert_allclose(np.concatenate(pcg.u), np.concatenate(fit.u), rtol=1e-6,
                               atol=1e-8)


def test_pe_levels_without_records_are_predicted_at_zero():
    y, X, Z, K_inv, sigma2_u, v = mrode_8_1_inputs()
    ped = pedigree_of(mrode_example_8_1())
    r = mrode_example_8_1().records
    # pe over all 14 animals: the 10 without calves get pe 0 and reliability 0
    Z_all = [Z[0], ped.incidence(r["dam"])]
    fit = lmmbook.solve_mme(y, X.drop(columns=["herd1"]), Z_all, K_inv, sigma2_u, v["sigma2_e"])
    pe = fit.u[2]
    without = ~np.isin(fit.levels[2], r["dam"].unique())
    assert np.all(pe[without] == 0) and np.allclose(fit.reliability[2][without], 0, atol=1e-12)
    dams = pd.Series(pe, index=fit.levels[2]).loc[[2, 5, 6, 7]]
    np.testing.assert_allclose(dams, [-1.701, 0.415, 0.825, 0.461], atol=PRINTED)


# ---- REML ---------------------------------------------------------------------------------------

def maternal_data(seed, **kwargs):
    options = dict(n_generations=2, n_dams=40, n_sires=6, offspring_per_dam=3,
                   G0=np.array([[30.0, -8.0], [-8.0, 15.0]]), sigma2_c=10.0, sigma2_e=40.0)
    options.update(kwargs)
    d = lmmbook.simulate_livestock(**options, seed=seed)
    ped = lmmbook.Pedigree(d.pedigree["animal"], d.pedigree["sire"], d.pedigree["dam"])
    r = d.records
    Z = [(ped.incidence(r["animal"]).matrix.toarray(), ped.incidence(r["dam"]).matrix.toarray()),
         lmmbook.incidence(r["dam"]).matrix.toarray()]
    return r["y"].to_numpy(), lmmbook.incidence(r["herd"]).matrix.toarray(), Z, ped.A()


def _theta(fit):
    G0 = fit.sigma2_u[0]
    return np.array([G0[0, 0], G0[1, 0], G0[1, 1], *fit.sigma2_u[1:], fit.sigma2_e])


def _parts(Z, A):
    (Zd, Zm), *others = Z
    H_dm = Zd @ A @ Zm.T
    return [Zd @ A @ Zd.T, H_dm + H_dm.T, Zm @ A @ Zm.T] + [Zc @ Zc.T for Zc in others]


def _dense_optimum(y, X, Hs, start):
    """The REML likelihood of tests/reference.py maximised by BFGS over a Cholesky factor of G0
    (always positive semi-definite) and square roots of the residual variance: independent of
    lmmbook's AI and EM."""
    def negative(x):
        L = np.array([[x[0], 0.0], [x[1], x[2]]])
        G0 = L @ L.T
        return -reml_loglik(y, X, Hs, np.array([G0[0, 0], G0[1, 0], G0[1, 1], x[3] ** 2]))

    best = opt.minimize(negative, start, method="BFGS", options={"gtol": 1e-9})
    return -best.fun


def maternal_records(seed):
    return maternal_data(seed, n_dams=50, offspring_per_dam=4, sigma2_c=0.0,
                         G0=np.array([[40.0, -10.0], [-10.0, 30.0]]), sigma2_e=30.0)


def test_reml_of_a_maternal_model_maximises_the_dense_likelihood():
    y, X, Z, A = maternal_records(2)
    Z = [Z[0]]
    ai = lmmbook.reml(y, X, Z, [A], method="ai", names=["direct", "maternal"])
    assert ai.converged and ai.boundary is None
    theta = _theta(ai)
    Hs = _parts(Z, A)
    assert ai.loglik == pytest.approx(reml_loglik(y, X, Hs, theta), rel=1e-12)
    score, info = reml_score_and_information(y, X, Hs, theta)
    np.testing.assert_allclose(score * theta.sum(), 0, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(info))), ai.components()["se"][:4],
                               rtol=1e-8)
    start = np.sqrt(np.var(y) / 3) * np.array([1.0, 0.0, 1.0, 1.0])
    assert _dense_optimum(y, X, Hs, start) == pytest.approx(ai.loglik, abs=1e-6)
    em = lmmbook.reml(y, X, Z, [A], method="em", names=["direct", "maternal"])
    assert em.converged
    np.testing.assert_allclose(_theta(em), theta, rtol=1e-5, atol=1e-5 * theta.sum())
    table = ai.components()
    r = table.loc["cor(direct,maternal)", "estimate"]
    assert r == pytest.approx(theta[1] / np.sqrt(theta[0] * theta[2]))
    P = theta.sum()  # Willham's sigma2_P: both variances, the covariance once, e
    assert ai.h2[0] == pytest.approx(theta[0] / P) and ai.h2[1] == pytest.approx(theta[2] / P)
    assert "cor(direct,maternal)" in ai.summary()


def test_reml_on_the_edge_of_the_cone_is_reported_and_not_beaten():
    # this sample puts the optimum at a direct-maternal correlation of +1
    y, X, Z, A = maternal_records(3)
    Z = [Z[0]]
    ai = lmmbook.reml(y, X, Z, [A], method="ai", names=["direct", "maternal"])
    assert ai.converged
    assert ai.boundary == "G0 of (direct, maternal) singular (a correlation of +-1)"
    assert ai.components().loc["cor(direct,maternal)", "estimate"] == pytest.approx(1.0, abs=1e-3)
    start = np.sqrt(np.var(y) / 3) * np.array([1.0, 0.0, 1.0, 1.0])
    best = _dense_optimum(y, X, _parts(Z, A), start)
    assert best == pytest.approx(ai.loglik, abs=1e-5) and best <= ai.loglik + 1e-7


@settings(max_examples=8)
@given(st.integers(0, 10_000))
def test_ai_iterates_keep_g0_positive_semidefinite(seed):
    # a strong direct-maternal correlation in small data puts the optimum near the cone's edge
    y, X, Z, A = maternal_data(seed, n_dams=25, G0=np.array([[20.0, 13.0], [13.0, 9.0]]))
    fit = lmmbook.reml(y, X, Z, [A, None], method="ai", names=["d", "m", "c"])
    for _, row in fit.history.iterrows():
        G0 = np.array([[row["var(d)"], row["cov(d,m)"]], [row["cov(d,m)"], row["var(m)"]]])
        assert np.linalg.eigvalsh(G0)[0] >= -1e-9 * np.trace(G0)
    assert fit.history["loglik"].diff().dropna().min() >= -1e-8 * abs(fit.loglik)
    if fit.converged and fit.boundary is None:
        score, _ = reml_score_and_information(y, X, _parts(Z, A), _theta(fit))
        np.testing.assert_allclose(score * _theta(fit).sum(), 0, atol=1e-4)


def test_two_uncorrelated_effects_equal_a_list_with_a_one_design_tuple():
    y, X, Z, A = maternal_data(7)
    (Zd, _), Zc = Z
    plain = lmmbook.reml(y, X, [Zd, Zc], [A, None], method="ai")
    tupled = lmmbook.reml(y, X, [(Zd,), Zc], [A, None], method="ai")
    assert plain.sigma2_u == pytest.approx(tupled.sigma2_u, rel=1e-12)


# ---- bad input ----------------------------------------------------------------------------------

def test_errors_of_the_general_model():
    y, X, Z, K_inv, sigma2_u, v = mrode_8_1_inputs()
    X = X.drop(columns=["herd1"])
    (Zd, Zm), Zc = Z
    s2e = v["sigma2_e"]
    with pytest.raises(ShapeMismatchError, match="has 13 columns but Z.*14.*same columns"):
        lmmbook.solve_mme(y, X, [(Zd, Zm.matrix[:, :13]), Zc], K_inv, sigma2_u, s2e)
    with pytest.raises(NotPositiveDefiniteError, match="smallest eigenvalue is -.*correlation"):
        lmmbook.solve_mme(y, X, Z, K_inv, [np.array([[150.0, 130.0], [130.0, 90.0]]), 40.0], s2e)
    with pytest.raises(NotPositiveDefiniteError, match="not symmetric"):
        lmmbook.solve_mme(y, X, Z, K_inv, [np.array([[150.0, -40.0], [-30.0, 90.0]]), 40.0], s2e)
    with pytest.raises(ShapeMismatchError, match=r"must be a \(2, 2\) covariance matrix"):
        lmmbook.solve_mme(y, X, Z, K_inv, [150.0, 40.0], s2e)
    with pytest.raises(ShapeMismatchError, match="Z has 2, K_inv has 3"):
        lmmbook.solve_mme(y, X, Z, K_inv + [None], sigma2_u, s2e)
    with pytest.raises(ShapeMismatchError, match="K_inv is one matrix"):
        lmmbook.solve_mme(y, X, Z, K_inv[0], sigma2_u, s2e)
    with pytest.raises(ShapeMismatchError, match="Z is one design"):
        lmmbook.solve_mme(y, X, Zd, K_inv, sigma2_u, s2e)
    with pytest.raises(ShapeMismatchError, match="sigma2_u has 1 entries but Z has 2"):
        lmmbook.solve_mme(y, X, Z, K_inv, [v["G0"]], s2e)
    with pytest.raises(VarianceError, match="must be positive"):
        lmmbook.solve_mme(y, X, Z, K_inv, [v["G0"], -1.0], s2e)
    with pytest.raises(ShapeMismatchError, match="names must give 3 distinct names without commas"):
        lmmbook.solve_mme(y, X, Z, K_inv, sigma2_u, s2e, names=["a", "m"])
    with pytest.raises(lmmbook.InputError, match="no data= was given"):
        lmmbook.solve_mme(y, "~ C(herd)", Z, K_inv, sigma2_u, s2e)
    with pytest.raises(lmmbook.InputError, match="one random effect"):
        lmmbook.solve_mme(y, X, Z, K_inv, sigma2_u, s2e).lambda_  # noqa: B018


def test_a_tuple_alone_is_one_correlated_entry():
    y, X, Z, K_inv, sigma2_u, v = mrode_8_1_inputs()
    X = X.drop(columns=["herd1"])
    fit = lmmbook.solve_mme(y, X, Z[0], K_inv[0], v["G0"], v["sigma2_e"])
    assert len(fit.u) == 2 and fit.sigma2_u[0].shape == (2, 2)


def test_simulated_livestock_follows_its_model():
    d = lmmbook.simulate_livestock(3, 60, 6, offspring_per_dam=3, n_records=2,
                                   G0=np.array([[20.0, -5.0], [-5.0, 10.0]]), sigma2_pe=5.0,
                                   sigma2_c=4.0, sigma2_e=30.0, seed=5)
    ped, r, t = d.pedigree, d.records, d.truth
    assert (ped["sire"] < ped["animal"]).all() and (ped["dam"] < ped["animal"]).all()
    assert len(r) == 2 * (ped["generation"] > 0).sum()
    # offspring values are their parents' mean plus Mendelian sampling: regression slope ~ 1
    kids = ped[ped["generation"] > 0]
    mid = 0.5 * (t.loc[kids["sire"], "direct"].to_numpy() + t.loc[kids["dam"], "direct"].to_numpy())
    slope = np.polyfit(mid, t.loc[kids["animal"], "direct"], 1)[0]
    assert 0.7 < slope < 1.3
    # the record is the sum of its parts: residual variance near sigma2_e
    herd_mean = r.groupby("herd")["y"].transform("mean")
    fitted = (t.loc[r["animal"], "direct"].to_numpy() + t.loc[r["dam"], "maternal"].to_numpy()
              + t.loc[r["dam"], "c"].to_numpy() + t.loc[r["animal"], "pe"].to_numpy())
    resid = r["y"] - herd_mean - (fitted - pd.Series(fitted).groupby(r["herd"].to_numpy())
                                  .transform("mean").to_numpy())
    assert resid.var() == pytest.approx(30.0, rel=0.2)


def test_rank_check_of_a_sparse_x_works_block_by_block():
    # 3,000 herd-years on their own records (each a block of one column) beside two confounded
    # factors on other records: the dependency is found in its block and named, with which
    # column to drop; the herd-years are not involved
    from lmmbook import _checks

    rng = np.random.default_rng(1)
    hy = lmmbook.incidence(np.r_[np.arange(3_000), rng.integers(0, 3_000, 6_000)]).matrix
    season = rng.integers(0, 2, 500)
    nested = sp.hstack([lmmbook.incidence(season).matrix,
                        lmmbook.incidence(season + 2).matrix])  # parity = season + 2
    X = sp.block_diag([hy, nested], format="csr")
    names = pd.Index([f"hy{j}" for j in range(3_000)] + ["s0", "s1", "p2", "p3"])
    with pytest.raises(lmmbook.RankDeficientError, match=r"rank 3002 of 3004.*columns 's0', "
                       r"'s1', 'p2', 'p3' are linearly dependent.*drop 'p2' and 'p3'"):
        _checks.full_column_rank("X", X, names)
    _checks.full_column_rank("X", X[:, :3_002], names[:3_002])  # one factor per block: passes


def test_reml_of_two_uncorrelated_effects_maximises_the_dense_likelihood():
    y, X, Z, A = maternal_data(2, n_dams=50, offspring_per_dam=4, G0=30.0, sigma2_c=15.0,
                               sigma2_e=30.0)
    (Zd, _), Zc = Z
    fit = lmmbook.reml(y, X, [Zd, Zc], [A, None], method="ai")
    assert fit.converged and fit.boundary is None
    Hs = [Zd @ A @ Zd.T, Zc @ Zc.T]
    theta = np.array([*fit.sigma2_u, fit.sigma2_e])
    score, _ = reml_score_and_information(y, X, Hs, theta)
    np.testing.assert_allclose(score * theta.sum(), 0, atol=1e-5)

    def negative(x):
        return -reml_loglik(y, X, Hs, x**2)

    best = opt.minimize(negative, np.sqrt(np.full(3, np.var(y) / 3)), method="BFGS",
                        options={"gtol": 1e-9})
    assert -best.fun == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(best.x**2, theta, rtol=1e-3)


def test_a_residual_variance_on_its_floor_is_reported():
    # a sample whose optimum puts sigma2_e at 0 (and the direct-maternal correlation at -1)
    d = lmmbook.simulate_livestock(2, 100, 5, offspring_per_dam=2,
                                   G0=np.array([[30.0, -6.0], [-6.0, 12.0]]), sigma2_c=10.0,
                                   sigma2_e=54.0, n_herds=10, seed=4)
    r = d.records
    ped = lmmbook.Pedigree(d.pedigree["animal"], d.pedigree["sire"], d.pedigree["dam"])
    fit = lmmbook.reml(r["y"], lmmbook.incidence(r["herd"]),
                       [(ped.incidence(r["animal"]), ped.incidence(r["dam"])),
                        lmmbook.incidence(r["dam"])], [ped.A(), None], method="ai",
                       names=["direct", "maternal", "pe"])
    assert fit.converged and fit.sigma2_e < 1e-6 * np.var(r["y"])
    assert "sigma2_e = 0" in fit.boundary
