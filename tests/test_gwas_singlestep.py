"""GWAS from a single-step fit (lmmbook.gwas on an ssgblup fit; Aguilar et al. 2019).

Checked three ways: against a slow dense reference written from the formulas (H of Legarra et
al. 2009 built block by block, the whole MME inverted, and also the V form of the BLUP, which
needs no MME inverse), against GBLUP when every animal is genotyped and G is used as it is
(ssGBLUP is then GBLUP, and the single-step p-values must be gwas's), on properties over random
pedigrees (invariance to the order of the animals, of the genotype rows and of the pedigree),
and on Mrode & Pocrnic's (2023) Example 12.1, whose printed GEBVs give the marker effects. Every
refusal is triggered.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import single_step_H, tabular_A, tuned_G, vanraden_G
from scipy import stats

import lmmbook
from lmmbook.datasets import mrode_example_12_1
from lmmbook.errors import InputError, ShapeMismatchError, UnknownIdError


def make_problem(seed, n=30, share=0.6, m=None, all_genotyped=False, p_base=False):
    """Animals 1..n (parents first, a fifth of the parents unknown), genotypes dropped from
    founders with frequencies p, records on most animals (some genotyped without a record, some
    recorded without a genotype), X = [1, covariate] in pedigree order."""
    rng = np.random.default_rng(seed)
    sire, dam = np.zeros(n, int), np.zeros(n, int)
    for i in range(3, n):  # odd IDs are males, even IDs females, among the last ten animals
        recent = np.arange(max(1, i - 9), i + 1)
        if rng.random() < 0.8 and (recent % 2 == 1).any():
            sire[i] = rng.choice(recent[recent % 2 == 1])
        if rng.random() < 0.8 and (recent % 2 == 0).any():
            dam[i] = rng.choice(recent[recent % 2 == 0])
    ped = lmmbook.Pedigree(np.arange(1, n + 1), sire, dam)
    m = m or 2 * n + 7
    p = rng.uniform(0.1, 0.9, m)
    haplo = np.empty((n, 2, m), dtype=np.int8)
    for i in range(n):
        for k, parent in enumerate((sire[i], dam[i])):
            haplo[i, k] = (rng.random(m) < p if parent == 0
                           else haplo[parent - 1, rng.integers(0, 2, m), np.arange(m)])
    genotypes = haplo.sum(axis=1).astype(float)
    n_g = n if all_genotyped else max(4, int(share * n))
    g = rng.choice(n, n_g, replace=False)  # genotyped animals, arbitrary order (rows of M)
    rec = rng.random(n) < 0.75
    rec[rng.choice(n, 5, replace=False)] = True
    if n_g < n:
        rec[g[0]] = False  # a genotyped animal without a record
        rec[np.setdiff1d(np.arange(n), g)[0]] = True  # a recorded one without a genotype
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y_all = np.where(rec, X @ [10.0, 0.5] + rng.normal(size=n), np.nan)
    ids = np.arange(1, n + 1)
    M = pd.DataFrame(genotypes[g], index=ids[g], columns=[f"snp{k}" for k in range(m)])
    return dict(ped=ped, A=tabular_A(sire, dam), g=g, M=M, X=X, y_all=y_all,
                X_frame=pd.DataFrame(X, index=ids, columns=["mu", "x"]),
                y=pd.Series(y_all[rec], index=ids[rec]), p=p if p_base else None)


def fit_of(pr, *, blend=0.05, tune="mean", s2u=0.8, s2e=1.3, **kw):
    return lmmbook.ssgblup(pr["y"], pr["X_frame"], pr["ped"], pr["M"], sigma2_u=s2u,
                           sigma2_e=s2e, blend=blend, tune=tune, allele_freq=pr["p"],
                           min_correlation=None, **kw)


def dense_reference(pr, *, blend, tune, s2u, s2e):
    """Effects, SEs from the inverted MME (Aguilar et al. 2019) and SEs from the V form."""
    A, g, M = pr["A"], pr["g"], pr["M"].to_numpy()
    p = M.mean(axis=0) / 2 if pr["p"] is None else pr["p"]
    G = vanraden_G(M, p)
    G_t, _, b = tuned_G(G, A[np.ix_(g, g)], blend, tune == "mean")
    H = single_step_H(A, g, G_t)
    obs = np.isfinite(pr["y_all"])
    X, y, Z = pr["X"][obs], pr["y_all"][obs], np.eye(len(A))[obs]
    C = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + s2e / s2u * np.linalg.inv(H)]])
    C_inv = np.linalg.inv(C)
    u = (C_inv @ np.concatenate([X.T @ y, Z.T @ y]))[2:]
    pev_22 = s2e * C_inv[np.ix_(2 + g, 2 + g)]
    W = M - 2 * p
    k = b * (1 - blend) / (2 * np.sum(p * (1 - p)))
    S = np.linalg.inv(G_t)
    alpha = k * W.T @ S @ u[g]
    var_mme = k**2 * np.diag(W.T @ S @ (s2u * G_t - pev_22) @ S @ W)
    V = s2u * Z @ H @ Z.T + s2e * np.eye(len(y))
    V_inv = np.linalg.inv(V)
    P = V_inv - V_inv @ X @ np.linalg.inv(X.T @ V_inv @ X) @ X.T @ V_inv
    u_v = s2u * H[:, obs] @ P @ y  # the BLUP in its V form
    L = k * s2u * W.T @ S @ H[np.ix_(g, obs)]  # alpha_hat = L P y
    var_v = np.diag(L @ P @ L.T)  # P V P = P
    # Var(alpha_hat_k) = 0 exactly when v_k = H_o2 G_t^-1 w_k (the marker as the recorded
    # animals carry it, imputed through A12 A22^-1 for the ungenotyped) lies in the span of X_o:
    # P's null space. Constant markers (w_k = 0) are among them.
    v = H[np.ix_(obs, g)] @ S @ W
    resid = v - X @ np.linalg.lstsq(X, v, rcond=None)[0]
    informative = np.linalg.norm(resid, axis=0) > 1e-8 * np.linalg.norm(v, axis=0)
    with np.errstate(invalid="ignore"):
        return alpha, np.sqrt(var_mme), np.sqrt(var_v), u, u_v, informative


# ---- against the dense reference ----------------------------------------------------------------

@settings(max_examples=12)
@given(st.integers(0, 2**32 - 1), st.integers(10, 30), st.floats(0.3, 1.0),
       st.sampled_from([0.05, 0.3]), st.sampled_from(["mean", None]), st.booleans())
def test_against_the_dense_formula(seed, n, share, blend, tune, p_base):
    pr = make_problem(seed, n=n, share=share, p_base=p_base)
    s2u, s2e = 0.8, 1.3
    fit = fit_of(pr, blend=blend, tune=tune, s2u=s2u, s2e=s2e)
    res = lmmbook.gwas(fit, pr["M"])
    alpha, se_mme, se_v, u, u_v, poly = dense_reference(pr, blend=blend, tune=tune, s2u=s2u,
                                                        s2e=s2e)
    # the reference's two routes agree: Var(u_hat) = Var(u) - PEV, and the BLUP is one
    np.testing.assert_allclose(u, u_v, rtol=0, atol=1e-9 * np.abs(u).max())
    np.testing.assert_allclose(se_mme[poly], se_v[poly], rtol=1e-9)
    assert res.columns.tolist() == ["effect", "se", "z", "p"]
    assert res.index.name == "snp" and res.index.tolist() == pr["M"].columns.tolist()
    assert res[~poly].isna().all().all() and res[poly].notna().all().all()
    # dense inverses of H and C against sparse solves; condition numbers of C up to ~1e4
    np.testing.assert_allclose(res["effect"][poly], alpha[poly], rtol=1e-9,
                               atol=1e-11 * np.abs(alpha).max())
    np.testing.assert_allclose(res["se"][poly], se_mme[poly], rtol=1e-9)
    z = alpha[poly] / se_mme[poly]
    np.testing.assert_allclose(res["z"][poly], z, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res["p"][poly], 2 * stats.norm.sf(np.abs(z)), rtol=1e-8)


def test_pcg_fit_gives_the_direct_result():
    pr = make_problem(3, n=40)
    direct = lmmbook.gwas(fit_of(pr), pr["M"])
    pcg = lmmbook.gwas(fit_of(pr, method="pcg", tol=1e-10), pr["M"])
    # the MME are rebuilt and solved directly: the PCG fit only has to solve them (checked)
    np.testing.assert_allclose(pcg.to_numpy(), direct.to_numpy(), rtol=1e-12, atol=1e-14)


# ---- all animals genotyped, G as it is: ssGBLUP is GBLUP --------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equals_gblup_when_everyone_is_genotyped(seed):
    """With every animal genotyped, A22 = A and H^-1 = A^-1 + G^-1 - A^-1 = G^-1: ssGBLUP with G
    untuned and unblended is GBLUP with G. Base frequencies (not the sample's) and more markers
    than animals make G invertible. Effects, SEs, z and log p then agree with gwas on the GBLUP
    fit to about 1e-12 relative (seeds 1-10, cond(G) 70-210), not to the last bit: the GBLUP
    route works with an eigendecomposition of G and P, the single-step route with G^-1,
    A^-1 - A22^-1 (cancelling to round-off) and a factorisation of the MME."""
    pr = make_problem(seed, n=25, m=80, all_genotyped=True, p_base=True)
    s2u, s2e = 0.8, 1.3
    ss = lmmbook.gwas(fit_of(pr, blend=0.0, tune=None, s2u=s2u, s2e=s2e), pr["M"])
    M = pr["M"]
    G = lmmbook.genomic_relationship(M, allele_freq=pr["p"])  # rows in M's order
    y = pd.Series(pr["y_all"], index=np.arange(1, 26)).reindex(M.index).to_numpy()
    X = pr["X_frame"].reindex(M.index).to_numpy()
    gb = lmmbook.gwas(lmmbook.gblup(y, X, G, sigma2_u=s2u, sigma2_e=s2e), M,
                      allele_freq=pr["p"])
    # NaN in both for the markers constant over the recorded animals (w_k in the span of X_o)
    constant = np.ptp(M.to_numpy()[np.isfinite(y)], axis=0) == 0
    np.testing.assert_array_equal(ss.isna().to_numpy(), np.repeat(constant[:, None], 4, 1))
    np.testing.assert_array_equal(gb.isna().to_numpy(), ss.isna().to_numpy())
    np.testing.assert_allclose(ss["effect"], gb["effect"], rtol=1e-10)
    np.testing.assert_allclose(ss["se"], gb["se"], rtol=1e-10)
    np.testing.assert_allclose(ss["z"], gb["z"], rtol=1e-10)
    np.testing.assert_allclose(np.log(ss["p"]), np.log(gb["p"]), rtol=1e-10)


# ---- properties -------------------------------------------------------------------------------

@settings(max_examples=8)
@given(st.integers(0, 2**32 - 1))
def test_invariant_to_the_order_of_animals(seed):
    pr = make_problem(seed, n=24)
    base = lmmbook.gwas(fit_of(pr), pr["M"])
    rng = np.random.default_rng(seed)
    # genotype rows in another order, at the fit and at the test (joined by ID)
    shuffled = pr["M"].iloc[rng.permutation(len(pr["M"]))]
    other = lmmbook.gwas(fit_of(dict(pr, M=shuffled)), pr["M"])
    again = lmmbook.gwas(fit_of(pr), shuffled)
    # the pedigree listed in another order (ssgblup orders parents first itself)
    ped = pr["ped"]
    perm = rng.permutation(len(ped.ids))
    sire = np.where(ped.sire >= 0, ped.ids[ped.sire], 0)
    dam = np.where(ped.dam >= 0, ped.ids[ped.dam], 0)
    ped2 = lmmbook.Pedigree(ped.ids[perm], sire[perm], dam[perm])
    moved = lmmbook.gwas(fit_of(dict(pr, ped=ped2)), pr["M"])  # X and y are joined by ID
    # the same numbers summed in other orders: 4e-12 relative at most over seeds 0-7
    for res in (other, again, moved):
        np.testing.assert_allclose(res.to_numpy(), base.to_numpy(), rtol=1e-10)


def test_constant_markers_are_nan_and_the_variances_scale_z():
    pr = make_problem(5, n=30)
    M = pr["M"].copy()
    M["snp3"] = 2.0
    M["snp7"] = 0.0
    pr = dict(pr, M=M)
    res = lmmbook.gwas(fit_of(pr), M)
    assert res.loc[["snp3", "snp7"]].isna().all().all()
    constant = np.ptp(M.to_numpy(), axis=0) == 0  # these two, and any marker the same in all
    assert constant.sum() >= 2
    np.testing.assert_array_equal(res.isna().to_numpy(), np.repeat(constant[:, None], 4, 1))
    # both variances ten times larger (lambda unchanged): the same BLUP, so the same effects,
    # but Var(alpha_hat) = k^2 W'G_t^-1 (sigma2_u G_t - PEV_22) G_t^-1 W is ten times larger
    scaled = lmmbook.gwas(fit_of(pr, s2u=8.0, s2e=13.0), M)
    np.testing.assert_allclose(scaled["effect"], res["effect"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(scaled["z"], res["z"] / np.sqrt(10), rtol=1e-9, equal_nan=True)


def test_windows_share_the_marker_part():
    pr = make_problem(6, n=30)
    fit = fit_of(pr)
    res = lmmbook.gwas(fit, pr["M"], window=10)
    snps = lmmbook.gwas(fit, pr["M"])
    pd.testing.assert_frame_equal(res.snps, snps)
    assert res.windows["n_snps"].sum() == pr["M"].shape[1]
    assert res.windows["share"].sum() == pytest.approx(1.0, abs=1e-10)


# ---- a published example: Mrode & Pocrnic (2023), Example 12.1 --------------------------------

def test_mrode_example_12_1_marker_effects_from_the_printed_gebvs():
    """Mrode & Pocrnic print the ssGBLUP GEBVs of Example 12.1 (3 decimals; no marker effect
    from it is printed). Our effects must be those the formula gives from the printed GEBVs
    of the genotyped bulls, to within what the rounding of the GEBVs (0.0005) allows. SNPs 7
    and 8 are the same in the eight recorded bulls (13-20; only bulls 21 and 26 differ): every
    record is of a genotyped bull, so alpha_hat_k = k sigma2_u w_k,o' P y_o, which is 0 for a
    w_k constant over the records (P 1 = 0), with sampling variance 0: NaN."""
    ex = mrode_example_12_1()
    ped = lmmbook.Pedigree.from_frame(ex.pedigree)
    ref = ex.records.set_index("bull")
    y = ref.loc[ref["role"] == "reference", "dyd"]
    fit = lmmbook.ssgblup(y, np.ones((26, 1)), ped, ex.genotypes,
                          sigma2_u=ex.variances["sigma2_a"], sigma2_e=ex.variances["sigma2_e"],
                          blend=0.05, tune="mean", min_correlation=None)
    res = lmmbook.gwas(fit, ex.genotypes)
    printed = np.array([0.048, 0.082, 0.039, 0.202, -0.356, -0.254, 0.098, -0.169, 0.018,
                        0.079, -0.164, 0.101, 0.039, 0.245])  # bulls 13..26
    M = ex.genotypes.to_numpy(dtype=float)
    p = M.mean(axis=0) / 2
    A = tabular_A(ex.pedigree["sire"].to_numpy(), ex.pedigree["dam"].to_numpy())
    g = ex.genotypes.index.to_numpy() - 1
    G_t, _, b = tuned_G(vanraden_G(M), A[np.ix_(g, g)], 0.05, True)
    K = b * 0.95 / (2 * np.sum(p * (1 - p))) * (M - 2 * p).T @ np.linalg.inv(G_t)
    from_printed = K @ printed
    bound = 0.0005 * np.abs(K).sum(axis=1)  # |K (u - u_printed)| <= |K| 0.0005
    informative = np.ptp(M[:8], axis=0) > 0  # varies among the recorded bulls
    assert informative.tolist() == [True] * 6 + [False] * 2 + [True] * 2
    effect = res["effect"].to_numpy()
    assert np.all(np.abs(effect[informative] - from_printed[informative])
                  <= bound[informative])
    assert np.all(np.abs(from_printed[~informative]) <= bound[~informative])  # 0 in truth
    assert res[~informative].isna().all().all() and res[informative].notna().all().all()
    assert np.all((res["p"][informative] > 0) & (res["p"][informative] <= 1))


# ---- refusals -----------------------------------------------------------------------------------

def test_refusals():
    pr = make_problem(7, n=24)
    fit = fit_of(pr)
    M = pr["M"]
    with pytest.raises(InputError, match="single_marker' is not available for a single-step"):
        lmmbook.gwas(fit, M, method="single_marker")
    with pytest.raises(InputError, match="method must be"):
        lmmbook.gwas(fit, M, method="emmax")
    with pytest.raises(ShapeMismatchError, match="M has no row for"):
        lmmbook.gwas(fit, M.iloc[1:])
    extra = pd.concat([M, M.iloc[[0]].set_axis([999])])
    with pytest.raises(UnknownIdError, match="999"):
        lmmbook.gwas(fit, extra)
    with pytest.raises(ShapeMismatchError, match="rows but the fit has"):
        lmmbook.gwas(fit, M.to_numpy()[1:])
    with pytest.raises(ShapeMismatchError, match="markers but the fit's G"):
        lmmbook.gwas(fit, M.iloc[:, 1:])
    # an array in the order given to ssgblup is fine; rows swapped without IDs are caught
    np.testing.assert_array_equal(lmmbook.gwas(fit, M.to_numpy()).to_numpy(),
                                  lmmbook.gwas(fit, M).to_numpy())
    swapped = M.to_numpy()[np.r_[1, 0, 2:len(M)]]
    with pytest.raises(InputError, match="does not solve the mixed-model equations"):
        lmmbook.gwas(fit, swapped)
    changed = M.copy()
    changed.iloc[0, 0] = 2.0 - changed.iloc[0, 0] if changed.iloc[0, 0] != 1 else 0.0
    with pytest.raises(InputError, match="does not solve the mixed-model equations"):
        lmmbook.gwas(fit, changed)
    with pytest.raises(InputError, match="does not solve the mixed-model equations"):
        lmmbook.gwas(fit, M, allele_freq=np.full(M.shape[1], 0.5))  # G built otherwise
    with pytest.raises(InputError, match="APY"):
        lmmbook.gwas(fit_of(pr, core=M.index[:6]), M)
    with pytest.raises(InputError, match="omega = 0.8"):
        lmmbook.gwas(fit_of(pr, omega=0.8), M)
    with pytest.raises(InputError, match="tau = 1.1"):
        lmmbook.gwas(fit_of(pr, tau=1.1), M)
    with pytest.raises(InputError, match="window must"):
        lmmbook.gwas(fit, M, window=0)


def test_refuses_a_pedigree_too_large_for_the_mme_inverse(monkeypatch):
    pr = make_problem(8, n=24)
    fit = fit_of(pr)
    monkeypatch.setattr(lmmbook.mme, "PEV_AUTO_MAX_LEVELS", 20)
    with pytest.raises(InputError, match="affordable up to lmmbook.mme.PEV_AUTO_MAX_LEVELS = 20"):
        lmmbook.gwas(fit, pr["M"])


def test_genotype_data_with_a_map_gives_chromosomes_and_bp_windows():
    """A reader's result (string IDs, a marker map): joined by its IDs, the frame gains
    chromosome and position, and windows by length are cut at the chromosomes."""
    pr = make_problem(9, n=24)
    ped = pr["ped"]
    as_str = np.vectorize(str)
    sire = np.where(ped.sire >= 0, ped.ids[ped.sire], 0)
    dam = np.where(ped.dam >= 0, ped.ids[ped.dam], 0)
    ped_s = lmmbook.Pedigree(as_str(ped.ids), as_str(sire), as_str(dam))
    M = pr["M"]
    m = M.shape[1]
    chrom = np.where(np.arange(m) < m // 2, "1", "2")
    position = np.r_[np.arange(m // 2), np.arange(m - m // 2)] * 100_000 + 1
    snps = pd.DataFrame({"chromosome": chrom, "name": M.columns, "cM": 0.0,
                         "position": position, "A1": "A", "A2": "G"})
    order = np.random.default_rng(9).permutation(len(M))  # rows in another order than the fit's
    data = lmmbook.GenotypeData(M=M.to_numpy()[order], ids=as_str(M.index.to_numpy()[order]),
                                snps=snps)
    fit_s = lmmbook.ssgblup(pr["y"].set_axis(as_str(pr["y"].index)),
                            pr["X_frame"].set_axis(as_str(pr["X_frame"].index)), ped_s,
                            M.set_axis(as_str(M.index)), sigma2_u=0.8, sigma2_e=1.3,
                            min_correlation=None)
    res = lmmbook.gwas(fit_s, data)
    assert res.columns.tolist() == ["chromosome", "position", "effect", "se", "z", "p"]
    base = lmmbook.gwas(fit_of(pr), M)
    np.testing.assert_allclose(res[["effect", "se", "z", "p"]].to_numpy(), base.to_numpy(),
                               rtol=1e-10)
    win = lmmbook.gwas(fit_s, data, window="1Mb").windows
    assert win.groupby("chromosome")["n_snps"].sum().tolist() == [m // 2, m - m // 2]
    assert (win.groupby("chromosome").size() == [int(np.ceil((m // 2) / 10)),
                                                 int(np.ceil((m - m // 2) / 10))]).all()
    assert win["share"].sum() == pytest.approx(1.0, abs=1e-10)
