"""Several traits at once (chapter 11): solve_mme with y an (n, t) table.

Checked three ways: against a dense V form written out below from the definitions (the observed
(record, trait) pairs stacked trait by trait, unlike lmmbook's record-by-record stacking), against
Mrode & Pocrnic (2023)'s printed solutions of Examples 6.1 and 6.2
(../shared/examples/mrode-4ed/ex-06-1.md, ex-06-2.md), and by the refusals of bad input.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import tabular_A

import lmmbook
from lmmbook.datasets import mrode_example_6_1, mrode_example_6_2
from lmmbook.errors import (
    InputError,
    NonFiniteError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)

# Mrode prints 3 decimals; the example files accept 0.001 (PEV 0.003, W1 0.0005).
PRINTED = 1e-3


# ---- the dense V form ---------------------------------------------------------------------------

def multitrait_gls_blup(Y, Xs, designs, G0, K, R0):
    """BLUE and BLUP of t traits from the V form, with explicit inverses.

    Y is (n, t) with NaN for a trait not recorded; Xs one (n, p_a) design per trait; designs the k
    (n, q) designs of correlated effects over the same levels (k = 1 for an animal model); G0 the
    (k t, k t) covariance matrix ordered effect by effect, traits within; K the (q, q) structure;
    R0 the (t, t) residual covariance matrix of one record.

    The observed pairs (i, a) are stacked trait by trait: y_s = vec(Y) over them, X_s = blockdiag
    of the S_a X_a, Z_s column block (j, a) = S_a D_j, so Var(u) = G0 kron K with u ordered
    (effect, trait, level); R[(i, a), (i', c)] = R0[a, c] when i = i', else 0;
    V = Z_s (G0 kron K) Z_s' + R; b = (X_s' V^-1 X_s)^-1 X_s' V^-1 y_s;
    u = (G0 kron K) Z_s' V^-1 (y_s - X_s b); PEV = diag(G - G Z_s' P Z_s G).

    Returns b (trait by trait), and u and PEV as k arrays of shape (q, t).
    """
    Y = np.asarray(Y, dtype=float)
    n, t = Y.shape
    k, q = len(designs), designs[0].shape[1]
    trait, record = np.nonzero(np.isfinite(Y.T))  # trait-major: all of trait 1 first
    y = Y[record, trait]
    widths = [X.shape[1] for X in Xs]
    start = np.concatenate([[0], np.cumsum(widths)])
    X_s = np.zeros((len(y), start[-1]))
    Z_s = np.zeros((len(y), k * t * q))
    for a in range(t):
        rows = np.flatnonzero(trait == a)
        X_s[np.ix_(rows, np.arange(start[a], start[a + 1]))] = np.asarray(Xs[a])[record[rows]]
        for j, D in enumerate(designs):
            block = np.arange((j * t + a) * q, (j * t + a + 1) * q)
            Z_s[np.ix_(rows, block)] = np.asarray(D)[record[rows]]
    G = np.kron(G0, K)
    R = np.where(record[:, None] == record[None, :], R0[trait[:, None], trait[None, :]], 0.0)
    V_inv = np.linalg.inv(Z_s @ G @ Z_s.T + R)
    XVX_inv = np.linalg.inv(X_s.T @ V_inv @ X_s)
    b = XVX_inv @ X_s.T @ V_inv @ y
    P = V_inv - V_inv @ X_s @ XVX_inv @ X_s.T @ V_inv
    u = G @ Z_s.T @ V_inv @ (y - X_s @ b)
    pev = np.diag(G - G @ Z_s.T @ P @ Z_s @ G)
    return b, list(u.reshape(k, t, q).transpose(0, 2, 1)), list(
        pev.reshape(k, t, q).transpose(0, 2, 1))


def random_spd(rng, m, ridge):
    L = rng.normal(size=(m, m))
    return L @ L.T / m + ridge * np.eye(m)


def random_pedigree(rng, q):
    """Animals 1..q, parents before offspring; sires odd, dams even (no ID in both roles)."""
    sire, dam = np.zeros(q, dtype=int), np.zeros(q, dtype=int)
    for i in range(2, q):
        earlier = np.arange(1, i + 1)
        if rng.random() < 0.8:
            sire[i] = rng.choice(earlier[earlier % 2 == 1])
        if rng.random() < 0.8:
            dam[i] = rng.choice(earlier[earlier % 2 == 0])
    return sire, dam


def structure(rng, q, pedigree):
    """K and K^-1 in the order 0..q-1: A of a random pedigree (K^-1 sparse from lmmbook's
    Henderson rules, A from the tabular method of tests/reference.py), else a random SPD K."""
    if not pedigree:
        K = random_spd(rng, q, 0.5)
        return K, np.linalg.inv(K)
    sire, dam = random_pedigree(rng, q)
    ids = np.arange(1, q + 1)
    ped = lmmbook.Pedigree(ids, sire, dam)
    order = ped.index(ids)  # lmmbook sorts by depth; bring A^-1 back to 1..q
    P = sp.csr_array((np.ones(q), (np.arange(q), order)), shape=(q, q))
    return tabular_A(sire, dam), (P @ ped.A_inverse() @ P.T).tocsc()


def fixed_designs(rng, n, t):
    """A different design per trait: intercept + covariate, two groups without intercept,
    intercept alone (cycled), as DataFrames with named columns."""
    x = rng.normal(size=n)
    group = rng.integers(0, 2, n)
    group[:2] = [0, 1]
    choices = [pd.DataFrame({"mu": 1.0, "x": x}),
               pd.DataFrame({"g0": (group == 0) * 1.0, "g1": (group == 1) * 1.0}),
               pd.DataFrame({"mu": np.ones(n)})]
    return [choices[a % 3] for a in range(t)]


def random_multitrait(seed, n, q, t, k, pedigree, missing_one, missing_all):
    """n records of t traits on q levels with k correlated designs; the first 2 t + 4 records
    complete, later ones missing one trait (fraction missing_one) or all (missing_all)."""
    rng = np.random.default_rng(seed)
    K, K_inv = structure(rng, q, pedigree)
    designs = []
    for _ in range(k):
        D = np.zeros((n, q))
        D[np.arange(n), rng.integers(0, q, n)] = 1.0
        designs.append(D)
    Xs = fixed_designs(rng, n, t)
    G0, R0 = random_spd(rng, k * t, 0.3), random_spd(rng, t, 0.3)
    Y = rng.normal(size=(n, t)) * 2 + sum(D @ rng.normal(size=(q, t)) for D in designs)
    complete = 2 * t + 4
    later = np.arange(complete, n)
    one = later[rng.random(len(later)) < missing_one]
    Y[one, rng.integers(0, t, len(one))] = np.nan
    Y[later[rng.random(len(later)) < missing_all]] = np.nan
    return Y, Xs, designs, K, K_inv, G0, R0


def frame(Y):
    return pd.DataFrame(Y, columns=[f"T{a + 1}" for a in range(Y.shape[1])])


def assert_matches_reference(fit, Y, Xs, designs, K, G0, R0):
    b_ref, u_ref, pev_ref = multitrait_gls_blup(Y, [X.to_numpy() for X in Xs], designs, G0, K, R0)
    us = fit.u if isinstance(fit.u, tuple) else (fit.u,)
    pevs = fit.pev if isinstance(fit.pev, tuple) else (fit.pev,)
    rels = fit.reliability if isinstance(fit.reliability, tuple) else (fit.reliability,)
    scale = max(np.abs(b_ref).max(), max(np.abs(u).max() for u in u_ref))
    np.testing.assert_allclose(fit.b, b_ref, rtol=1e-8, atol=1e-9 * scale)
    t = Y.shape[1]
    for j, (u, pev, rel) in enumerate(zip(us, pevs, rels, strict=True)):
        assert u.shape == (len(K), t)
        np.testing.assert_allclose(u, u_ref[j], rtol=1e-7, atol=1e-9 * scale)
        np.testing.assert_allclose(pev, pev_ref[j], rtol=1e-7, atol=1e-10 * np.trace(G0))
        g = np.diag(G0)[j * t:(j + 1) * t]
        np.testing.assert_allclose(rel, 1 - pev_ref[j] / np.outer(np.diag(K), g), atol=1e-8)


# ---- against the dense V form -------------------------------------------------------------------

animal_models = st.builds(
    random_multitrait, seed=st.integers(0, 2**32 - 1), n=st.integers(14, 40),
    q=st.integers(3, 15), t=st.integers(2, 3), k=st.just(1), pedigree=st.booleans(),
    missing_one=st.sampled_from([0.0, 0.3]), missing_all=st.sampled_from([0.0, 0.2]))


@settings(max_examples=40)
@given(animal_models, st.booleans())
def test_agrees_with_the_dense_v_form(problem, own_x):
    Y, Xs, designs, K, K_inv, G0, R0 = problem
    if not own_x:
        Xs = [Xs[0]] * Y.shape[1]
    X = dict(zip(frame(Y).columns, Xs, strict=True)) if own_x else Xs[0]
    fit = lmmbook.solve_mme(frame(Y), X, designs[0], K_inv, G0, R0)
    assert_matches_reference(fit, Y, Xs, designs, K, G0, R0)
    assert fit.traits == tuple(frame(Y).columns)
    expected = [f"{trait}:{c}" for trait, Xa in zip(fit.traits, Xs, strict=True) for c in Xa]
    assert fit.fixed_names.tolist() == expected
    unused = np.flatnonzero(np.isnan(Y).all(axis=1))
    assert fit.unused_records.tolist() == unused.tolist()
    assert fit.n_obs == len(Y) - len(unused)


@settings(max_examples=15)
@given(animal_models)
def test_records_without_any_trait_leave_the_equations(problem):
    Y, Xs, designs, K, K_inv, G0, R0 = problem
    Y = Y.copy()
    Y[[len(Y) - 1, len(Y) - 3]] = np.nan  # at least two records with nothing observed
    ids = pd.Index([f"r{i}" for i in range(len(Y))])
    Yf = frame(Y).set_axis(ids)
    X = {trait: Xa.set_axis(ids) for trait, Xa in zip(Yf.columns, Xs, strict=True)}
    fit = lmmbook.solve_mme(Yf, X, designs[0], K_inv, G0, R0)
    keep = ~np.isnan(Y).all(axis=1)
    assert fit.unused_records.tolist() == ids[~keep].tolist()
    dropped = lmmbook.solve_mme(Yf[keep], {a: Xa[keep] for a, Xa in X.items()},
                                designs[0][keep], K_inv, G0, R0)
    assert dropped.unused_records.tolist() == []
    np.testing.assert_allclose(fit.b, dropped.b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.u, dropped.u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.pev, dropped.pev, rtol=1e-10)


@settings(max_examples=20)
@given(animal_models)
def test_uncorrelated_traits_are_separate_single_trait_fits(problem):
    Y, Xs, designs, K, K_inv, G0, R0 = problem
    G0, R0 = np.diag(np.diag(G0)), np.diag(np.diag(R0))
    Yf = frame(Y)
    X = dict(zip(Yf.columns, Xs, strict=True))
    fit = lmmbook.solve_mme(Yf, X, designs[0], K_inv, G0, R0)
    b = fit.fixed_effects()
    for a, trait in enumerate(Yf.columns):
        one = lmmbook.solve_mme(Y[:, a], Xs[a], designs[0], K_inv, G0[a, a], R0[a, a])
        scale = max(np.abs(one.b).max(), np.abs(one.u).max())
        np.testing.assert_allclose(b.loc[trait].to_numpy(), one.b, rtol=1e-10,
                                   atol=1e-10 * scale)
        np.testing.assert_allclose(fit.u[:, a], one.u, rtol=1e-10, atol=1e-10 * scale)
        np.testing.assert_allclose(fit.pev[:, a], one.pev, rtol=1e-10)
        np.testing.assert_allclose(fit.reliability[:, a], one.reliability, atol=1e-10)


maternal_models = st.builds(
    random_multitrait, seed=st.integers(0, 2**32 - 1), n=st.integers(20, 40),
    q=st.integers(4, 12), t=st.just(2), k=st.just(2), pedigree=st.booleans(),
    missing_one=st.sampled_from([0.0, 0.3]), missing_all=st.sampled_from([0.0, 0.1]))


@settings(max_examples=20)
@given(maternal_models)
def test_direct_and_maternal_effects_of_two_traits_agree_with_the_dense_v_form(problem):
    Y, Xs, designs, K, K_inv, G0, R0 = problem
    Yf = frame(Y)
    fit = lmmbook.solve_mme(Yf, dict(zip(Yf.columns, Xs, strict=True)), tuple(designs), K_inv,
                            G0, R0, names=["direct", "maternal"])
    assert len(fit.u) == 2 and fit.sigma2_u[0].shape == (4, 4)
    assert_matches_reference(fit, Y, Xs, designs, K, G0, R0)
    table = fit.random_effects("maternal")
    assert table.columns.names == ["quantity", "trait"]
    np.testing.assert_array_equal(table[("u", "T2")], fit.u[1][:, 1])


def sparse_pedigree_problem(seed, n_animals=300, t=2, maternal=False):
    rng = np.random.default_rng(seed)
    sire, dam = random_pedigree(rng, n_animals)
    ids = np.arange(1, n_animals + 1)
    ped = lmmbook.Pedigree(ids, sire, dam)
    recorded = ids[n_animals // 5:]  # founders and early animals without records
    herd = rng.integers(0, 8, len(recorded))
    herd[:8] = np.arange(8)
    Y = rng.normal(size=(len(recorded), t)) + herd[:, None] * 0.5
    Y[rng.random(len(recorded)) < 0.3, 1] = np.nan  # trait 2 missing on ~30 %
    Y[rng.random(len(recorded)) < 0.05] = np.nan
    Y[:8] = rng.normal(size=(8, t))
    Z = ped.incidence(recorded)
    if maternal:
        dams = dam[recorded - 1]
        dams[dams == 0] = 2  # a maternal design needs a dam column; 2 is an even founder
        Z = (Z, ped.incidence(dams))
    G0 = random_spd(rng, t * (2 if maternal else 1), 0.3)
    R0 = random_spd(rng, t, 0.5)
    return frame(Y), lmmbook.incidence(herd), Z, ped.A_inverse(), G0, R0


@pytest.mark.parametrize("maternal", [False, True])
def test_pcg_with_the_block_preconditioner_equals_the_direct_solution(maternal):
    Yf, X, Z, A_inv, G0, R0 = sparse_pedigree_problem(3, maternal=maternal)
    direct = lmmbook.solve_mme(Yf, X, Z, A_inv, G0, R0)
    pcg = lmmbook.solve_mme(Yf, X, Z, A_inv, G0, R0, method="pcg")
    assert direct.method == "direct" and pcg.method == "pcg" and pcg.pev is None
    assert pcg.residuals[-1] <= 1e-10 and pcg.n_iter == len(pcg.residuals) - 1
    us, ups = (direct.u, pcg.u) if maternal else ((direct.u,), (pcg.u,))
    scale = max(np.abs(u).max() for u in us)
    np.testing.assert_allclose(pcg.b, direct.b, rtol=0, atol=1e-7 * np.abs(direct.b).max())
    for u, up in zip(us, ups, strict=True):
        np.testing.assert_allclose(up, u, rtol=0, atol=1e-7 * scale)


# ---- Mrode & Pocrnic (2023), Examples 6.1 and 6.2 ----------------------------------------------

def mrode_6(example):
    ex = example()
    p, r, v = ex.pedigree, ex.records, ex.variances
    ped = lmmbook.Pedigree(p["animal"], p["sire"], p["dam"])
    X = lmmbook.incidence(r["sex"], levels=["M", "F"])
    Z = ped.incidence(r["calf"])
    fit = lmmbook.solve_mme(r[["wwg", "pwg"]], X, Z, ped.A_inverse(), v["G0"], v["R0"])
    return fit, ex, ped, X, Z


def by_animal(fit, quantity):
    return fit.random_effects()[quantity].loc[list(range(1, len(fit.levels) + 1))]


def test_mrode_6_1_bivariate_animal_model():
    fit, ex, *_ = mrode_6(mrode_example_6_1)
    assert fit.traits == ("wwg", "pwg") and fit.n_obs == 5 and len(fit.unused_records) == 0
    b = fit.fixed_effects()
    assert b.index.names == ["trait", "column"]
    np.testing.assert_allclose(b.loc[[("wwg", "M"), ("wwg", "F"), ("pwg", "M"), ("pwg", "F")]],
                               [4.361, 3.397, 6.800, 5.880], atol=PRINTED)
    u = by_animal(fit, "u")
    np.testing.assert_allclose(u["wwg"], [0.151, -0.015, -0.078, -0.010, -0.270, 0.276, -0.316,
                                          0.244], atol=PRINTED)
    np.testing.assert_allclose(u["pwg"], [0.280, -0.008, -0.170, -0.013, -0.478, 0.517, -0.479,
                                          0.392], atol=PRINTED)
    pev = by_animal(fit, "pev")
    np.testing.assert_allclose(pev["wwg"], [18.606, 19.596, 17.893, 16.506, 16.541, 17.152,
                                            17.115, 16.285], atol=0.003)
    np.testing.assert_allclose(pev["pwg"], [35.904, 38.768, 33.799, 29.727, 29.865, 31.504,
                                            31.364, 29.160], atol=0.003)
    rel = by_animal(fit, "reliability")
    np.testing.assert_allclose(rel["wwg"], [0.070, 0.020, 0.105, 0.175, 0.173, 0.142, 0.144,
                                            0.186], atol=PRINTED)
    np.testing.assert_allclose(rel["pwg"], [0.102, 0.031, 0.155, 0.257, 0.253, 0.212, 0.216,
                                            0.271], atol=PRINTED)
    # no animal is inbred, so r2 = 1 - PEV / g_tt
    np.testing.assert_allclose(rel, 1 - pev / np.diag(ex.variances["G0"]), atol=1e-12)


def test_mrode_6_1_calf_8_from_parent_average_and_yield_deviation():
    """Calf 8 (sire 3, dam 6, no progeny): its equation alone gives
    a_8 = W1 PA + W2 YD with W1 = (R0^-1 + 2 G0^-1)^-1 2 G0^-1 and W2 = I - W1."""
    fit, ex, *_ = mrode_6(mrode_example_6_1)
    G0_inv, R0_inv = np.linalg.inv(ex.variances["G0"]), np.linalg.inv(ex.variances["R0"])
    W1 = np.linalg.solve(R0_inv + 2 * G0_inv, 2 * G0_inv)
    W2 = np.linalg.solve(R0_inv + 2 * G0_inv, R0_inv)
    np.testing.assert_allclose(W1, [[0.8476, -0.1191], [-0.0237, 0.6092]], atol=5e-4)
    np.testing.assert_allclose(W1 + W2, np.eye(2), atol=1e-12)
    u = fit.random_effects()["u"]
    PA = (u.loc[3] + u.loc[6]).to_numpy() / 2
    assert PA[0] == pytest.approx(0.099, abs=PRINTED)
    assert PA[1] == pytest.approx(0.1735, abs=1e-4)  # printed with 4 decimals
    r = ex.records.set_index("calf")
    b = fit.fixed_effects()
    YD = np.array([r.loc[8, trait] - b.loc[(trait, r.loc[8, "sex"])] for trait in fit.traits])
    np.testing.assert_allclose(YD, [0.639, 0.700], atol=PRINTED)
    np.testing.assert_allclose(W1 @ PA + W2 @ YD, u.loc[8].to_numpy(), rtol=1e-10, atol=1e-13)


def test_mrode_6_1_single_trait_analyses():
    _, ex, ped, X, Z = mrode_6(mrode_example_6_1)
    r = ex.records
    wwg = lmmbook.solve_mme(r["wwg"], X, Z, ped.A_inverse(), 20.0, 40.0)
    np.testing.assert_allclose(wwg.u, [0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249,
                                       0.183], atol=PRINTED)
    pwg = lmmbook.solve_mme(r["pwg"], X, Z, ped.A_inverse(), 40.0, 30.0)
    np.testing.assert_allclose(pwg.b, [6.798, 5.879], atol=PRINTED)
    np.testing.assert_allclose(pwg.u, [0.277, -0.005, -0.171, -0.013, -0.471, 0.514, -0.464,
                                       0.384], atol=PRINTED)
    assert wwg.levels.tolist() == list(range(1, 9))


def test_mrode_6_2_bivariate_animal_model_with_missing_records():
    # The printed WWG sex block of C (X1' R^11 X1 = 0.081 I) is not checked: solve_mme does not
    # return C.
    fit, ex, ped, X, Z = mrode_6(mrode_example_6_2)
    assert fit.n_obs == 6 and len(fit.unused_records) == 0
    np.testing.assert_allclose(fit.b, [4.367, 3.657, 6.834, 6.007], atol=PRINTED)
    assert fit.fixed_names.tolist() == ["wwg:M", "wwg:F", "pwg:M", "pwg:F"]
    u = by_animal(fit, "u")
    np.testing.assert_allclose(u["wwg"], [0.130, -0.084, -0.098, 0.007, -0.343, 0.192, -0.308,
                                          0.201, -0.018], atol=PRINTED)
    np.testing.assert_allclose(u["pwg"], [0.266, -0.075, -0.194, 0.016, -0.555, 0.440, -0.483,
                                          0.349, -0.119], atol=PRINTED)
    # the equations with PWG missing on calves 4 and 9 equal the dense V form over the observed
    # pairs (R^-1 block diagonal by calf: 1/40 for a calf with WWG only)
    Y = ex.records[["wwg", "pwg"]].to_numpy()
    Xd = X.matrix.toarray()
    b_ref, (u_ref,), (pev_ref,) = multitrait_gls_blup(Y, [Xd, Xd], [Z.matrix.toarray()],
                                                      np.array(ex.variances["G0"]), ped.A(),
                                                      np.array(ex.variances["R0"]))
    np.testing.assert_allclose(fit.b, b_ref, rtol=1e-10)
    np.testing.assert_allclose(fit.u, u_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.pev, pev_ref, rtol=1e-10)


def test_mrode_6_2_single_trait_analyses():
    _, ex, ped, X, Z = mrode_6(mrode_example_6_2)
    r = ex.records
    wwg = lmmbook.solve_mme(r["wwg"], X, Z, ped.A_inverse(), 20.0, 40.0)
    np.testing.assert_allclose(wwg.b, [4.364, 3.648], atol=PRINTED)
    np.testing.assert_allclose(wwg.u, [0.077, -0.081, -0.058, 0.003, -0.250, 0.098, -0.237,
                                       0.143, 0.010], atol=PRINTED)
    pwg = lmmbook.solve_mme(r["pwg"], X, Z, ped.A_inverse(), 40.0, 30.0)
    assert pwg.n_obs == 4
    np.testing.assert_allclose(pwg.b, [6.784, 5.873], atol=PRINTED)
    np.testing.assert_allclose(pwg.u, [0.273, 0.0, -0.165, -0.025, -0.463, 0.517, -0.460, 0.392,
                                       -0.230], atol=PRINTED)


# ---- errors: each refusal, with its message ----------------------------------------------------

def inputs_6_1():
    ex = mrode_example_6_1()
    p, r, v = ex.pedigree, ex.records, ex.variances
    ped = lmmbook.Pedigree(p["animal"], p["sire"], p["dam"])
    return (r[["wwg", "pwg"]], lmmbook.incidence(r["sex"], levels=["M", "F"]),
            ped.incidence(r["calf"]), ped.A_inverse(), np.array(v["G0"]), np.array(v["R0"]))


def test_covariance_matrices_must_be_symmetric_positive_definite():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    with pytest.raises(NotPositiveDefiniteError, match=r"sigma2_u is not symmetric"):
        lmmbook.solve_mme(Y, X, Z, A_inv, [[20.0, 18.0], [17.0, 40.0]], R0)
    with pytest.raises(NotPositiveDefiniteError, match=r"sigma2_e is not symmetric"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, [[40.0, 11.0], [12.0, 30.0]])
    # eigenvalues (60 -+ sqrt(4000)) / 2 and (70 -+ sqrt(6500)) / 2
    with pytest.raises(NotPositiveDefiniteError,
                       match=r"sigma2_u is not positive definite: its smallest eigenvalue is "
                             r"-1\.623 \(the correlation of traits 1 and 2 is 1\.061\)"):
        lmmbook.solve_mme(Y, X, Z, A_inv, [[20.0, 30.0], [30.0, 40.0]], R0)
    with pytest.raises(NotPositiveDefiniteError,
                       match=r"sigma2_e is not positive definite: its smallest eigenvalue is "
                             r"-5\.311"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, [[40.0, 40.0], [40.0, 30.0]])


def test_covariance_matrices_need_one_row_per_trait():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    with pytest.raises(ShapeMismatchError,
                       match=r"sigma2_u must be a \(2, 2\) covariance matrix \(one row per trait"):
        lmmbook.solve_mme(Y, X, Z, A_inv, 20.0, R0)
    with pytest.raises(ShapeMismatchError, match=r"got shape \(3, 3\)"):
        lmmbook.solve_mme(Y, X, Z, A_inv, np.eye(3), R0)
    with pytest.raises(ShapeMismatchError,
                       match=r"sigma2_e must be a \(2, 2\) covariance matrix \(one row per trait: "
                             r"R0\)"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, 40.0)
    # a tuple of two effects of two traits needs a (4, 4) G0
    with pytest.raises(ShapeMismatchError, match=r"must be a \(4, 4\) covariance matrix"):
        lmmbook.solve_mme(Y, X, (Z, Z), A_inv, G0, R0)


def test_a_trait_without_any_record_is_refused():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    Y = Y.assign(pwg=np.nan)
    with pytest.raises(InputError, match=r"trait\(s\) 'pwg' of y have no record"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, R0)


def test_a_non_numeric_trait_column_is_refused():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    Y = Y.assign(pwg=["a", "b", "c", "d", "e"])
    with pytest.raises(InputError, match=r"y column\(s\) 'pwg' are not numeric"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, R0)


def test_x_as_a_dict_needs_one_design_per_trait_by_name():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    with pytest.raises(ShapeMismatchError,
                       match=r"one design per trait, keyed by the trait names \['wwg', 'pwg'\]; "
                             r"got keys \['wwg', 'PWG'\]"):
        lmmbook.solve_mme(Y, {"wwg": X, "PWG": X}, Z, A_inv, G0, R0)
    with pytest.raises(ShapeMismatchError, match=r"got keys \['wwg'\]"):
        lmmbook.solve_mme(Y, {"wwg": X}, Z, A_inv, G0, R0)


def test_an_infinite_record_is_refused():
    Y, X, Z, A_inv, G0, R0 = inputs_6_1()
    Y = Y.copy()
    Y.iloc[2, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"y is infinite at row 2.*trait 'pwg'; use NaN"):
        lmmbook.solve_mme(Y, X, Z, A_inv, G0, R0)
    with pytest.raises(NonFiniteError, match=r"trait 'trait2'"):
        lmmbook.solve_mme(Y.to_numpy(), X, Z, A_inv, G0, R0)
