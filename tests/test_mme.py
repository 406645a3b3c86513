import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import gls_blup, tabular_A

import lmmbook
from lmmbook.datasets import mrode_example_3_1
from lmmbook.errors import (
    DuplicateIdError,
    InputError,
    NonFiniteError,
    NotPositiveDefiniteError,
    RankDeficientError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
)

# Solutions and PEVs agree with the dense V-form to round-off of condition-number size: the
# random problems below keep cond(C) below ~1e6, so 1e-8 relative leaves a margin of ~100.
RTOL = 1e-8


def random_problem(seed, n, p, q, related, missing):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    Z = np.zeros((n, q))
    Z[np.arange(n), rng.integers(0, q, n)] = 1.0
    if related:
        L = rng.normal(size=(q, q)) / np.sqrt(q)
        K = L @ L.T + 0.5 * np.eye(q)
    else:
        K = np.eye(q)
    sigma2_u, sigma2_e = rng.uniform(0.2, 3.0, 2)
    y = X @ rng.normal(size=p) + Z @ rng.normal(size=q) + rng.normal(size=n)
    y[rng.random(n) < missing] = np.nan
    y[0] = 1.0  # at least one record
    return y, X, Z, K, sigma2_u, sigma2_e


problems = st.builds(
    random_problem,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(12, 60),
    p=st.integers(1, 4),
    q=st.integers(1, 15),
    related=st.booleans(),
    missing=st.sampled_from([0.0, 0.2]),
)


@settings(max_examples=60)
@given(problems)
def test_agrees_with_dense_gls_and_blup(problem):
    y, X, Z, K, s2u, s2e = problem
    b_ref, u_ref, pev_ref = gls_blup(y, X, Z, K, s2u, s2e)
    res = lmmbook.solve_mme(y, X, Z, np.linalg.inv(K), s2u, s2e, K_diag=np.diag(K))
    scale = np.abs(np.concatenate([b_ref, u_ref])).max()
    np.testing.assert_allclose(res.b, b_ref, rtol=RTOL, atol=RTOL * scale)
    np.testing.assert_allclose(res.u, u_ref, rtol=RTOL, atol=RTOL * scale)
    np.testing.assert_allclose(res.pev, pev_ref, rtol=RTOL, atol=RTOL * s2u)
    np.testing.assert_allclose(res.reliability, 1 - pev_ref / (s2u * np.diag(K)), atol=1e-8)


@settings(max_examples=40)
@given(problems)
def test_sparse_path_equals_dense_path(problem):
    y, X, Z, K, s2u, s2e = problem
    K_inv = np.linalg.inv(K)
    dense = lmmbook.solve_mme(y, X, Z, K_inv, s2u, s2e)
    sparse = lmmbook.solve_mme(y, sp.csr_array(X), sp.csr_array(Z), sp.csc_array(K_inv), s2u, s2e)
    np.testing.assert_allclose(sparse.b, dense.b, rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(sparse.u, dense.u, rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(sparse.pev, dense.pev, rtol=RTOL)
    # K_diag computed from K_inv (no K_diag given) on both paths
    np.testing.assert_allclose(sparse.reliability, dense.reliability, atol=1e-10)
    np.testing.assert_allclose(dense.reliability, 1 - dense.pev / (s2u * np.diag(K)), atol=1e-10)


@settings(max_examples=40)
@given(problems)
def test_properties(problem):
    y, X, Z, K, s2u, s2e = problem
    res = lmmbook.solve_mme(y, X, Z, np.linalg.inv(K), s2u, s2e, K_diag=np.diag(K))
    # 0 <= PEV <= sigma2_u K_ii, hence reliability in [0, 1]
    assert np.all(res.pev > 0)
    assert np.all(res.reliability >= -1e-12) and np.all(res.reliability <= 1 + 1e-12)
    # X' (y - X b - Z u) = 0 on the observed records: the first block of the MME
    obs = np.isfinite(y)
    resid = y[obs] - X[obs] @ res.b - Z[obs] @ res.u
    np.testing.assert_allclose(X[obs].T @ resid, 0, atol=1e-8 * np.abs(y[obs]).sum())
    # Adding c to every record moves only the intercept (column 0 of X is all ones)
    shifted = lmmbook.solve_mme(y + 3.0, X, Z, np.linalg.inv(K), s2u, s2e)
    np.testing.assert_allclose(shifted.b[0], res.b[0] + 3.0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(shifted.u, res.u, atol=1e-8 * (1 + np.abs(res.u).max()))
    # Scaling y and both variances by c^2 scales b and u by c and leaves reliability unchanged
    scaled = lmmbook.solve_mme(2 * y, X, Z, np.linalg.inv(K), 4 * s2u, 4 * s2e)
    np.testing.assert_allclose(scaled.u, 2 * res.u, atol=1e-8 * (1 + np.abs(res.u).max()))
    np.testing.assert_allclose(scaled.reliability, res.reliability, atol=1e-10)


def test_nan_record_is_not_observed_but_its_level_is_predicted():
    y, X, Z, K, s2u, s2e = random_problem(7, 30, 2, 6, related=False, missing=0.0)
    Z = np.column_stack([Z, np.zeros(30)])  # a seventh level without records ...
    Z[29] = 0
    Z[29, 6] = 1
    y[29] = np.nan  # ... whose only record is missing
    res = lmmbook.solve_mme(y, X, Z, np.eye(7), s2u, s2e)
    dropped = lmmbook.solve_mme(y[:29], X[:29], Z[:29], np.eye(7), s2u, s2e)
    assert res.n_obs == 29
    np.testing.assert_allclose(res.u, dropped.u, rtol=1e-12)
    # an unrelated level with no record is predicted at 0 with PEV = sigma2_u, reliability 0
    assert res.u[6] == pytest.approx(0, abs=1e-14)
    assert res.pev[6] == pytest.approx(s2u, rel=1e-12)
    assert res.reliability[6] == pytest.approx(0, abs=1e-12)


def test_model_without_fixed_effects():
    y, X, Z, K, s2u, s2e = random_problem(3, 25, 1, 5, related=True, missing=0.1)
    y = y - np.nanmean(y)
    X0 = np.empty((25, 0))
    b_ref, u_ref, pev_ref = gls_blup(y, X0, Z, K, s2u, s2e)
    for X_in in (X0, sp.csr_array(X0)):
        res = lmmbook.solve_mme(y, X_in, Z, np.linalg.inv(K), s2u, s2e)
        assert res.b.shape == (0,)
        np.testing.assert_allclose(res.u, u_ref, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(res.pev, pev_ref, rtol=RTOL)


def test_mrode_example_3_1():
    """Mrode, Example 3.1: the published solutions (3 decimals), within +-0.001 as the book
    truncates some of them (../shared/examples/mrode-3.1.md)."""
    df = mrode_example_3_1()
    A = tabular_A(df["sire"].to_numpy(), df["dam"].to_numpy())
    observed = df["y"].notna()
    X = pd.get_dummies(df["sex"]).reindex(columns=["male", "female"]).astype(float)
    res = lmmbook.solve_mme(df["y"], X, np.eye(8), np.linalg.inv(A), 20.0, 40.0)
    published = {
        "male": 4.358, "female": 3.404,
        1: 0.098, 2: -0.019, 3: -0.041, 4: -0.009, 5: -0.186, 6: 0.177, 7: -0.249, 8: 0.183,
    }
    ours = dict(zip(["male", "female"], res.b, strict=True)) | dict(
        zip(range(1, 9), res.u, strict=True))
    for effect, value in published.items():
        assert abs(round(ours[effect], 3) - value) <= 0.001 + 1e-12, effect
    assert observed.sum() == res.n_obs == 5


def test_labels_carried_and_pandas_joined_by_id():
    trial = lmmbook.simulate_variety_trial(8, 2, records=(2, 5), seed=3)
    d = trial.data.set_index("plot")
    X = pd.get_dummies(d["environment"]).astype(float)
    Z = pd.get_dummies(d["variety"]).astype(float)
    res = lmmbook.solve_mme(d["y"], X, Z, np.eye(8), 0.25, 1.0)
    # the same problem with X and Z shuffled by row, and K_inv labelled in another order
    perm = np.random.default_rng(0).permutation(len(d))
    K_inv = pd.DataFrame(np.eye(8), index=Z.columns[::-1], columns=Z.columns[::-1])
    shuffled = lmmbook.solve_mme(d["y"], X.iloc[perm], Z.iloc[perm], K_inv, 0.25, 1.0)
    np.testing.assert_allclose(shuffled.u, res.u, rtol=1e-12)
    assert list(res.levels) == list(Z.columns) == list(shuffled.levels)
    assert list(res.fixed_names) == ["E1", "E2"]
    table = res.random_effects()
    assert list(table.columns) == ["u", "pev", "reliability"]
    assert res.fixed_effects().index.tolist() == ["E1", "E2"]
    with pytest.raises(ValueError, match="read-only"):
        res.u[0] = 1.0


def test_incidence_inputs_equal_dense_inputs():
    trial = lmmbook.simulate_variety_trial(10, 3, seed=11)
    d = trial.data
    X, Z = lmmbook.incidence(d["environment"]), lmmbook.incidence(d["variety"])
    sparse = lmmbook.solve_mme(d["y"], X, Z, sp.identity(10, format="csc"), 0.3, 1.2)
    dense = lmmbook.solve_mme(d["y"], X.matrix.toarray(), Z.matrix.toarray(), np.eye(10), 0.3, 1.2)
    np.testing.assert_allclose(sparse.u, dense.u, rtol=1e-10)
    np.testing.assert_allclose(sparse.pev, dense.pev, rtol=1e-10)
    assert sparse.levels.tolist() == [f"V{i:02d}" for i in range(1, 11)]


def test_pev_skipped_when_asked_or_too_large(monkeypatch):
    trial = lmmbook.simulate_variety_trial(6, 2, seed=5)
    d = trial.data
    X, Z = lmmbook.incidence(d["environment"]), lmmbook.incidence(d["variety"])
    assert lmmbook.solve_mme(d["y"], X, Z, sp.identity(6), 1, 1, compute_pev=False).pev is None
    monkeypatch.setattr(lmmbook.mme, "PEV_AUTO_MAX_LEVELS", 5)
    res = lmmbook.solve_mme(d["y"], X, Z, sp.identity(6), 1, 1)
    assert res.pev is None and res.reliability is None
    assert lmmbook.solve_mme(d["y"], X, Z, sp.identity(6), 1, 1, compute_pev=True).pev is not None


# ---- errors: each documented refusal, with its message --------------------------------------

def small():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    X = np.ones((4, 1))
    Z = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    return y, X, Z, np.eye(2)


def test_length_mismatch_names_both():
    y, X, Z, K_inv = small()
    with pytest.raises(ShapeMismatchError, match=r"Z has 3 rows but y has 4"):
        lmmbook.solve_mme(y, X, Z[:3], K_inv, 1, 1)
    with pytest.raises(ShapeMismatchError, match=r"X has 5 rows but y has 4"):
        lmmbook.solve_mme(y, np.ones((5, 1)), Z, K_inv, 1, 1)


def test_k_inv_shape_errors():
    y, X, Z, _ = small()
    with pytest.raises(ShapeMismatchError, match=r"K_inv must be square, got shape \(2, 3\)"):
        lmmbook.solve_mme(y, X, Z, np.ones((2, 3)), 1, 1)
    with pytest.raises(ShapeMismatchError, match=r"K_inv has 3 rows but Z \(columns\) has 2"):
        lmmbook.solve_mme(y, X, Z, np.eye(3), 1, 1)


def test_non_finite_inputs():
    y, X, Z, K_inv = small()
    X2 = X.copy()
    X2[2, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"X holds nan at row 2, column 0"):
        lmmbook.solve_mme(y, X2, Z, K_inv, 1, 1)
    with pytest.raises(NonFiniteError, match=r"K_inv holds inf"):
        lmmbook.solve_mme(y, X, Z, np.array([[1, np.inf], [np.inf, 1]]), 1, 1)
    with pytest.raises(NonFiniteError, match=r"y is infinite at row 1.*use NaN"):
        lmmbook.solve_mme([1, np.inf, 2, 3], X, Z, K_inv, 1, 1)
    Zs = sp.csr_array(Z)
    Zs.data[0] = np.nan
    with pytest.raises(NonFiniteError, match=r"Z holds nan at row 0"):
        lmmbook.solve_mme(y, X, Zs, K_inv, 1, 1)


@pytest.mark.parametrize("bad", [0, -1.0, np.nan, np.inf, "x"])
def test_variances_must_be_positive(bad):
    y, X, Z, K_inv = small()
    with pytest.raises(VarianceError, match="sigma2_u must be"):
        lmmbook.solve_mme(y, X, Z, K_inv, bad, 1)
    with pytest.raises(VarianceError, match="sigma2_e must be"):
        lmmbook.solve_mme(y, X, Z, K_inv, 1, bad)


def test_rank_deficient_x_names_columns():
    y, X, Z, K_inv = small()
    X3 = pd.DataFrame({"mu": 1.0, "A": [1.0, 1, 0, 0], "B": [0.0, 0, 1, 1]})
    with pytest.raises(RankDeficientError, match=r"rank 2 of 3 columns.*'mu', 'A', 'B'"):
        lmmbook.solve_mme(y, X3, Z, K_inv, 1, 1)


def test_fixed_level_without_observed_record_is_named():
    y, X, Z, K_inv = small()
    X2 = pd.DataFrame({"herd1": [1.0, 1, 0, 0], "herd2": [0.0, 0, 1, 1]})
    y2 = np.array([1.0, 2.0, np.nan, np.nan])
    with pytest.raises(RankDeficientError, match=r"X 'herd2' is all zero on the observed records"):
        lmmbook.solve_mme(y2, X2, Z, K_inv, 1, 1)


def test_all_missing_y():
    y, X, Z, K_inv = small()
    with pytest.raises(InputError, match="no observed record"):
        lmmbook.solve_mme(np.full(4, np.nan), X, Z, K_inv, 1, 1)


def test_k_inv_not_symmetric_or_not_positive_definite():
    y, X, Z, _ = small()
    with pytest.raises(NotPositiveDefiniteError, match=r"not symmetric.*0\.5"):
        lmmbook.solve_mme(y, X, Z, np.array([[1.0, 0.5], [0.0, 1.0]]), 1, 1)
    with pytest.raises(NotPositiveDefiniteError, match="K_inv is not positive definite"):
        lmmbook.solve_mme(y, X, Z, np.array([[1.0, 2.0], [2.0, 1.0]]), 1, 1)
    with pytest.raises(NotPositiveDefiniteError, match="diagonal entry <= 0"):
        lmmbook.solve_mme(y, X, Z, sp.csc_array(np.diag([1.0, -1.0])), 1, 1)


def test_ids_joined_exactly():
    y, X, Z, K_inv = small()
    ids = ["r1", "r2", "r3", "r4"]
    ys = pd.Series(y, index=ids)
    Xd = pd.DataFrame(X, index=ids, columns=["mu"])
    with pytest.raises(UnknownIdError, match=r"'r4' of y's index is not in the index of Z"):
        lmmbook.solve_mme(ys, Xd, pd.DataFrame(Z[:3], index=ids[:3]), K_inv, 1, 1)
    with pytest.raises(UnknownIdError, match=r"the index of X holds 'r9', not in y's index"):
        lmmbook.solve_mme(ys, pd.DataFrame(np.ones((5, 1)), index=ids + ["r9"]), Z, K_inv, 1, 1)
    with pytest.raises(DuplicateIdError, match=r"the index of y holds 'r1' more than once"):
        lmmbook.solve_mme(pd.Series(y, index=["r1", "r1", "r3", "r4"]), X, Z, K_inv, 1, 1)
    Zd = pd.DataFrame(Z, index=ids, columns=["a", "b"])
    Kd = pd.DataFrame(np.eye(2), index=["a", "c"], columns=["a", "c"])
    with pytest.raises(UnknownIdError, match=r"'b' of Z's columns is not in K_inv's index"):
        lmmbook.solve_mme(ys, Xd, Zd, Kd, 1, 1)


def test_k_diag_checked():
    y, X, Z, K_inv = small()
    with pytest.raises(ShapeMismatchError, match="K_diag has 3 entries but Z"):
        lmmbook.solve_mme(y, X, Z, K_inv, 1, 1, K_diag=[1, 1, 1])
    with pytest.raises(InputError, match="K_diag must be positive"):
        lmmbook.solve_mme(y, X, Z, K_inv, 1, 1, K_diag=[1, 0])


def test_unknown_method():
    y, X, Z, K_inv = small()
    with pytest.raises(InputError, match="method must be 'direct' or 'pcg', got 'lu'"):
        lmmbook.solve_mme(y, X, Z, K_inv, 1, 1, method="lu")
    with pytest.raises(InputError, match="preconditioner must be"):
        lmmbook.solve_mme(y, X, Z, K_inv, 1, 1, method="pcg", preconditioner="ilu")


def test_non_numeric_dataframe_column():
    y, X, Z, K_inv = small()
    with pytest.raises(InputError, match=r"'env'.*lmmbook.incidence"):
        lmmbook.solve_mme(y, pd.DataFrame({"env": list("aabb")}), Z, K_inv, 1, 1)


def test_a_missing_id_is_refused_not_joined_to_another_missing_id():
    """pandas matches NaN to NaN when it aligns indexes: a record without an ID would be joined
    to the row of X or Z that has none. Every labelled input refuses a missing ID instead."""
    y, X, Z, K_inv = small()
    ys = pd.Series(y, index=["r1", None, "r3", "r4"])
    Xd = pd.DataFrame(X, index=["r4", "r3", None, "r1"], columns=["mu"])
    with pytest.raises(InputError, match=r"the index of y has a missing ID at position 1"):
        lmmbook.solve_mme(ys, Xd, Z, K_inv, 1, 1)
    ids = ["r1", "r2", "r3", "r4"]
    with pytest.raises(InputError, match=r"the index of X has a missing ID at position 2"):
        lmmbook.solve_mme(pd.Series(y, index=ids), pd.DataFrame(X, index=["r4", "r3", np.nan,
                                                                          "r1"]), Z, K_inv, 1, 1)
    with pytest.raises(InputError, match=r"the columns of K_inv has a missing ID at position 1"):
        lmmbook.solve_mme(y, X, Z, pd.DataFrame(np.eye(2), index=["a", "b"], columns=["a", None]),
                          1, 1)
