"""Single-step GBLUP (chapter 9): tuning, the APY inverse, H^-1 and ssGBLUP.

Checked three ways: against dense references written from the papers' formulas in
tests/reference.py (Legarra et al.'s 2009 H, Misztal et al.'s 2014 APY block formula, the V form of
the BLUP, the tuning coefficients from their two defining equations), against Mrode & Pocrnic's
(2023) printed Examples 12.1 and 12.2, and on properties over random pedigrees with genotypes
dropped through them (hypothesis).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as la
import scipy.optimize as opt
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import (
    apy_inverse_dense,
    gls_blup,
    reml_loglik,
    single_step_H,
    tabular_A,
    tuned_G,
    vanraden_G,
)

import lmmbook
from lmmbook import singlestep
from lmmbook.datasets import mrode_example_12_1, mrode_example_12_2
from lmmbook.errors import (
    DuplicateIdError,
    InputError,
    LmmbookWarning,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    UnknownIdError,
)

# Mrode prints 3 decimals; the example files accept 0.001.
PRINTED = 1e-3


# ---- random pedigrees with genotypes dropped through them --------------------------------------

@dataclass
class Problem:
    ped: lmmbook.Pedigree
    A: np.ndarray        # tabular A, in ped.ids order
    g: np.ndarray        # rows (ped order) of the genotyped animals, in the order of ids
    ids: np.ndarray      # genotyped IDs, arbitrary order
    M: np.ndarray        # genotypes, rows = ids
    p: np.ndarray        # base-population allele frequencies
    y: pd.Series         # records of some animals, indexed by ID
    X: pd.DataFrame      # intercept and a covariate, indexed by ID (shuffled rows)
    y_all: np.ndarray    # y in ped.ids order, NaN = no record
    X_all: np.ndarray    # X in ped.ids order


def make_problem(seed, n=30, share=0.5, m=None, selfing=False, all_genotyped=False,
                 recorded=0.7):
    """Animals "a1".."an" (rows shuffled), parents among the recent animals (close relatives, so
    many inbred), a fifth of the parents unknown; selfing with probability 0.3 when allowed.
    Genotypes by gene dropping from founders with frequencies p; some genotyped animals have no
    record and some recorded animals no genotype."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    sire, dam = [None] * n, [None] * n
    for i in range(2, n):
        recent = np.arange(max(0, i - 8), i)
        males, females = (recent, recent) if selfing else (recent[male[recent]],
                                                           recent[~male[recent]])
        if len(males) and rng.random() < 0.8:
            sire[i] = f"a{rng.choice(males) + 1}"
        if len(females) and rng.random() < 0.8:
            selfed = selfing and sire[i] is not None and rng.random() < 0.3
            dam[i] = sire[i] if selfed else f"a{rng.choice(females) + 1}"
    order = rng.permutation(n)
    animals = np.array([f"a{i + 1}" for i in range(n)])
    ped = lmmbook.Pedigree(animals[order], np.array(sire, dtype=object)[order],
                           np.array(dam, dtype=object)[order], allow_selfing=selfing)
    n_g = n if all_genotyped else max(3, int(share * n))
    g = rng.choice(n, n_g, replace=False)
    m = m or 3 * n_g + 10
    p = rng.uniform(0.1, 0.9, m)
    haplo = np.empty((n, 2, m), dtype=np.int8)
    for i in range(n):  # ped order: parents first
        for k, parent in enumerate((ped.sire[i], ped.dam[i])):
            if parent < 0:
                haplo[i, k] = rng.random(m) < p
            else:
                haplo[i, k] = haplo[parent, rng.integers(0, 2, m), np.arange(m)]
    genotypes = haplo.sum(axis=1).astype(float)
    rec = rng.random(n) < recorded
    rec[rng.choice(n, 5, replace=False)] = True  # enough records for the fixed effects
    if n_g < n:  # an ungenotyped animal with a record, a genotyped one without
        rec[np.setdiff1d(np.arange(n), g)[0]] = True
        rec[g[0]] = False
    X_all = np.column_stack([np.ones(n), rng.normal(size=n)])
    y_all = np.where(rec, X_all @ [10.0, 1.0] + rng.normal(size=n) * 2, np.nan)
    y = pd.Series(y_all[rec], index=ped.ids[rec])
    shuffled = rng.permutation(n)
    X = pd.DataFrame(X_all[shuffled], index=ped.ids[shuffled], columns=["mu", "x"])
    A = tabular_A(ped.sire + 1, ped.dam + 1)
    return Problem(ped, A, g, ped.ids[g], genotypes[g], p, y, X, y_all, X_all)


def reference_H(pr, G, *, blend, tune, core_rows=None):
    """H over all animals (ped order) from G of the genotyped (ids order): Legarra's formula with
    G_t, or with an APY core the inverse of A^-1 + [[0, 0], [0, G_APY^-1 - A22^-1]]."""
    A22 = pr.A[np.ix_(pr.g, pr.g)]
    G_t, _, _ = tuned_G(G, A22, blend, tune)
    if core_rows is None:
        return single_step_H(pr.A, pr.g, G_t)
    H_inv = np.linalg.inv(pr.A)
    H_inv[np.ix_(pr.g, pr.g)] += apy_inverse_dense(G_t, core_rows)[0] - np.linalg.inv(A22)
    return np.linalg.inv(H_inv)


def dense_mme(pr, H, sigma2_u, sigma2_e):
    """C and the right-hand side of the MME with K^-1 = inv(H), Z = I over the recorded."""
    obs = np.isfinite(pr.y_all)
    X, y = pr.X_all[obs], pr.y_all[obs]
    Z = np.eye(len(pr.A))[obs]
    C = np.block([[X.T @ X, X.T @ Z],
                  [Z.T @ X, Z.T @ Z + sigma2_e / sigma2_u * np.linalg.inv(H)]])
    return C, np.concatenate([X.T @ y, Z.T @ y])


problems = st.builds(make_problem, seed=st.integers(0, 2**32 - 1), n=st.integers(8, 35),
                     share=st.floats(0.1, 1.0), selfing=st.booleans())
blends = st.sampled_from([0.0, 0.05, 0.4])


def scale(K):
    return np.abs(K).max()


# ---- tuning: G on the scale of A22 --------------------------------------------------------------

@settings(max_examples=30)
@given(problems, blends, st.booleans())
def test_tuning_meets_its_defining_equations(pr, blend, tune):
    G = vanraden_G(pr.M)
    A22 = pr.A[np.ix_(pr.g, pr.g)]
    t = lmmbook.tune_genomic(G, A22, blend=blend, tune="mean" if tune else None,
                             min_correlation=None)
    G_b = (1 - blend) * G + blend * A22
    np.testing.assert_allclose(t.G_t, t.a + t.b * G_b, rtol=1e-13, atol=1e-13)
    G_t, a, b = tuned_G(G, A22, blend, tune)
    np.testing.assert_allclose([t.a, t.b], [a, b], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.G_t, G_t, rtol=1e-12, atol=1e-12)
    if tune:  # the two equations that define a and b
        assert np.mean(np.diag(t.G_t)) == pytest.approx(np.mean(np.diag(A22)), rel=1e-12)
        assert np.mean(t.G_t) == pytest.approx(np.mean(A22), rel=1e-10, abs=1e-12)
    else:
        assert (t.a, t.b) == (0.0, 1.0)
    assert t.blend == blend
    off = ~np.eye(len(G), dtype=bool)
    if np.ptp(A22[off]) > 1e-12 and len(G) >= 3:
        assert t.offdiagonal_correlation == pytest.approx(np.corrcoef(G[off], A22[off])[0, 1])
    if np.ptp(np.diag(A22)) > 1e-12:
        assert t.diagonal_correlation == pytest.approx(np.corrcoef(np.diag(G),
                                                                   np.diag(A22))[0, 1])
    else:  # no genotyped animal is inbred: the diagonal correlation is undefined
        assert np.isnan(t.diagonal_correlation)


def test_tuning_of_mrode_12_1():
    """Mrode & Pocrnic (2023), Example 12.1: G_t = a + b (0.95 G + 0.05 A22), a = 0.202,
    b = 0.709 (exact 0.2018 and 0.7093 in ../shared/examples/mrode-4ed/ex-12-1.md)."""
    ex = mrode_example_12_1()
    p = ex.pedigree
    A = tabular_A(p["sire"].to_numpy(), p["dam"].to_numpy())  # animals 1..26 in order
    g = ex.genotypes.index.to_numpy() - 1
    t = lmmbook.tune_genomic(vanraden_G(ex.genotypes), A[np.ix_(g, g)], blend=0.05)
    assert t.a == pytest.approx(0.202, abs=PRINTED) and t.b == pytest.approx(0.709, abs=PRINTED)
    assert t.a == pytest.approx(0.2018, abs=1e-4) and t.b == pytest.approx(0.7093, abs=1e-4)


# ---- the APY inverse ----------------------------------------------------------------------------

@settings(max_examples=30)
@given(problems, st.integers(0, 2**32 - 1), st.floats(0.05, 1.0))
def test_apy_inverse_is_its_block_formula(pr, seed, share):
    rng = np.random.default_rng(seed)
    G_t = tuned_G(vanraden_G(pr.M), pr.A[np.ix_(pr.g, pr.g)], 0.05, True)[0]
    n_g = len(G_t)
    c = rng.choice(n_g, max(1, int(share * n_g)), replace=False)  # arbitrary order
    apy = lmmbook.apy_inverse(pd.DataFrame(G_t, index=pr.ids, columns=pr.ids), pr.ids[c])
    ref, m = apy_inverse_dense(G_t, np.sort(c))
    dense = apy.toarray()
    # two ways of rounding the same inverses: eps times cond(G_t), with room
    cond = np.linalg.cond(G_t)
    np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-12 * cond * scale(ref))
    np.testing.assert_allclose(apy.m, m, rtol=0, atol=1e-12 * cond * scale(np.diag(G_t)))
    assert apy.core.tolist() == sorted(c) and len(apy.noncore) == n_g - len(c)
    # stored in parts: nothing of size n_g x n_g unless everyone is in the core
    assert apy.G_cc_inv.shape == (len(c), len(c)) and apy.P.shape == (len(c), n_g - len(c))
    x = rng.normal(size=n_g)
    np.testing.assert_allclose(apy @ x, dense @ x, rtol=1e-12, atol=1e-12 * scale(dense @ x))
    X = rng.normal(size=(n_g, 3))
    np.testing.assert_allclose(apy @ X, dense @ X, rtol=1e-12, atol=1e-12 * scale(dense @ X))
    np.testing.assert_allclose(apy.diagonal(), np.diag(dense), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(apy), dense)
    assert apy.shape == (n_g, n_g)
    np.testing.assert_array_equal(dense, dense.T)
    # the non-core block is diagonal: non-core animals are independent given the core
    nc = apy.noncore
    block = dense[np.ix_(nc, nc)]
    np.testing.assert_array_equal(block - np.diag(np.diag(block)), 0.0)


@settings(max_examples=20)
@given(problems)
def test_apy_with_every_animal_in_the_core_is_the_inverse(pr):
    G_t = tuned_G(vanraden_G(pr.M), pr.A[np.ix_(pr.g, pr.g)], 0.05, True)[0]
    inv = np.linalg.inv(G_t)
    apy = lmmbook.apy_inverse(G_t, np.arange(len(G_t))[::-1])
    np.testing.assert_allclose(apy.toarray(), inv, rtol=0,
                               atol=1e-12 * np.linalg.cond(G_t) * scale(inv))
    assert len(apy.noncore) == 0


def mrode_12_2():
    ex = mrode_example_12_2()
    bulls = ex.genotypes.index.to_numpy()
    G = vanraden_G(ex.genotypes)  # unblended, as in the book
    core = ex.records.loc[ex.records["apy_set"] == "core", "bull"].to_numpy()
    return ex, bulls, G, core


def test_mrode_12_2_apy_inverse():
    """Mrode & Pocrnic (2023), Example 12.2 (../shared/examples/mrode-4ed/ex-12-2.md): diag(M_nn)
    of the non-core bulls and the row of bull 15 of G_APY^-1 with the core first (15, 20, 22,
    26), then the non-core bulls."""
    ex, bulls, G, core = mrode_12_2()
    apy = lmmbook.apy_inverse(G, core, ids=bulls)
    assert bulls[apy.noncore].tolist() == [13, 14, 16, 17, 18, 19, 21, 23, 24, 25]
    np.testing.assert_allclose(apy.m, [0.234, 0.204, 0.600, 0.848, 0.485, 0.420, 1.107, 0.104,
                                       0.644, 0.102], atol=PRINTED)
    book_order = [15, 20, 22, 26, 13, 14, 16, 17, 18, 19, 21, 23, 24, 25]
    rows = pd.Index(bulls).get_indexer(book_order)
    row_15 = apy.toarray()[np.ix_(rows, rows)][0]
    np.testing.assert_allclose(row_15, [4.425, 0.373, -0.527, 0.412, -0.795, 2.731, -0.349,
                                        -0.658, 0.959, 0.776, 0.483, -0.447, -0.108, 1.828],
                               atol=PRINTED)
    # the book's internal check: 10 non-zeros in the non-core block
    assert np.count_nonzero(apy.toarray()[np.ix_(apy.noncore, apy.noncore)]) == 10


def gblup_with_K_inv(ex, bulls, K_inv):
    r = ex.records.set_index("bull").loc[bulls]
    y = np.where(r["role"] == "reference", r["dyd"], np.nan)  # candidates: predicted only
    v = ex.variances
    fit = lmmbook.solve_mme(y, np.ones((len(bulls), 1)), np.eye(len(bulls)), K_inv,
                            v["sigma2_a"], v["sigma2_e"])
    return fit.u


def test_mrode_12_2_dgv_with_the_apy_inverse():
    """Mrode & Pocrnic (2023), Example 12.2: DGV of bulls 13-26 with G_APY^-1 (bull 17's sign
    restored, see ex-12-2.md), and their correlation 0.95 with the DGV from (G + 0.01 I)^-1."""
    ex, bulls, G, core = mrode_12_2()
    inv = lmmbook.apy_inverse(G, core, ids=bulls)
    dgv = gblup_with_K_inv(ex, bulls, inv.toarray())
    np.testing.assert_allclose(dgv, [0.065, 0.119, 0.030, 0.365, -0.471, -0.244, -0.055, -0.220,
                                     0.010, 0.127, -0.229, 0.097, -0.007, 0.363], atol=PRINTED)
    full = gblup_with_K_inv(ex, bulls, np.linalg.inv(G + 0.01 * np.eye(len(G))))
    assert np.corrcoef(full, dgv)[0, 1] == pytest.approx(0.95, abs=0.005)


# ---- H^-1 ---------------------------------------------------------------------------------------

def genomic(pr, blend):
    """G of the genotyped: with the base frequencies when unblended (then it is invertible), with
    the genotyped animals' own (singular: G 1 = 0) when blending makes G_b invertible."""
    return vanraden_G(pr.M, pr.p if blend == 0 else None)


@settings(max_examples=30)
@given(problems, blends, st.booleans())
def test_H_inverse_is_the_inverse_of_legarras_H(pr, blend, tune):
    G = genomic(pr, blend)
    G_t = tuned_G(G, pr.A[np.ix_(pr.g, pr.g)], blend, tune)[0]
    # unblended: selfing can make identical genomes, tuning by a < 0 an indefinite G_t; those
    # are refused (test_singular_G_without_blending_is_refused), not compared
    assume(np.linalg.eigvalsh(G_t)[0] > 1e-6 * np.mean(np.diag(G_t)))
    H = reference_H(pr, G, blend=blend, tune=tune)
    H_inv = lmmbook.H_inverse(pr.ped, G, pr.ids, blend=blend, tune="mean" if tune else None,
                              min_correlation=None)
    assert H_inv.format == "csc" and H_inv.shape == H.shape
    dense = H_inv.toarray()
    # inv(H) multiplies H's rounding by its condition number; H^-1 is built without it
    bound = 1e-12 * np.linalg.cond(H) * scale(dense)
    np.testing.assert_allclose(dense, np.linalg.inv(H), rtol=0, atol=bound)
    np.testing.assert_allclose(dense @ H, np.eye(len(H)), rtol=0, atol=1e-12 * np.linalg.cond(H))
    assert abs(H_inv - H_inv.T).max() == 0  # symmetric to the last bit
    core = pr.ids[: (len(pr.ids) + 1) // 2]
    with_apy = lmmbook.H_inverse(pr.ped, G, pr.ids, blend=blend, tune="mean" if tune else None,
                                 core=core, min_correlation=None)
    assert abs(with_apy - with_apy.T).max() == 0
    # sparse outside the genotyped block: A^-1's pattern there
    o = np.setdiff1d(np.arange(len(H)), pr.g)
    A_inv = pr.ped.A_inverse().toarray()
    np.testing.assert_array_equal(dense[np.ix_(o, o)] != 0, A_inv[np.ix_(o, o)] != 0)


@settings(max_examples=15)
@given(problems, st.floats(0.5, 1.5), st.floats(0.3, 1.0), st.booleans())
def test_H_inverse_with_tau_and_omega(pr, tau, omega, apy):
    """H^-1 = A^-1 + [[0, 0], [0, tau G_t^-1 - omega A22^-1]], A^-1 and A22^-1 by dense
    inversion of the tabular A; with or without an APY core."""
    G = genomic(pr, 0.05)
    A22 = pr.A[np.ix_(pr.g, pr.g)]
    G_t = tuned_G(G, A22, 0.05, True)[0]
    core = pr.ids[: max(1, len(pr.ids) // 2)] if apy else None
    G_t_inv = (apy_inverse_dense(G_t, np.arange(len(core)))[0] if apy else np.linalg.inv(G_t))
    ref = np.linalg.inv(pr.A)
    ref[np.ix_(pr.g, pr.g)] += tau * G_t_inv - omega * np.linalg.inv(A22)
    H_inv = lmmbook.H_inverse(pr.ped, G, pr.ids, blend=0.05, tune="mean", tau=tau, omega=omega,
                              core=core, min_correlation=None).toarray()
    bound = 1e-12 * max(np.linalg.cond(pr.A), np.linalg.cond(G_t)) * scale(ref)
    np.testing.assert_allclose(H_inv, ref, rtol=0, atol=bound)


@settings(max_examples=12)
@given(problems, st.sampled_from(["mean", None]))
def test_H_inverse_is_A_inverse_when_G_is_A22(pr, tune):
    A22 = pr.A[np.ix_(pr.g, pr.g)]
    H_inv = lmmbook.H_inverse(pr.ped, A22, pr.ids, tune=tune).toarray()
    A_inv = pr.ped.A_inverse().toarray()
    np.testing.assert_allclose(H_inv, A_inv, rtol=0, atol=1e-12 * np.linalg.cond(A22)
                               * scale(A_inv))


@settings(max_examples=15)
@given(problems, st.integers(0, 2**32 - 1))
def test_H_inverse_does_not_depend_on_the_order_of_the_genotyped(pr, seed):
    perm = np.random.default_rng(seed).permutation(len(pr.ids))
    G = genomic(pr, 0.05)
    H = reference_H(pr, G, blend=0.05, tune=True)
    H_inv = lmmbook.H_inverse(pr.ped, G, pr.ids, blend=0.05, tune="mean", min_correlation=None)
    frame = pd.DataFrame(G[np.ix_(perm, perm)], index=pr.ids[perm], columns=pr.ids[perm])
    again = lmmbook.H_inverse(pr.ped, frame, blend=0.05, tune="mean", min_correlation=None)
    np.testing.assert_allclose(again.toarray(), H_inv.toarray(), rtol=0,
                               atol=1e-12 * np.linalg.cond(H) * scale(H_inv))


# ---- ssGBLUP ------------------------------------------------------------------------------------

def test_mrode_12_1_ssgblup():
    """Mrode & Pocrnic (2023), Example 12.1 (../shared/examples/mrode-4ed/ex-12-1.md): DYD of
    bulls 13-20, G blended 0.05 and tuned, sigma2_a = 35.241, sigma2_e = 245. The printed
    solutions of the 26 animals (the mean, 9.926, is a recomputation and not printed)."""
    ex = mrode_example_12_1()
    p, r, v = ex.pedigree, ex.records, ex.variances
    ped = lmmbook.Pedigree(p["animal"], p["sire"], p["dam"])
    ref = r[r["role"] == "reference"]
    y = pd.Series(ref["dyd"].to_numpy(), index=ref["bull"].to_numpy())
    printed = pd.Series(
        [0.009, 0.121, 0.009, 0.010, -0.250, -0.196, -0.001, 0.026, -0.076, 0.040, -0.137, 0.136,
         0.048, 0.082, 0.039, 0.202, -0.356, -0.254, 0.098, -0.169, 0.018, 0.079, -0.164, 0.101,
         0.039, 0.245], index=range(1, 27))
    for method in ("direct", "pcg"):
        fit = lmmbook.ssgblup(y, np.ones((26, 1)), ped, ex.genotypes, sigma2_u=v["sigma2_a"],
                              sigma2_e=v["sigma2_e"], blend=0.05, tune="mean", method=method)
        np.testing.assert_allclose(fit.u, printed.loc[fit.ids].to_numpy(), atol=PRINTED)
        assert fit.tuning == pytest.approx((0.202, 0.709), abs=PRINTED)
        assert fit.genotyped.tolist() == [a >= 13 for a in fit.ids]
        frame = fit.to_frame()
        assert frame.index.tolist() == fit.ids.tolist()
        assert list(frame.columns) == (["gebv", "genotyped", "pev", "reliability"]
                                       if method == "direct" else ["gebv", "genotyped"])
    # the same through H_inverse and the general MME
    H_inv = lmmbook.H_inverse(ped, vanraden_G(ex.genotypes), ex.genotypes.index, blend=0.05,
                              tune="mean")
    y_all = pd.Series(ped.ids, index=ped.ids).map(y)
    mme = lmmbook.solve_mme(y_all.to_numpy(), np.ones((26, 1)), np.eye(26), H_inv,
                            v["sigma2_a"], v["sigma2_e"])
    np.testing.assert_allclose(mme.u, printed.loc[ped.ids].to_numpy(), atol=PRINTED)


VARIANCES = {"sigma2_u": 1.5, "sigma2_e": 3.0}


# selfing can give identical genomes in a random core: warned, and legitimate
@pytest.mark.filterwarnings("ignore:G_cc of the APY core:lmmbook.errors.LmmbookWarning")
@settings(max_examples=20)
@given(problems, st.sampled_from([0.05, 0.4]), st.booleans(), st.booleans())
def test_ssgblup_direct_against_the_dense_v_form(pr, blend, tune, apy):
    """b by GLS and u = sigma2_u H Z' V^-1 (y - X b) with H from Legarra's formula (or the
    inverse of the APY H^-1); PEV and reliability against the dense inverse of the MME."""
    core = pr.ids[::2] if apy else None
    core_rows = np.arange(0, len(pr.ids), 2) if apy else None
    H = reference_H(pr, vanraden_G(pr.M), blend=blend, tune=tune, core_rows=core_rows)
    s2u, s2e = VARIANCES.values()
    b, u, _ = gls_blup(pr.y_all, pr.X_all, np.eye(len(H)), H, s2u, s2e)
    fit = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, blend=blend,
                          tune="mean" if tune else None, core=core, min_correlation=None)
    cond = np.linalg.cond(H)
    # round-off of the dense inversions: eps cond(H), with room
    np.testing.assert_allclose(fit.b, b, rtol=0, atol=1e-12 * cond * scale(b))
    np.testing.assert_allclose(fit.u, u, rtol=0, atol=1e-12 * cond * scale(u))
    assert fit.ids.tolist() == pr.ped.ids.tolist()
    assert fit.fixed_names.tolist() == ["mu", "x"] and fit.n_obs == len(pr.y)
    assert np.flatnonzero(fit.genotyped).tolist() == sorted(pr.g)
    C, _ = dense_mme(pr, H, s2u, s2e)
    pev = s2e * np.diag(np.linalg.inv(C))[2:]
    np.testing.assert_allclose(fit.pev, pev, rtol=0, atol=1e-12 * np.linalg.cond(C) * s2u)
    np.testing.assert_allclose(fit.reliability, 1 - pev / (s2u * np.diag(H)), rtol=0,
                               atol=1e-12 * np.linalg.cond(C) * s2u)
    if apy:
        assert sorted(fit.core.tolist()) == sorted(core.tolist())


# selfing can give identical genomes in a random core: warned, and legitimate
@pytest.mark.filterwarnings("ignore:G_cc of the APY core:lmmbook.errors.LmmbookWarning")
@settings(max_examples=15)
@given(problems, st.booleans())
def test_ssgblup_pcg_agrees_with_direct_to_its_tolerance(pr, apy):
    """PCG stops at |C x - r| <= tol |r|: the residual recomputed from the dense MME meets it,
    and |x - x_direct| <= cond(C) |C x - r| / |r| |x_direct|."""
    core = pr.ids[1::2] if apy else None
    core_rows = np.arange(1, len(pr.ids), 2) if apy else None
    kw = dict(**VARIANCES, blend=0.05, tune="mean", core=core, min_correlation=None)
    direct = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **kw)
    tol = 1e-8
    pcg = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **kw, method="pcg", tol=tol)
    assert pcg.method == "pcg" and pcg.pev is None and pcg.reliability is None
    assert pcg.n_iter == len(pcg.residuals) - 1 and pcg.residuals[-1] <= tol
    H = reference_H(pr, vanraden_G(pr.M), blend=0.05, tune=True, core_rows=core_rows)
    C, rhs = dense_mme(pr, H, *VARIANCES.values())
    x_pcg, x_dir = np.concatenate([pcg.b, pcg.u]), np.concatenate([direct.b, direct.u])
    relative_residual = np.linalg.norm(C @ x_pcg - rhs) / np.linalg.norm(rhs)
    # the recursive residual and the recomputed one differ by round-off (eps cond(C))
    assert relative_residual <= tol + 1e-13 * np.linalg.cond(C)
    bound = np.linalg.cond(C) * relative_residual * np.linalg.norm(x_dir)
    assert np.linalg.norm(x_pcg - x_dir) <= bound + 1e-12 * np.linalg.cond(C) * scale(x_dir)


@settings(max_examples=15)
@given(st.integers(0, 2**32 - 1), st.integers(6, 30), st.sampled_from([0.05, 0.4]),
       st.booleans())
def test_ssgblup_is_gblup_when_every_animal_is_genotyped(seed, n, blend, tune):
    """With everyone genotyped, H = G_t (Legarra's formula has no ungenotyped block): ssGBLUP is
    GBLUP with G_t, whatever the pedigree."""
    pr = make_problem(seed, n, all_genotyped=True)
    G_t = tuned_G(vanraden_G(pr.M), pr.A[np.ix_(pr.g, pr.g)], blend, tune)[0]
    gb = lmmbook.gblup(pr.y, pr.X, G_t, ids=pr.ids, **VARIANCES)
    ss = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, blend=blend,
                         tune="mean" if tune else None, min_correlation=None)
    cond = np.linalg.cond(G_t)
    np.testing.assert_allclose(ss.b, gb.b, rtol=0, atol=1e-12 * cond * scale(gb.b))
    u = pd.Series(gb.u, index=gb.ids).loc[ss.ids].to_numpy()
    np.testing.assert_allclose(ss.u, u, rtol=0, atol=1e-12 * cond * scale(u))
    pev = pd.Series(gb.pev, index=gb.ids).loc[ss.ids].to_numpy()
    np.testing.assert_allclose(ss.pev, pev, rtol=0, atol=1e-12 * cond * VARIANCES["sigma2_u"])


@settings(max_examples=15)
@given(st.integers(0, 2**32 - 1), st.integers(8, 35), st.integers(1, 8))
def test_ssgblup_is_pedigree_blup_when_G_is_A22(seed, n, n_g):
    """Genotyped founders (unrelated: A22 = I) with genotypes whose G is exactly I (the first
    n_g rows of a Hadamard matrix, padded with heterozygotes, centred at p = 1/2): H = A, so
    ssGBLUP without blending or tuning is pedigree BLUP."""
    pr = make_problem(seed, n)
    founders = np.flatnonzero((pr.ped.sire < 0) & (pr.ped.dam < 0))
    n_g = min(n_g, len(founders))
    h = 8
    W = np.hstack([la.hadamard(h)[:n_g], np.zeros((n_g, h))])
    ids = pr.ped.ids[founders[:n_g]][::-1]
    half = np.full(2 * h, 0.5)
    np.testing.assert_allclose(vanraden_G(W + 1, half), np.eye(n_g), atol=1e-15)
    ss = lmmbook.ssgblup(pr.y, pr.X, pr.ped, W + 1, ids, **VARIANCES, blend=0.0, tune=None,
                         allele_freq=half)
    ped_blup = lmmbook.solve_mme(pr.y_all, pr.X_all, np.eye(n), pr.ped.A_inverse(),
                                 *VARIANCES.values())
    tol = 1e-12 * np.linalg.cond(pr.A)
    np.testing.assert_allclose(ss.u, ped_blup.u, rtol=0, atol=tol * scale(ped_blup.u))
    np.testing.assert_allclose(ss.b, ped_blup.b, rtol=0, atol=tol * scale(ped_blup.b))
    np.testing.assert_allclose(ss.pev, ped_blup.pev, rtol=0, atol=tol * VARIANCES["sigma2_u"])


# selfing can give identical genomes in a random core: warned, and legitimate
@pytest.mark.filterwarnings("ignore:G_cc of the APY core:lmmbook.errors.LmmbookWarning")
@settings(max_examples=12)
@given(problems, st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from(["direct", "pcg"]))
def test_ssgblup_does_not_depend_on_the_order_of_the_genotyped(pr, seed, apy, method):
    perm = np.random.default_rng(seed).permutation(len(pr.ids))
    core = pr.ids[::3] if apy else None
    kw = dict(**VARIANCES, core=core, min_correlation=None, method=method, tol=1e-12)
    fit = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **kw)
    frame = pd.DataFrame(pr.M[perm], index=pr.ids[perm])
    again = lmmbook.ssgblup(pr.y, pr.X, pr.ped, frame, **kw)
    # direct: round-off; PCG to 1e-12: two iterations that round differently, cond(C) < 1e3
    tol = 1e-9 if method == "pcg" else 1e-12
    np.testing.assert_allclose(again.u, fit.u, rtol=0, atol=tol * scale(fit.u))
    np.testing.assert_allclose(again.b, fit.b, rtol=0, atol=tol * scale(fit.b))
    assert again.tuning == pytest.approx(fit.tuning, rel=1e-12)


def test_ssgblup_reml_maximises_the_dense_likelihood():
    """Variances not given: REML through the dense H. Against lmmbook.reml with K = H from
    Legarra's formula, and against the likelihood of tests/reference.py maximised by scipy."""
    pr = make_problem(7, n=70, share=0.5, recorded=0.9)
    H = reference_H(pr, vanraden_G(pr.M), blend=0.05, tune=True)
    rng = np.random.default_rng(1)
    u = la.cholesky(H, lower=True) @ rng.normal(size=len(H)) * np.sqrt(2.0)
    y_all = np.where(np.isfinite(pr.y_all), pr.X_all @ [10.0, 1.0] + u
                     + rng.normal(size=len(H)) * np.sqrt(2.0), np.nan)
    y = pd.Series(y_all, index=pr.ped.ids).dropna()
    fit = lmmbook.ssgblup(y, pr.X, pr.ped, pr.M, pr.ids, min_correlation=None)
    assert fit.estimated and 0.1 < fit.h2 < 0.9  # an interior optimum
    ref = lmmbook.reml(y_all, pr.X_all, None, H)
    assert fit.sigma2_u == pytest.approx(ref.sigma2_u, rel=1e-6)
    assert fit.sigma2_e == pytest.approx(ref.sigma2_e, rel=1e-6)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)
    obs = np.isfinite(y_all)
    Hs = [H[np.ix_(obs, obs)]]
    X_o, y_o = pr.X_all[obs], y_all[obs]
    theta = np.array([fit.sigma2_u, fit.sigma2_e])
    assert fit.loglik == pytest.approx(reml_loglik(y_o, X_o, Hs, theta), abs=1e-8)
    best = opt.minimize(lambda t: -reml_loglik(y_o, X_o, Hs, np.exp(t)), np.log(theta * 1.5),
                        method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
    assert -best.fun <= fit.loglik + 1e-8
    np.testing.assert_allclose(np.exp(best.x), theta, rtol=1e-4)
    b, u_ref, _ = gls_blup(y_all, pr.X_all, np.eye(len(H)), H, *theta)
    np.testing.assert_allclose(fit.u, u_ref, rtol=0, atol=1e-8 * scale(u_ref))


# ---- errors and warnings ------------------------------------------------------------------------

@pytest.fixture
def small():
    return make_problem(3, n=25, share=0.6)


def test_genotyped_animals_not_in_the_pedigree_are_named(small):
    pr = small
    ids = pr.ids.copy()
    ids[1] = "bull-99"
    G = genomic(pr, 0.05)
    with pytest.raises(UnknownIdError, match="genotyped animal.*'bull-99' is not in the pedigree"):
        lmmbook.H_inverse(pr.ped, G, ids, blend=0.05, min_correlation=None)
    with pytest.raises(UnknownIdError, match="genotyped animal.*'bull-99' is not in the pedigree"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, ids, **VARIANCES)


def test_genotyped_ids_listed_twice_are_refused(small):
    pr = small
    ids = pr.ids.copy()
    ids[2] = ids[0]
    G = genomic(pr, 0.05)
    with pytest.raises(DuplicateIdError, match=f"'{ids[0]}' more than once"):
        lmmbook.H_inverse(pr.ped, G, ids, blend=0.05, min_correlation=None)
    with pytest.raises(DuplicateIdError, match=f"'{ids[0]}' more than once"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, ids, **VARIANCES)


def test_apy_core_must_be_a_non_empty_subset_without_repeats(small):
    pr = small
    G = genomic(pr, 0.05) + 0.05 * np.eye(len(pr.ids))
    with pytest.raises(UnknownIdError, match="'a999' are not among the genotyped animals"):
        lmmbook.apy_inverse(G, ["a999", pr.ids[0]], ids=pr.ids)
    with pytest.raises(UnknownIdError, match="'a999' are not among the genotyped animals"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, core=["a999"],
                        min_correlation=None)
    with pytest.raises(UnknownIdError, match="'a999' are not among the genotyped animals"):
        lmmbook.H_inverse(pr.ped, G, pr.ids, core=["a999"], min_correlation=None)
    with pytest.raises(InputError, match="the APY core is empty"):
        lmmbook.apy_inverse(G, [], ids=pr.ids)
    with pytest.raises(InputError, match="the APY core is empty"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, core=[],
                        min_correlation=None)
    with pytest.raises(DuplicateIdError, match=f"the APY core holds '{pr.ids[1]}' more than once"):
        lmmbook.apy_inverse(G, [pr.ids[1], pr.ids[0], pr.ids[1]], ids=pr.ids)
    with pytest.raises(UnknownIdError, match="core rows 99 are outside G's"):
        lmmbook.apy_inverse(G, [0, 99])
    with pytest.raises(InputError, match="pass ids= to name the core animals"):
        lmmbook.apy_inverse(G, ["a1"])


def test_apy_refuses_a_singular_core_and_a_non_core_animal_explained_by_it():
    # G of rank 2: animals 0 and 1 span it, 2 = 0 + 1, 3 = 0 - 1
    W = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0], [1.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
    G = W @ W.T
    with pytest.raises(NotPositiveDefiniteError, match=r"G_cc of the APY core \(3 animals\) is "
                       r"singular.*about 2 here.*blend"):
        lmmbook.apy_inverse(G, [0, 1, 2])
    with pytest.raises(NotPositiveDefiniteError, match=r"non-core animal\(s\) 'c', 'd' are fully "
                       r"explained by the core"):
        lmmbook.apy_inverse(G, ["a", "b"], ids=["a", "b", "c", "d"])


@settings(max_examples=30)
@given(problems)
def test_a_singular_G_is_refused_even_when_its_cholesky_factor_does_not_fail(pr):
    """With the genotyped animals' own frequencies G 1 = 0: singular. Rounding lets LAPACK's
    Cholesky finish on about half of such matrices, with a last pivot of rounding size."""
    G = vanraden_G(pr.M)
    with pytest.raises(NotPositiveDefiniteError, match="blend"):
        lmmbook.H_inverse(pr.ped, G, pr.ids, min_correlation=None)
    with pytest.raises(NotPositiveDefiniteError, match=r"G_cc of the APY core .* is singular"):
        lmmbook.apy_inverse(G, np.arange(len(G)))


def test_singular_G_without_blending_is_refused(small):
    pr = small
    G = vanraden_G(pr.M)  # the genotyped animals' own frequencies: G 1 = 0
    assert np.linalg.eigvalsh(G)[0] < 1e-10
    # the message names the matrix inverted: G itself, neither blended nor tuned here
    with pytest.raises(NotPositiveDefiniteError, match=r"G is not positive definite \(smallest "
                       r"eigenvalue 0 up to rounding\).*blend it with A22"):
        lmmbook.H_inverse(pr.ped, G, pr.ids, min_correlation=None)
    with pytest.raises(NotPositiveDefiniteError, match="blend it with A22"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, blend=0.0, tune=None,
                        min_correlation=None)
    lmmbook.H_inverse(pr.ped, G, pr.ids, blend=0.05, min_correlation=None)  # blending mends it


def half_sib_families():
    """Ten sires with six offspring each from unrelated dams, 400 markers dropped through the
    pedigree: G and A22 of sires and offspring agree well; then genotypes attached to the wrong
    animals (a permutation that sends most offspring to another family)."""
    rng = np.random.default_rng(11)
    sires = [f"s{i}" for i in range(10)]
    kids = [f"k{i}_{j}" for i in range(10) for j in range(6)]
    ped = lmmbook.Pedigree(kids, [k.split("_")[0].replace("k", "s") for k in kids],
                           [f"d{k}" for k in kids])
    ids = np.array(sires + kids)
    m = 400
    p = rng.uniform(0.1, 0.9, m)
    hap = {a: rng.random((2, m)) < p for a in ped.ids if a[0] in "sd"}
    for k in kids:
        s = k.split("_")[0].replace("k", "s")
        hap[k] = np.array([hap[s][rng.integers(0, 2, m), np.arange(m)], rng.random(m) < p])
    M = np.array([hap[a].sum(axis=0) for a in ids], dtype=float)
    return ped, ids, M, rng.permutation(len(ids))


def test_genotypes_attached_to_the_wrong_animals_are_refused_with_the_correlation():
    ped, ids, M, swap = half_sib_families()
    A22 = tabular_A(ped.sire + 1, ped.dam + 1)[np.ix_(ped.index(ids), ped.index(ids))]
    off = ~np.eye(len(ids), dtype=bool)
    G = vanraden_G(M)
    right = lmmbook.tune_genomic(G, A22, blend=0.05)  # passes the default check
    assert right.offdiagonal_correlation > 0.6
    wrong = vanraden_G(M[swap])
    r = np.corrcoef(wrong[off], A22[off])[0, 1]
    assert r < singlestep.MIN_CORRELATION
    message = f"correlation of their elements off the diagonal is {r:.3f}, below min_correlation"
    with pytest.raises(InputError, match=message):
        lmmbook.tune_genomic(wrong, A22, blend=0.05)
    with pytest.raises(InputError, match=message):
        lmmbook.H_inverse(ped, wrong, ids, blend=0.05)
    y = pd.Series(np.random.default_rng(2).normal(size=len(ids)), index=ids)
    X = np.ones((len(ped), 1))
    with pytest.raises(InputError, match=message):
        lmmbook.ssgblup(y, X, ped, M[swap], ids, **VARIANCES)
    # with a core, G is formed only in the core's columns: their off-diagonal elements
    c = np.arange(0, len(ids), 2)
    r_c = np.corrcoef(wrong[:, c][off[:, c]], A22[:, c][off[:, c]])[0, 1]
    with pytest.raises(InputError, match=f"off the diagonal is {r_c:.3f}, below"):
        lmmbook.ssgblup(y, X, ped, M[swap], ids, **VARIANCES, core=ids[c])
    lmmbook.tune_genomic(wrong, A22, blend=0.05, min_correlation=None)
    lmmbook.ssgblup(y, X, ped, M[swap], ids, **VARIANCES, min_correlation=None)
    lmmbook.ssgblup(y, X, ped, M, ids, **VARIANCES)


def test_a_core_larger_than_the_rank_of_G_warns(small):
    pr = small
    M = pr.M[:, :5]  # 5 markers: G_cc of 8 core animals has rank 5 at most
    core = pr.ids[:8]
    rank = np.linalg.matrix_rank(vanraden_G(M)[:8, :8])
    assert rank <= 5
    with pytest.warns(LmmbookWarning, match=r"G_cc of the APY core \(8 animals\) is singular "
                      f"before blending: G has only about {rank} independent dimensions"):
        fit = lmmbook.ssgblup(pr.y, pr.X, pr.ped, M, pr.ids, **VARIANCES, core=core,
                              min_correlation=None)
    assert np.all(np.isfinite(fit.u))


def test_reml_is_refused_beyond_its_limit(small, monkeypatch):
    pr = small
    monkeypatch.setattr(singlestep, "REML_MAX_ANIMALS", 10)
    with pytest.raises(InputError, match="limited to 10 animals.*has 25.*Give sigma2_u and "
                       "sigma2_e"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, min_correlation=None)
    lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, min_correlation=None)


def test_other_bad_arguments(small):
    pr = small
    G = genomic(pr, 0.05)
    A22 = pr.A[np.ix_(pr.g, pr.g)]
    with pytest.raises(InputError, match="give both sigma2_u and sigma2_e, or neither"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, sigma2_u=1.0)
    with pytest.raises(InputError, match="method must be 'direct' or 'pcg'"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, method="lu")
    with pytest.raises(InputError, match="give ids=, the genotyped animals"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, **VARIANCES)
    with pytest.raises(InputError, match="give ids=, the genotyped animals"):
        lmmbook.H_inverse(pr.ped, G)
    with pytest.raises(ShapeMismatchError):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids[:-1], **VARIANCES)
    with pytest.raises(ShapeMismatchError):
        lmmbook.H_inverse(pr.ped, G, pr.ids[:-1])
    with pytest.raises(ShapeMismatchError, match="relationships of the same genotyped animals"):
        lmmbook.tune_genomic(G, A22[:-1, :-1])
    with pytest.raises(InputError, match=r"blend must be in \[0, 1\)"):
        lmmbook.tune_genomic(G, A22, blend=1.0)
    with pytest.raises(InputError, match=r"blend must be in \[0, 1\)"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES, blend=-0.1)
    with pytest.raises(InputError, match="tune must be 'mean' or None"):
        lmmbook.tune_genomic(G, A22, tune="median", min_correlation=None)
    with pytest.raises(InputError, match="cannot be tuned to A22"):
        lmmbook.tune_genomic(np.ones_like(A22), A22, min_correlation=None)
    one = pd.Series([1.0, 2.0], index=pr.ped.ids[:2])
    with pytest.raises(InputError, match="more records than fixed effects: 2 and 2"):
        lmmbook.ssgblup(one, pr.X, pr.ped, pr.M, pr.ids, **VARIANCES)


def test_only_the_off_diagonal_correlation_is_checked():
    """A G whose diagonal disagrees with A22's (opposite trends in "inbreeding") but whose
    relationships agree passes, with the diagonal correlation reported; the same relationships
    attached to the wrong animals are refused."""
    ped, ids, M, perm = half_sib_families()
    G = vanraden_G(M)
    A22 = ped.A22(ids)
    G_odd = G.copy()
    G_odd[np.diag_indices_from(G)] = 1.0 + np.linspace(0.2, -0.2, len(G))
    A22_odd = A22.copy()
    A22_odd[np.diag_indices_from(A22)] = 1.0 + np.linspace(-0.2, 0.2, len(G))
    t = lmmbook.tune_genomic(G_odd, A22_odd, blend=0.05)  # not refused
    assert t.diagonal_correlation < -0.99
    assert t.offdiagonal_correlation > 0.6
    with pytest.raises(lmmbook.InputError, match="elements off the diagonal is"):
        lmmbook.tune_genomic(G[np.ix_(perm, perm)], A22, blend=0.05)


def test_compute_pev_switch(small):
    pr = small
    kw = dict(**VARIANCES, min_correlation=None)
    with_pev = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, **kw)
    without = lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, compute_pev=False, **kw)
    assert with_pev.pev is not None and without.pev is None and without.reliability is None
    np.testing.assert_array_equal(without.u, with_pev.u)
    assert "pev" not in without.to_frame().columns
    with pytest.raises(lmmbook.InputError, match="compute_pev=True needs"):
        lmmbook.ssgblup(pr.y, pr.X, pr.ped, pr.M, pr.ids, method="pcg", compute_pev=True, **kw)


def test_records_of_animals_outside_the_pedigree_or_repeated_are_refused_by_name():
    ex = mrode_example_12_1()
    ped = lmmbook.Pedigree.from_frame(ex.pedigree)
    X = np.ones((len(ped), 1))
    kw = dict(sigma2_u=35.241, sigma2_e=245.0)
    y = pd.Series([9.0, 13.4, 12.7], index=[13, 99, 14])
    with pytest.raises(UnknownIdError, match=r"99 of y is not in the pedigree \(26 animals\)"):
        lmmbook.ssgblup(y, X, ped, ex.genotypes, **kw)
    y = pd.Series([9.0, 13.4, 12.7], index=[13, 14, 13])
    with pytest.raises(lmmbook.DuplicateIdError, match=r"13 has more than one record.*H_inverse"):
        lmmbook.ssgblup(y, X, ped, ex.genotypes, **kw)
