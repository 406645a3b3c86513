"""Genome-wide association from a single-step fit: marker effects back-solved from the GEBVs of
the genotyped animals, with their sampling variances from the PEV covariances of those animals
(Aguilar et al. 2019). Called by :func:`lmmbook.gwas` for an :class:`lmmbook.SSGBLUPResult`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _marker_loops, mme
from .errors import InputError, ShapeMismatchError, UnknownIdError, format_ids
from .gwas import _CHUNK, GWASResult, _assign_windows, _snp_frame, _window_frame, _window_size
from .markers import Genotypes, _frequencies, as_genotypes, marker_scaling
from .singlestep import SSGBLUPResult, _genomic_parts, _spd_inverse

__all__ = ["ssgwas"]

#: Relative residual of the fit's solution in the rebuilt MME above which the genotypes (or the
#: frequencies) are taken not to be those of the fit; a direct fit's residual is at round-off
#: (about 1e-14), a PCG fit's at most a few times its last recorded residual.
_REPRODUCED = 1e-8


def ssgwas(fit: SSGBLUPResult, M: Any, *, method: str = "backsolve", window: Any = None,
           allele_freq: Any = None) -> pd.DataFrame | GWASResult:
    """The test of every marker after ssGBLUP; see :func:`lmmbook.gwas` (its Notes, "From a
    single-step fit"). Returns the frame (or the GWASResult with ``window``) that gwas returns
    for a GBLUP fit."""
    if method not in ("backsolve", "single_marker"):
        raise InputError(f"method must be 'backsolve' or 'single_marker', got {method!r}.")
    if method == "single_marker":
        raise InputError(
            "method='single_marker' is not available for a single-step fit: the ungenotyped "
            "animals have no genotype to test. Use the default method='backsolve' (Aguilar et "
            "al. 2019), or fit lmmbook.gblup on the genotyped animals for the single-marker test.")
    size = None if window is None else _window_size(window)
    _check_fit(fit)
    geno = _rows_of_fit(as_genotypes(M), fit)
    m = geno.M.shape[1]
    if allele_freq is not None:
        p = _frequencies(allele_freq, m)
    elif fit.allele_freq is not None and len(fit.allele_freq) == m:
        p = np.asarray(fit.allele_freq)
    else:
        raise ShapeMismatchError(
            f"M has {m} markers but the fit's G was built from {len(fit.allele_freq)}; pass the "
            "genotypes the fit was computed from.")
    snp_map = getattr(M, "snps", None)
    if not (isinstance(snp_map, pd.DataFrame) and len(snp_map) == m):
        snp_map = None
    if size is not None:  # the map is checked before any computation
        window_of = _assign_windows(snp_map, size, m)

    g_ids = np.asarray(fit.genotype_ids)
    pedigree = fit.pedigree
    tune = None if tuple(fit.tuning) == (0.0, 1.0) else "mean"
    parts = _genomic_parts(pedigree, geno, g_ids, blend=fit.blend, tune=tune, core=None,
                           allele_freq=p, min_correlation=None)
    g_rows = pedigree.index(g_ids)
    u_2, pev_22 = _genotyped_pev(fit, parts, g_rows)

    poly, _, c = marker_scaling(p, "vanraden1")  # raises when no marker is polymorphic
    two_p, ones = 2.0 * p[poly], np.ones(len(poly))
    k = parts.b * (1.0 - fit.blend) / c  # Cov(alpha, u_2) = sigma2_u k W'
    G_t_inv = parts.G_t_inv
    t = G_t_inv @ u_2
    s2u = fit.sigma2_u
    alpha_poly, prior, var = np.empty(len(poly)), np.empty(len(poly)), np.empty(len(poly))
    u_marker = np.zeros(len(g_ids))  # W alpha_hat, the marker part of u_2 (for the windows)
    for start in range(0, len(poly), _CHUNK):  # W formed a block of markers at a time
        block = slice(start, start + _CHUNK)
        W = _marker_loops.centred_columns(geno.M, poly[block], two_p[block], ones[block])
        alpha_poly[block] = k * (W.T @ t)
        u_marker += W @ alpha_poly[block]
        # Var(alpha_hat) = k^2 W' G_t^-1 (sigma2_u G_t - PEV_22) G_t^-1 W, its diagonal
        B = G_t_inv @ W  # G_t^-1 w_k
        prior[block] = s2u * np.einsum("ij,ij->j", W, B)
        var[block] = prior[block] - np.einsum("ij,ij->j", B, pev_22 @ B)
    # var is 0 for a marker whose part of the GEBVs the records cannot inform (constant on the
    # recorded genotyped animals, with an intercept and no ungenotyped relative); round-off
    # leaves it at a few eps times the prior term it cancels against
    ok = var > len(g_ids) * np.finfo(float).eps * prior
    se_poly = np.where(ok, k * np.sqrt(np.where(ok, var, 1.0)), np.nan)
    effect_poly = np.where(ok, alpha_poly, np.nan)
    z_poly = effect_poly / se_poly
    frame, names = _snp_frame(m, poly, effect_poly, se_poly, z_poly, geno, snp_map)
    if size is None:
        return frame
    alpha = np.zeros(m)
    alpha[poly] = alpha_poly
    return GWASResult(snps=frame, windows=_window_frame(geno.M, poly, two_p, alpha, u_marker,
                                                       window_of, snp_map, np.asarray(names)))


def _check_fit(fit: SSGBLUPResult) -> None:
    """Refuse the fits whose marker effects the back-solve does not give exactly, and those
    whose PEV covariances would cost too much."""
    if fit.pedigree is None or fit.X is None or fit.y is None or fit.genotype_ids is None:
        raise InputError(
            "this SSGBLUPResult does not carry its pedigree, X, y and genotyped IDs (it was not "
            "made by lmmbook.ssgblup of this version); refit it with lmmbook.ssgblup.")
    if fit.core is not None:
        raise InputError(
            f"the fit used an APY inverse (a core of {len(fit.core)} animals): G_APY is not "
            "W W' / c of the genotypes outside the core, so back-solving from it is not exact, "
            "and the PEV covariances it needs are affordable only where APY is not needed. Refit "
            "with lmmbook.ssgblup(..., core=None).")
    if fit.tau != 1.0 or fit.omega != 1.0:
        raise InputError(
            f"the fit used tau = {fit.tau:g} and omega = {fit.omega:g}: then the genotyped "
            "animals' prior precision is tau G_t^-1 + (1 - omega) A22^-1, which is not the "
            "variance of a marker model, and the back-solved effects have no exact variance. "
            "Refit with tau=1 and omega=1 for the test.")
    n = len(fit.ids)
    if n > mme.PEV_AUTO_MAX_LEVELS:
        raise InputError(
            f"the test needs the PEV covariances of the genotyped animals, from the inverse of "
            f"the mixed-model equations of all {n} animals of the pedigree, which is affordable "
            f"up to lmmbook.mme.PEV_AUTO_MAX_LEVELS = {mme.PEV_AUTO_MAX_LEVELS} animals. Prune "
            "the pedigree to the genotyped animals, the recorded ones and a few generations of "
            "their ancestors and refit, or test the markers in a GBLUP of the genotyped animals "
            "(lmmbook.gblup, then lmmbook.gwas on that fit).")


def _rows_of_fit(geno: Genotypes, fit: SSGBLUPResult) -> Genotypes:
    """The genotypes with their rows in the order of ``fit.genotype_ids``: joined by ID when M
    has IDs, else taken to be in the order of the M given to ssgblup."""
    g_ids = pd.Index(np.asarray(fit.genotype_ids))
    n_g = len(g_ids)
    if geno.ids is None:
        if geno.M.shape[0] != n_g:
            raise ShapeMismatchError(
                f"M has {geno.M.shape[0]} rows but the fit has {n_g} genotyped animals; pass "
                "the genotypes of the fit, rows in the order given to ssgblup (or a DataFrame "
                "indexed by animal ID).")
        return geno
    ids = pd.Index(np.asarray(geno.ids))
    unknown = ids.difference(g_ids, sort=False)
    if len(unknown):
        raise UnknownIdError(
            f"M has rows for {format_ids(unknown)}, not genotyped in the fit; pass the "
            "genotypes of the fit's genotyped animals.")
    missing = g_ids.difference(ids, sort=False)
    if len(missing):
        raise ShapeMismatchError(
            f"M has no row for {format_ids(missing)}, genotyped in the fit; pass the genotypes "
            "of all the fit's genotyped animals.")
    order = ids.get_indexer(g_ids)
    if np.array_equal(order, np.arange(n_g)):
        return geno
    return Genotypes(M=geno.M[order], ids=np.asarray(geno.ids)[order],
                     snp_names=geno.snp_names, col_sum=geno.col_sum, col_calls=geno.col_calls)


def _genotyped_pev(fit: SSGBLUPResult, parts, g_rows: np.ndarray):
    """u_2 and PEV_22 = sigma2_e (C^-1)_22, the prediction error covariances of the genotyped
    animals, from the MME rebuilt from the fit (its solution must solve them).

    With the equations split into r (the fixed effects and the ungenotyped animals: sparse) and
    the genotyped animals 2 (a dense block, lambda (G_t^-1 - A22^-1) added), (C^-1)_22 is the
    inverse of the Schur complement S = C_22 - C_2r C_rr^-1 C_r2: one sparse factorisation of
    C_rr, n_g sparse solves, and a dense Cholesky inverse of S, instead of n_g solves with the
    factors of the whole C, whose dense block fills them."""
    n = len(fit.ids)
    y_all, X_all = np.asarray(fit.y), np.asarray(fit.X)
    observed = np.isfinite(y_all)
    X_o, y_o = X_all[observed], y_all[observed]
    n_g = len(g_rows)
    lam = fit.sigma2_e / fit.sigma2_u
    genotyped = np.zeros(n, dtype=bool)
    genotyped[g_rows] = True
    r_rows = np.flatnonzero(~genotyped)
    # u-equations: Z'Z + lambda A^-1 (one record per animal: Z'Z = diag(recorded)), Z'X
    K = sp.csr_array(sp.diags_array(observed.astype(float)) + lam * fit.pedigree.A_inverse())
    ZtX = np.where(observed[:, None], X_all, 0.0)
    rhs_u = np.where(observed, np.nan_to_num(y_all), 0.0)
    K_r = K[r_rows]
    C_rr = sp.csc_array(sp.block_array([[sp.csr_array(X_o.T @ X_o), sp.csr_array(ZtX[r_rows].T)],
                                        [sp.csr_array(ZtX[r_rows]), K_r[:, r_rows]]]))
    C_r2 = sp.csr_array(sp.vstack([sp.csr_array(ZtX[g_rows].T), K_r[:, g_rows]]))
    C_22 = K[g_rows][:, g_rows].toarray() + lam * parts.dense_block(1.0, 1.0)
    r_r = np.concatenate([X_o.T @ y_o, rhs_u[r_rows]])
    r_2 = rhs_u[g_rows]
    s_r = np.concatenate([fit.b, np.asarray(fit.u)[r_rows]])
    u_2 = np.asarray(fit.u)[g_rows]
    gap = np.concatenate([C_rr @ s_r + C_r2 @ u_2 - r_r, C_r2.T @ s_r + C_22 @ u_2 - r_2])
    residual = np.linalg.norm(gap) / max(np.linalg.norm(np.r_[r_r, r_2]), 1e-300)
    allowed = _REPRODUCED
    if fit.residuals is not None and len(fit.residuals):
        allowed = max(allowed, 10.0 * float(fit.residuals[-1]))
    if residual > allowed:
        raise InputError(
            f"the fit's solution does not solve the mixed-model equations rebuilt from these "
            f"genotypes (relative residual {residual:.2g}): M, its allele frequencies or its "
            "animals are not those the fit was computed from. Pass the genotypes given to "
            "ssgblup (and its allele_freq, if one was given).")
    solver = mme._SparseSolver(C_rr)
    S = C_22
    for first in range(0, n_g, mme._SOLVE_BLOCK):
        block = slice(first, min(first + mme._SOLVE_BLOCK, n_g))
        S[:, block] -= C_r2.T @ solver.solve(C_r2[:, block].toarray())
    S_inv = _spd_inverse(0.5 * (S + S.T), "The Schur complement of the genotyped animals in "
                         "the mixed-model equations", "Check that every fixed effect is "
                         "estimable.")
    u_2 = S_inv @ (r_2 - C_r2.T @ solver.solve(r_r))
    return u_2, fit.sigma2_e * S_inv
