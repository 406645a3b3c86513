"""The LR method (lr_validation): a direct computation, a simulated truth, properties."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import (
    DuplicateIdError,
    InputError,
    NonFiniteError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
)

# -------------------------------------------------------------------------------------------------
# The LR method: against a slow direct computation
# -------------------------------------------------------------------------------------------------


def slow_lr(u_p, u_w, K, sigma2_u):
    """The LR statistics written out with plain loops over the focal individuals."""
    n = len(u_p)
    mp = sum(u_p) / n
    mw = sum(u_w) / n
    s_pw = sum((u_p[i] - mp) * (u_w[i] - mw) for i in range(n)) / (n - 1)
    s_pp = sum((u_p[i] - mp) ** 2 for i in range(n)) / (n - 1)
    s_ww = sum((u_w[i] - mw) ** 2 for i in range(n)) / (n - 1)
    F_bar = sum(K[i][i] - 1.0 for i in range(n)) / n
    a_bar = sum(K[i][j] for i in range(n) for j in range(n)) / n**2
    # the paper's covariance over the population variance, both with divisor n
    reliability = s_pw * (n - 1) / n / ((1.0 + F_bar - a_bar) * sigma2_u)
    return {"bias": mp - mw, "dispersion": s_pw / s_pp,
            "ratio_accuracies": s_pw / math.sqrt(s_pp * s_ww), "ratio_reliabilities": s_pw / s_ww,
            "reliability_partial": reliability, "accuracy_partial": math.sqrt(reliability),
            "F_bar": F_bar, "a_bar": a_bar}


def random_relationships(rng, n):
    """A positive definite K with inbreeding on the diagonal and relationships off it."""
    W = rng.integers(0, 3, (n, 4 * n)).astype(float)
    W -= W.mean(axis=0)
    return 0.9 * W @ W.T / np.mean(np.diag(W @ W.T)) + 0.1 * np.eye(n) + 0.05


def test_lr_against_a_slow_direct_computation_and_joined_by_id():
    rng = np.random.default_rng(1)
    n = 25
    u_w = rng.normal(0.0, 1.0, n)
    u_p = 0.6 * u_w + rng.normal(0.2, 0.4, n)
    K = random_relationships(rng, n)
    ref = slow_lr(u_p.tolist(), u_w.tolist(), K.tolist(), 1.7)
    lr = lmmbook.lr_validation(u_p, u_w, sigma2_u=1.7, K_focal=K)
    assert lr.n_focal == n
    for name, value in ref.items():
        assert getattr(lr, name) == pytest.approx(value, rel=1e-12, abs=1e-14), name
    assert lr.variance_factor == pytest.approx(1 + ref["F_bar"] - ref["a_bar"], rel=1e-12)
    assert lr.se is None and lr.n_boot == 0

    # the same as Series: shuffled, with extra individuals, the focal group picked by ids
    ids = np.array([f"calf{i}" for i in range(n)])
    others = pd.Series(rng.normal(size=5), index=[f"cow{i}" for i in range(5)])
    order = rng.permutation(n)
    s_p = pd.concat([pd.Series(u_p, index=ids).iloc[order], others])
    s_w = pd.concat([others, pd.Series(u_w, index=ids)])
    K_all = pd.DataFrame(sl.block_diag(K, np.eye(5)), index=np.r_[ids, others.index],
                         columns=np.r_[ids, others.index]).iloc[::-1, ::-1]  # any order
    by_id = lmmbook.lr_validation(s_p, s_w, ids=ids[::-1], sigma2_u=1.7, K_focal=K_all)
    for name, value in ref.items():
        assert getattr(by_id, name) == pytest.approx(value, rel=1e-12, abs=1e-14), name
    # without ids, the two Series must hold the same IDs (in any order)
    both = lmmbook.lr_validation(pd.Series(u_p, index=ids).iloc[order], pd.Series(u_w, index=ids))
    assert both.dispersion == pytest.approx(ref["dispersion"], rel=1e-12)
    assert both.reliability_partial is None and both.accuracy_partial is None

    # F_focal alone: the within-line variance 1 - F_bar replaces 1 + F_bar - a_bar
    F = np.diag(K) - 1.0
    lr_F = lmmbook.lr_validation(u_p, u_w, sigma2_u=1.7, F_focal=F)
    assert lr_F.a_bar is None and lr_F.variance_factor == pytest.approx(1 - F.mean(), rel=1e-12)
    assert lr_F.reliability_partial == pytest.approx(
        ref["reliability_partial"] * (1 + ref["F_bar"] - ref["a_bar"]) / (1 - F.mean()),
        rel=1e-12)
    scalar = lmmbook.lr_validation(u_p, u_w, sigma2_u=1.7, F_focal=float(F.mean()))
    assert scalar.reliability_partial == pytest.approx(lr_F.reliability_partial, rel=1e-12)

    table = lr.summary()
    assert table.loc["dispersion", "estimate"] == pytest.approx(ref["dispersion"], rel=1e-12)
    assert table.loc["bias", "expected"] == 0 and table.loc["dispersion", "expected"] == 1
    assert np.isnan(table.loc["ratio_accuracies", "expected"]) and table["se"].isna().all()


def test_a_negative_covariance_gives_no_accuracy():
    u_w = np.array([1.0, 2.0, 3.0, 4.0])
    lr = lmmbook.lr_validation(-u_w, u_w, sigma2_u=1.0, F_focal=0.0)
    assert lr.reliability_partial < 0 and np.isnan(lr.accuracy_partial)
    assert lr.dispersion == pytest.approx(-1.0) and lr.ratio_accuracies == pytest.approx(-1.0)


# -------------------------------------------------------------------------------------------------
# Properties over random inputs
# -------------------------------------------------------------------------------------------------

scalars = st.floats(-5.0, 5.0, allow_nan=False).filter(lambda x: abs(x) > 0.05)


@settings(max_examples=60)
@given(st.integers(3, 40), st.integers(0, 2**32 - 1), st.floats(-10.0, 10.0), scalars, scalars,
       st.floats(-3.0, 3.0))
def test_lr_properties(n, seed, shift, c, gamma, alpha):
    rng = np.random.default_rng(seed)
    u_w = rng.normal(0.0, 1.0, n)
    u_p = 0.7 * u_w + rng.normal(0.0, 0.5, n)
    base = lmmbook.lr_validation(u_p, u_w)
    # the bias moves exactly with a constant added to u_p; nothing else moves
    shifted = lmmbook.lr_validation(u_p + shift, u_w)
    assert shifted.bias == pytest.approx(base.bias + shift, abs=1e-9 * (1 + abs(shift)))
    assert shifted.dispersion == pytest.approx(base.dispersion, rel=1e-9, abs=1e-12)
    # the dispersion scales as 1/c when u_p is multiplied by c, the ratio of reliabilities as c
    scaled = lmmbook.lr_validation(c * u_p, u_w)
    assert scaled.dispersion == pytest.approx(base.dispersion / c, rel=1e-9, abs=1e-12)
    assert scaled.ratio_reliabilities == pytest.approx(c * base.ratio_reliabilities, rel=1e-9,
                                                       abs=1e-12)
    # the correlation is invariant to affine maps of either (its sign follows the slopes')
    affine = lmmbook.lr_validation(shift + c * u_p, alpha + gamma * u_w)
    assert affine.ratio_accuracies == pytest.approx(np.sign(c * gamma) * base.ratio_accuracies,
                                                    rel=1e-9, abs=1e-12)
    # identical evaluations: no bias, slope, correlation and ratio of reliabilities all 1
    same = lmmbook.lr_validation(u_p, u_p)
    assert same.bias == 0
    for name in ("dispersion", "ratio_accuracies", "ratio_reliabilities"):
        assert getattr(same, name) == pytest.approx(1.0, rel=1e-12)
    # the reliability is quadratic in the scale of the predictions, inverse in sigma2_u
    K = np.eye(n)
    r1 = lmmbook.lr_validation(u_p, u_w, sigma2_u=1.0, K_focal=K).reliability_partial
    r2 = lmmbook.lr_validation(c * u_p, c * u_w, sigma2_u=2.0, K_focal=K).reliability_partial
    assert r2 == pytest.approx(c**2 * r1 / 2.0, rel=1e-9, abs=1e-12)


# -------------------------------------------------------------------------------------------------
# What the method rests on, exactly, and on a simulation where the truth is known
# -------------------------------------------------------------------------------------------------


def blup_operator(A, observed, sigma2_u, sigma2_e):
    """u_hat = L y[observed] for y = mu + u + e (one record per animal), from the V form with
    explicit inverses (independent of lmmbook's solvers)."""
    q = len(A)
    Z = np.eye(q)[observed]
    X = np.ones((observed.sum(), 1))
    V = sigma2_u * Z @ A @ Z.T + sigma2_e * np.eye(observed.sum())
    V_inv = np.linalg.inv(V)
    P = V_inv - V_inv @ X @ np.linalg.inv(X.T @ V_inv @ X) @ X.T @ V_inv
    return sigma2_u * A @ Z.T @ P


def test_what_the_lr_method_rests_on_holds_exactly():
    """Cov(u_w, u_p) = Var(u_p) = Cov(u, u_p) for BLUP from nested data; so the LR reliability's
    expectation is the population reliability tr(S Var(u_p)) / tr(S Var(u))."""
    ped = lmmbook.simulate_pedigree(2, 40, n_sires=4, seed=3)
    A = lmmbook.Pedigree(ped["animal"], ped["sire"], ped["dam"]).A()
    q = len(A)
    s2u, s2e = 1.0, 1.5
    focal = np.flatnonzero(ped["generation"].to_numpy() == 2)
    whole = np.ones(q, bool)
    partial = whole.copy()
    partial[focal] = False
    L_w = blup_operator(A, whole, s2u, s2e)
    L_p = np.zeros((q, q))
    L_p[:, partial] = blup_operator(A, partial, s2u, s2e)
    V = s2u * A + s2e * np.eye(q)  # Var(y)
    cov_wp = L_w @ V @ L_p.T
    var_p = L_p @ V @ L_p.T
    cov_up = s2u * A @ L_p.T
    np.testing.assert_allclose(cov_wp, var_p, atol=1e-12)
    np.testing.assert_allclose(cov_up, var_p, atol=1e-12)
    # the expected cross-product over the focal group, against the population reliability
    ff = np.ix_(focal, focal)
    S = np.eye(len(focal)) - 1.0 / len(focal)
    K = A[ff]
    expected_rel = np.trace(S @ cov_wp[ff]) / (s2u * len(focal) * (
        np.mean(np.diag(K)) - K.mean()))
    assert expected_rel == pytest.approx(np.trace(S @ var_p[ff]) / np.trace(S @ (s2u * K)),
                                         rel=1e-12)
    assert 0.05 < expected_rel < 0.5  # a real, partial reliability (a sanity check of the setup)


class _Mme:
    """Dense mixed-model equations for y = mu + u + e on given records, factorised once, so that
    hundreds of simulated replicates are solved as one right-hand-side matrix."""

    def __init__(self, A_inv, observed, sigma2_u, sigma2_e):
        q = len(A_inv)
        W = np.hstack([np.ones((q, 1)), np.eye(q)])[observed]
        C = W.T @ W
        C[1:, 1:] += sigma2_e / sigma2_u * A_inv
        self.W, self.factor = W, sl.cho_factor(C)
        self.C_uu = None

    def u(self, Y):
        return sl.cho_solve(self.factor, self.W.T @ Y)[1:]

    def inverse_uu(self):
        return sl.cho_solve(self.factor, np.eye(len(self.W.T)))[1:, 1:]


@pytest.fixture(scope="module")
def simulated_lr():
    """One pedigree (3 generations after 250 founders, 12 sires each), h2 = 0.3, 400 replicates of
    breeding values and records; the youngest generation (250 calves) is the focal group and
    loses its records in the partial data."""
    s2u, s2e = 1.0, 7.0 / 3.0
    ped = lmmbook.simulate_pedigree(3, 250, n_sires=12, seed=11)
    pedigree = lmmbook.Pedigree(ped["animal"], ped["sire"], ped["dam"])
    A = pedigree.A()
    A_inv = pedigree.A_inverse()
    q = len(A)
    focal = np.flatnonzero(ped["generation"].to_numpy() == 3)
    whole = np.ones(q, bool)
    partial = whole.copy()
    partial[focal] = False
    R = 400
    rng = np.random.default_rng(5)
    U = np.linalg.cholesky(s2u * A) @ rng.standard_normal((q, R))
    Y = 10.0 + U + rng.normal(0.0, np.sqrt(s2e), (q, R))
    fits = {}
    for name, observed, s2 in (("partial", partial, s2u), ("whole", whole, s2u),
                               ("partial_2x", partial, 2 * s2u), ("whole_2x", whole, 2 * s2u)):
        mme = _Mme(A_inv.toarray(), observed, s2, s2e)
        fits[name] = mme.u(Y[observed])[focal]
        # replicate 0 through the library's sparse solver: the same predictions
        y0 = np.where(observed, Y[:, 0], np.nan)
        lib = lmmbook.solve_mme(y0, np.ones((q, 1)), sp.identity(q, format="csr"), A_inv, s2, s2e,
                                compute_pev=False)
        np.testing.assert_allclose(fits[name][:, 0], lib.u[focal], atol=1e-8)
        if name == "partial":
            var_p = s2u * A - s2e * mme.inverse_uu()  # Var(u_p) = Var(u) - PEV
    K = A[np.ix_(focal, focal)]
    S = np.eye(len(focal)) - 1.0 / len(focal)
    population_reliability = np.trace(S @ var_p[np.ix_(focal, focal)]) / np.trace(S @ (s2u * K))
    sires = ped["sire"].to_numpy()[focal]
    return dict(U=U[focal], fits=fits, K=K, s2u=s2u, R=R, sires=sires,
                population_reliability=population_reliability)


def _mean_and_se(x):
    x = np.asarray(x)
    return x.mean(), x.std(ddof=1) / np.sqrt(len(x))


def test_lr_accuracy_against_the_truth_on_a_simulation(simulated_lr):
    sim = simulated_lr
    f, U = sim["fits"], sim["U"]
    rel, acc, real, disp, slope = [], [], [], [], []
    for r in range(sim["R"]):
        lr = lmmbook.lr_validation(f["partial"][:, r], f["whole"][:, r], sigma2_u=sim["s2u"],
                                   K_focal=sim["K"])
        rel.append(lr.reliability_partial)
        acc.append(lr.accuracy_partial)
        real.append(np.corrcoef(U[:, r], f["partial"][:, r])[0, 1])
        disp.append(lr.dispersion)
        slope.append(np.polyfit(f["partial"][:, r], U[:, r], 1)[0])
    # unbiased for the population reliability (exact expectation; 4 Monte Carlo SEs)
    m, se = _mean_and_se(rel)
    assert abs(m - sim["population_reliability"]) < 4 * se, (m, se, sim["population_reliability"])
    # and on average the realised accuracy cor(u, u_p) of each replicate
    m, se = _mean_and_se(np.array(acc) - np.array(real))
    assert abs(m) < 4 * se, (m, se)
    # a correct model: the dispersion is 1 on average, like the true regression of u on u_p (a
    # ratio's expectation is only near 1: 0.05 is about 6 Monte Carlo SEs here)
    assert abs(np.mean(disp) - 1) < 0.05 and abs(np.mean(slope) - 1) < 0.05


def test_dispersion_goes_wrong_when_the_model_is_wrong(simulated_lr):
    """Evaluations with sigma2_u twice the true value shrink too little: the partial predictions
    are over-dispersed (true slope of u on u_p well below 1) and the LR dispersion shows it."""
    sim = simulated_lr
    f, U = sim["fits"], sim["U"]
    correct, both_2x, partial_2x, true_2x = [], [], [], []
    for r in range(sim["R"]):
        correct.append(lmmbook.lr_validation(f["partial"][:, r], f["whole"][:, r]).dispersion)
        both_2x.append(lmmbook.lr_validation(f["partial_2x"][:, r], f["whole_2x"][:, r]
                                             ).dispersion)
        partial_2x.append(lmmbook.lr_validation(f["partial_2x"][:, r], f["whole"][:, r]
                                                ).dispersion)
        true_2x.append(np.polyfit(f["partial_2x"][:, r], U[:, r], 1)[0])
    m_true, _ = _mean_and_se(true_2x)
    assert m_true < 0.85  # the truth: over-dispersed partial predictions
    # the same (wrong) model in both evaluations: b_wp below 1, clearly separated from the
    # correct model's (paired over replicates, 8 SEs)
    d, se = _mean_and_se(np.array(correct) - np.array(both_2x))
    assert np.mean(both_2x) < 0.93 and d > 8 * se
    # only the partial evaluation wrong (u_w from the right model): b_wp tracks the true slope
    m, se = _mean_and_se(np.array(partial_2x) - np.array(true_2x))
    assert np.mean(partial_2x) < 0.85 and abs(m) < 4 * se


def test_bootstrap_standard_errors(simulated_lr):
    sim = simulated_lr
    u_p, u_w = sim["fits"]["partial"][:, 0], sim["fits"]["whole"][:, 0]
    kw = dict(sigma2_u=sim["s2u"], K_focal=sim["K"])
    a = lmmbook.lr_validation(u_p, u_w, n_boot=300, seed=1, **kw)
    b = lmmbook.lr_validation(u_p, u_w, n_boot=300, seed=1, **kw)
    assert dict(a.se) == dict(b.se) and a.n_boot == 300 and a.boot_unit == "individual"
    with pytest.raises(TypeError):
        a.se["bias"] = 0.0  # read-only
    # over individuals, the SE of the bias is close to the textbook sd(u_p - u_w) / sqrt(n) for a
    # mean of n exchangeable values (bootstrap sampling error with 300 replicates: ~4 %)
    textbook = np.std(u_p - u_w, ddof=1) / np.sqrt(len(u_p))
    assert a.se["bias"] == pytest.approx(textbook, rel=0.15)
    # over the sires' families: larger, because relatives' predictions err together
    g = lmmbook.lr_validation(u_p, u_w, n_boot=300, seed=1, groups=sim["sires"], **kw)
    assert g.boot_unit == "group" and g.se["bias"] > 1.5 * a.se["bias"]
    assert set(g.summary()["se"].index) == set(g.se)


def test_bootstrap_standard_errors_are_lower_bounds(simulated_lr):
    """What the docstring says: against the Monte Carlo SD of the dispersion over replicated
    data (the real standard error), resampling individuals gives far too little, resampling sire
    families more but still less."""
    sim = simulated_lr
    f = sim["fits"]
    real = np.std([lmmbook.lr_validation(f["partial"][:, r], f["whole"][:, r]).dispersion
                   for r in range(sim["R"])], ddof=1)
    by_individual, by_family = [], []
    for r in range(10):
        u_p, u_w = f["partial"][:, r], f["whole"][:, r]
        by_individual.append(lmmbook.lr_validation(u_p, u_w, n_boot=300, seed=r
                                                   ).se["dispersion"])
        by_family.append(lmmbook.lr_validation(u_p, u_w, n_boot=300, seed=r, groups=sim["sires"]
                                               ).se["dispersion"])
    assert np.mean(by_individual) < 0.5 * real
    assert np.mean(by_individual) < np.mean(by_family) < real


# -------------------------------------------------------------------------------------------------
# LR: every documented error
# -------------------------------------------------------------------------------------------------


def test_lr_errors():
    u = np.array([0.1, 0.4, -0.2, 0.3])
    s = pd.Series(u, index=["a", "b", "c", "d"])
    with pytest.raises(ShapeMismatchError, match="u_whole has 3 entries but u_partial has 4"):
        lmmbook.lr_validation(u, u[:3])
    with pytest.raises(ShapeMismatchError, match="ids has 2 entries"):
        lmmbook.lr_validation(u, u, ids=["a", "b"])
    with pytest.raises(InputError, match="both as pandas Series"):
        lmmbook.lr_validation(s, u)
    with pytest.raises(UnknownIdError, match="'x'.*u_partial"):
        lmmbook.lr_validation(s, s, ids=["a", "b", "x"])
    with pytest.raises(UnknownIdError, match="'e'"):
        lmmbook.lr_validation(s, pd.concat([s, pd.Series([1.0], index=["e"])]))
    with pytest.raises(DuplicateIdError, match="'a'"):
        lmmbook.lr_validation(pd.Series(u, index=["a", "a", "b", "c"]), s)
    with pytest.raises(DuplicateIdError, match="'b'"):
        lmmbook.lr_validation(s, s, ids=["a", "b", "b"])
    with pytest.raises(NonFiniteError, match="u_whole is NaN at focal ID\\(s\\) 'c'"):
        lmmbook.lr_validation(s, s.where(s.index != "c"))
    with pytest.raises(NonFiniteError, match="position\\(s\\) 1"):
        lmmbook.lr_validation(np.array([0.1, np.nan, 0.3]), u[:3])
    with pytest.raises(InputError, match="at least 3 focal individuals, got 2"):
        lmmbook.lr_validation(u[:2], u[:2])
    with pytest.raises(InputError, match="u_partial takes one value"):
        lmmbook.lr_validation(np.ones(4), u)
    with pytest.raises(InputError, match="u_whole takes one value"):
        lmmbook.lr_validation(u, np.zeros(4))
    with pytest.raises(InputError, match="not both"):
        lmmbook.lr_validation(u, u, sigma2_u=1.0, K_focal=np.eye(4), F_focal=0.0)
    with pytest.raises(InputError, match="needs sigma2_u"):
        lmmbook.lr_validation(u, u, K_focal=np.eye(4))
    with pytest.raises(InputError, match="pass K_focal"):
        lmmbook.lr_validation(u, u, sigma2_u=1.0)
    with pytest.raises(VarianceError, match="sigma2_u must be positive"):
        lmmbook.lr_validation(u, u, sigma2_u=0.0, F_focal=0.0)
    with pytest.raises(VarianceError, match="1 \\+ F_bar - a_bar = 0"):
        lmmbook.lr_validation(u, u, sigma2_u=1.0, K_focal=np.ones((4, 4)))
    with pytest.raises(ShapeMismatchError, match="K_focal has shape \\(3, 3\\)"):
        lmmbook.lr_validation(u, u, sigma2_u=1.0, K_focal=np.eye(3))
    K_ab = pd.DataFrame(np.eye(2), index=["a", "b"], columns=["a", "b"])
    with pytest.raises(UnknownIdError, match="'c', 'd' are not among the rows"):
        lmmbook.lr_validation(s, s, sigma2_u=1.0, K_focal=K_ab)
    with pytest.raises(UnknownIdError, match="'d'.*F_focal"):
        lmmbook.lr_validation(s, s, sigma2_u=1.0, F_focal=pd.Series(0.0, index=["a", "b", "c"]))
    with pytest.raises(InputError, match="mean inbreeding of the focal group is 1"):
        lmmbook.lr_validation(u, u, sigma2_u=1.0, F_focal=1.0)
    with pytest.raises(InputError, match="needs a seed"):
        lmmbook.lr_validation(u, u, n_boot=10)
    with pytest.raises(InputError, match="n_boot must be 0 or a whole number"):
        lmmbook.lr_validation(u, u, n_boot=1, seed=0)
    with pytest.raises(InputError, match="groups are used only by the bootstrap"):
        lmmbook.lr_validation(u, u, groups=[1, 1, 2, 2])
    with pytest.raises(ShapeMismatchError, match="groups has 3 entries"):
        lmmbook.lr_validation(u, u, groups=[1, 1, 2], n_boot=10, seed=0)
    with pytest.raises(InputError, match="at least 2 groups"):
        lmmbook.lr_validation(u, u, groups=[1, 1, 1, 1], n_boot=10, seed=0)
    with pytest.raises(InputError, match="missing labels"):
        lmmbook.lr_validation(u, u, groups=[1, None, 2, 2], n_boot=10, seed=0)
    with pytest.raises(UnknownIdError, match="'d' have no group"):
        lmmbook.lr_validation(s, s, groups=pd.Series([1, 1, 2], index=["a", "b", "c"]),
                              n_boot=10, seed=0)


# -------------------------------------------------------------------------------------------------
# Fold-level estimates: by hand, against scipy, and joined by fold
# -------------------------------------------------------------------------------------------------


