"""Fold-level standard errors (fold_se, compare_folds) and the expected accuracy."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import lmmbook
from lmmbook.errors import (
    DuplicateIdError,
    InputError,
    NonFiniteError,
    ShapeMismatchError,
    UnknownIdError,
)


def test_fold_se_and_compare_folds_by_hand():
    a = np.array([0.47, 0.52, 0.44, 0.50, 0.49, 0.41, 0.55, 0.46, 0.48, 0.50])
    b = np.array([0.45, 0.49, 0.43, 0.46, 0.48, 0.40, 0.50, 0.47, 0.45, 0.47])
    d = a - b
    J, ratio = 10, 1 / 4  # 2 repeats of 5-fold
    sd = math.sqrt(sum((x - sum(d) / J) ** 2 for x in d) / (J - 1))
    est = lmmbook.compare_folds(a, b, test_train_ratio=ratio)
    assert est.estimate == pytest.approx(sum(d) / J, rel=1e-12)
    assert est.sd == pytest.approx(sd, rel=1e-12)
    assert est.se_naive == pytest.approx(sd / math.sqrt(J), rel=1e-12)
    assert est.se == pytest.approx(sd * math.sqrt(1 / J + ratio), rel=1e-12)
    assert est.n_splits == J and est.n_repeats is None and est.correction == "nadeau_bengio"
    np.testing.assert_allclose(est.values, d, rtol=1e-15)
    t = est.estimate / est.se
    assert est.p_value() == pytest.approx(2 * stats.t.sf(abs(t), J - 1), rel=1e-12)
    lo, hi = est.ci(0.9)
    assert hi - est.estimate == pytest.approx(stats.t.ppf(0.95, J - 1) * est.se, rel=1e-12)
    assert lo == pytest.approx(2 * est.estimate - hi, rel=1e-12)
    # without the correction it is the paired t-test
    plain = lmmbook.compare_folds(a, b, correction="none")
    ttest = stats.ttest_rel(a, b)
    assert plain.p_value() == pytest.approx(ttest.pvalue, rel=1e-10)
    assert plain.estimate / plain.se == pytest.approx(ttest.statistic, rel=1e-10)
    # one design
    one = lmmbook.fold_se(a, test_train_ratio=ratio)
    assert one.estimate == pytest.approx(a.mean(), rel=1e-12)
    assert one.se == pytest.approx(np.std(a, ddof=1) * math.sqrt(1 / J + ratio), rel=1e-12)


def test_tables_are_joined_by_repeat_and_fold():
    rng = np.random.default_rng(3)
    per_fold = pd.DataFrame({"repeat": np.repeat([0, 1], 4), "fold": np.tile(range(4), 2),
                             "n_train": 90, "n_valid": 30,
                             "predictive_ability": rng.uniform(0.3, 0.6, 8),
                             "slope": rng.uniform(0.8, 1.2, 8)})
    other = per_fold.assign(predictive_ability=per_fold["predictive_ability"] - 0.02
                            + rng.normal(0, 0.01, 8))
    shuffled = other.sample(frac=1.0, random_state=1)
    est = lmmbook.compare_folds(per_fold, shuffled)
    direct = lmmbook.compare_folds(per_fold["predictive_ability"].to_numpy(),
                                   other["predictive_ability"].to_numpy(), test_train_ratio=1 / 3)
    assert est.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert est.se == pytest.approx(direct.se, rel=1e-12)
    assert est.test_train_ratio == pytest.approx(1 / 3) and est.n_repeats == 2
    slope = lmmbook.fold_se(per_fold, measure="slope")
    assert slope.estimate == pytest.approx(per_fold["slope"].mean(), rel=1e-12)
    # refused: a missing fold, different fold sizes, a fold listed twice, a NaN
    with pytest.raises(UnknownIdError, match=r"\(1, 3\) of a are not in b"):
        lmmbook.compare_folds(per_fold, other.iloc[:-1])
    with pytest.raises(InputError, match=r"not evaluated on the same folds: .*\(0, 2\) has "
                                         r"n_valid 30 in a and 29 in b"):
        lmmbook.compare_folds(per_fold, other.assign(n_valid=[30, 30, 29, 30, 30, 30, 30, 30]))
    with pytest.raises(DuplicateIdError, match=r"\(0, 1\)"):
        lmmbook.fold_se(pd.concat([per_fold, per_fold.iloc[[1]]]))
    with pytest.raises(NonFiniteError, match=r"\(1, 0\)"):
        lmmbook.fold_se(per_fold.assign(slope=[1.0] * 4 + [np.nan] + [1.0] * 3), measure="slope")
    with pytest.raises(InputError, match="lacks the column"):
        lmmbook.fold_se(per_fold, measure="auc")
    with pytest.raises(InputError, match="not one of each"):
        lmmbook.compare_folds(per_fold, other["predictive_ability"].to_numpy())


def test_compare_two_cross_validations_on_the_same_folds():
    rng = np.random.default_rng(4)
    n, m = 90, 150
    ids = [f"a{i}" for i in range(n)]
    M = pd.DataFrame(rng.integers(0, 3, (n, m)).astype(float), index=ids)
    y = pd.Series(M.to_numpy() @ rng.normal(0, 0.1, m) + rng.normal(0, 1, n), index=ids)
    X = pd.DataFrame({"mean": 1.0}, index=ids)
    folds = lmmbook.kfold(ids, 3, repeats=2, seed=1)
    refit = lmmbook.cross_validate(y, X, folds, M=M)
    fixed = lmmbook.cross_validate(y, X, folds, M=M, refit_variances=False, sigma2_u=0.05,
                                   sigma2_e=1.0)
    est = lmmbook.compare_folds(refit, fixed)
    d = (refit.per_fold["predictive_ability"] - fixed.per_fold["predictive_ability"]).to_numpy()
    assert est.estimate == pytest.approx(d.mean(), rel=1e-12) and est.n_splits == 6
    ratio = refit.per_fold["n_valid"].sum() / refit.per_fold["n_train"].sum()
    assert est.se == pytest.approx(np.std(d, ddof=1) * math.sqrt(1 / 6 + ratio), rel=1e-12)
    # other folds of the same sizes and labels: refused by the validation IDs
    other = lmmbook.cross_validate(y, X, lmmbook.kfold(ids, 3, repeats=2, seed=2), M=M,
                                   refit_variances=False, sigma2_u=0.05, sigma2_e=1.0)
    with pytest.raises(InputError, match="validate different individuals"):
        lmmbook.compare_folds(refit, other)


def test_fold_errors():
    with pytest.raises(InputError, match="at least 2 folds"):
        lmmbook.fold_se([0.5], test_train_ratio=0.25)
    with pytest.raises(InputError, match="pass test_train_ratio"):
        lmmbook.fold_se([0.5, 0.4, 0.6])
    with pytest.raises(InputError, match="correction must be"):
        lmmbook.fold_se([0.5, 0.4], correction="bonferroni")
    with pytest.raises(InputError, match="test_train_ratio must be positive"):
        lmmbook.fold_se([0.5, 0.4], test_train_ratio=0.0)
    with pytest.raises(NonFiniteError, match="position\\(s\\) 1"):
        lmmbook.fold_se([0.5, np.nan, 0.4], test_train_ratio=0.25)
    with pytest.raises(ShapeMismatchError, match="b has 2 values but a has 3"):
        lmmbook.compare_folds([0.5, 0.4, 0.3], [0.5, 0.4], test_train_ratio=0.25)
    with pytest.raises(InputError, match="level must be between 0 and 1"):
        lmmbook.fold_se([0.5, 0.4], correction="none").ci(95)


# -------------------------------------------------------------------------------------------------
# A simulation: the naive SE is too small for repeated folds, the corrected one is not
# -------------------------------------------------------------------------------------------------


def _ridge_fold_values(X, y, folds_of_repeats, lambdas):
    """Predictive correlation of ridge regressions (one per lambda) on each validation fold."""
    out = []
    for folds in folds_of_repeats:
        for valid in folds:
            train = np.setdiff1d(np.arange(len(y)), valid)
            mean_x = X[train].mean(axis=0)
            U, s, Vt = np.linalg.svd(X[train] - mean_x, full_matrices=False)
            Uy = U.T @ (y[train] - y[train].mean())
            row = []
            for lam in lambdas:
                pred = (X[valid] - mean_x) @ (Vt.T @ (s / (s**2 + lam) * Uy))
                row.append(np.corrcoef(pred, y[valid])[0, 1])
            out.append(row)
    return np.array(out)


def test_corrected_se_covers_and_naive_se_does_not_for_repeated_folds():
    """200 data sets (n = 60, 30 predictors, h2 = 0.5); two ridge penalties compared by 10
    repeats of 5-fold cross-validation on each. The target is the expected mean difference (the
    mean over data sets). sd/sqrt(50) pretends 50 independent folds."""
    rng = np.random.default_rng(7)
    n, p, k, repeats, data_sets = 60, 30, 5, 10, 200
    rows = []
    for _ in range(data_sets):
        X = rng.standard_normal((n, p))
        y = X @ rng.normal(0.0, np.sqrt(0.5 / p), p) + rng.normal(0.0, np.sqrt(0.5), n)
        splits = [np.array_split(rng.permutation(n), k) for _ in range(repeats)]
        v = _ridge_fold_values(X, y, splits, (5.0, 60.0))
        many = lmmbook.compare_folds(v[:, 0], v[:, 1], test_train_ratio=1 / (k - 1))
        one = lmmbook.compare_folds(v[:k, 0], v[:k, 1], test_train_ratio=1 / (k - 1))
        rows.append((many.estimate, many.se_naive, many.se, *many.ci(), one.se_naive))
    est, naive, corrected, lo, hi, naive_one = np.array(rows).T
    target = est.mean()
    spread = est.std(ddof=1)  # the real standard error of a data set's mean difference
    t = stats.t.ppf(0.975, k * repeats - 1)
    covered_naive = np.mean(np.abs(est - target) < t * naive)
    covered = np.mean((lo < target) & (target < hi))
    # the naive SE is a third of the real one and falls with more repeats; the corrected one is
    # of the right size (conservative rather than too small)
    assert np.sqrt(np.mean(naive**2)) < 0.5 * spread
    assert np.mean(naive) < 0.5 * np.mean(naive_one)
    assert 0.85 * spread < np.sqrt(np.mean(corrected**2)) < 1.6 * spread
    assert covered_naive < 0.75 and covered > 0.90


# -------------------------------------------------------------------------------------------------
# The expected accuracy of Daetwyler et al. (2008) with Goddard's (2009) M_e
# -------------------------------------------------------------------------------------------------


def test_effective_segments_and_expected_accuracy_by_hand():
    # Ne = 100, L = 30 M: 2 * 100 * 30 / ln(3000) = 6000 / 8.0063676 = 749.4035
    assert lmmbook.effective_segments(100, 30.0) == pytest.approx(749.4035153, rel=1e-9)
    # Ne = 50, L = 25 M: 2500 / ln(1250) = 2500 / 7.1308988 = 350.5869
    assert lmmbook.effective_segments(50, 25.0) == pytest.approx(350.5869399, rel=1e-9)
    # n = 2000, h2 = 0.3: sqrt(600 / (600 + 749.4035)) = 0.666814
    assert lmmbook.expected_accuracy(2000, 0.3, 749.4035153) == pytest.approx(0.6668140,
                                                                              rel=1e-7)
    # n = 1000, h2 = 0.5, M_e = 350.587: sqrt(500 / 850.587) = 0.766700
    assert lmmbook.expected_accuracy(1000, 0.5, 350.5869399) == pytest.approx(0.7667003,
                                                                              rel=1e-7)
    # n h2 = M_e: r^2 = 1/2
    assert lmmbook.expected_accuracy(400, 0.25, 100.0) == pytest.approx(np.sqrt(0.5), rel=1e-12)


def test_expected_accuracy_limits_and_broadcasting():
    M_e = lmmbook.effective_segments(100, 30.0)
    assert lmmbook.expected_accuracy(0, 0.3, M_e) == 0.0
    assert lmmbook.expected_accuracy(5000, 0.0, M_e) == 0.0
    assert lmmbook.expected_accuracy(1e12, 0.3, M_e) == pytest.approx(1.0, abs=1e-8)
    # small information: r ~ sqrt(n h2 / M_e)
    assert lmmbook.expected_accuracy(10, 1e-6, M_e) == pytest.approx(np.sqrt(1e-5 / M_e),
                                                                     rel=1e-6)
    n = np.array([500, 1000, 2000, 4000])
    r = lmmbook.expected_accuracy(n, 0.3, M_e)
    assert r.shape == (4,) and np.all(np.diff(r) > 0)
    grid = lmmbook.expected_accuracy(n[:, None], np.array([0.1, 0.5]), M_e)
    assert grid.shape == (4, 2) and np.all(grid[:, 1] > grid[:, 0])
    assert lmmbook.effective_segments(np.array([50, 100, 200]), 30.0).shape == (3,)
    assert isinstance(lmmbook.expected_accuracy(100, 0.3, 50.0), float)


positive = st.floats(1e-3, 1e6, allow_nan=False)
share = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=200)
@given(st.floats(0.0, 1e7), st.floats(0.0, 1e7), share, share, positive, positive)
def test_expected_accuracy_is_monotone_and_bounded(n1, n2, h2a, h2b, M1, M2):
    """More records or a higher h2 never lower r, more segments never raise it; 0 <= r <= 1
    and r^2 / (1 - r^2) = n h2 / M_e (the odds of the reliability are the information per
    segment)."""
    acc = lmmbook.expected_accuracy
    (n1, n2), (h2a, h2b), (M1, M2) = sorted((n1, n2)), sorted((h2a, h2b)), sorted((M1, M2))
    tol = 1e-12
    assert acc(n1, h2a, M1) <= acc(n2, h2a, M1) + tol
    assert acc(n1, h2a, M1) <= acc(n1, h2b, M1) + tol
    assert acc(n1, h2a, M2) <= acc(n1, h2a, M1) + tol
    r = acc(n2, h2b, M1)
    assert 0.0 <= r <= 1.0
    if 0 < r < 0.999:
        assert r**2 / (1 - r**2) == pytest.approx(n2 * h2b / M1, rel=1e-8)


@settings(max_examples=200)
@given(st.floats(3.0, 1e4), st.floats(3.0, 1e4), st.floats(1.0, 100.0))
def test_effective_segments_grow_with_ne_and_length(Ne1, Ne2, L):
    """Above Ne L = e, M_e = 2 Ne L / ln(Ne L) grows with Ne and with L, stays below the
    2 Ne L of a genome without LD between segments' ends (ln(Ne L) > 1), and depends on Ne
    and L only through their product."""
    seg = lmmbook.effective_segments
    Ne1, Ne2 = sorted((Ne1, Ne2))
    assert seg(Ne1, L) <= seg(Ne2, L) * (1 + 1e-12)
    assert seg(Ne1, L) <= seg(Ne1, 2 * L)
    assert seg(Ne1, L) < 2 * Ne1 * L
    assert seg(Ne1, L) == pytest.approx(seg(L, Ne1), rel=1e-12)  # symmetric in Ne and L


@pytest.mark.parametrize(("call", "message"), [
    (lambda: lmmbook.effective_segments(0, 30.0), "Ne must be positive"),
    (lambda: lmmbook.effective_segments(100, np.nan), "L must be positive"),
    (lambda: lmmbook.effective_segments(0.5, 1.0), "Ne \\* L must exceed 1"),
    (lambda: lmmbook.expected_accuracy(-1, 0.3, 100.0), "n_train must be"),
    (lambda: lmmbook.expected_accuracy(100, 1.5, 100.0), "h2 must lie in"),
    (lambda: lmmbook.expected_accuracy(100, 0.3, 0.0), "M_e must be positive"),
])
def test_expected_accuracy_errors(call, message):
    with pytest.raises(InputError, match=message):
        call()
