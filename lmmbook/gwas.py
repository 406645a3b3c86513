"""Genome-wide association from a GBLUP fit: back-solved marker effects with their standard errors,
and the single-marker mixed-model test with the variances of the null fit."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from . import _spectral
from .errors import InputError, ShapeMismatchError
from .genomic import GBLUPResult
from .markers import _frequencies, as_genotypes, centred_polymorphic, cross_product
from .snpblup import backsolve_snp_effects

__all__ = ["gwas"]

_CHUNK = 2048  # markers per block of W_o'U: memory O(n * chunk) beyond the n x n eigenvectors


def gwas(
    fit: GBLUPResult,
    M: Any,
    *,
    method: Literal["backsolve", "single_marker"] = "backsolve",
    allele_freq: Any = None,
) -> pd.DataFrame:
    """A test of every marker after a GBLUP fit with G = W W' / c (VanRaden 1).

    Parameters
    ----------
    fit : GBLUPResult
        A :func:`lmmbook.gblup` fit whose G is ``genomic_relationship(M, allele_freq=...)``.
    M : (q, m) array_like, pandas.DataFrame or GenotypeData
        The genotypes G was built from (0/1/2, NaN for a missing call), rows in the order of G.
        A DataFrame's columns name the markers; a reader's result (:func:`lmmbook.read_plink`)
        also gives their chromosome and position.
    method : {"backsolve", "single_marker"}, optional
        "backsolve": the back-solved effects alpha_hat and their sampling standard errors
        (Gualdron Duarte et al. 2014). "single_marker": each marker as a fixed effect, the GLS of
        y on [X, w_k] with V at the variances of the fit (EMMAX with both variances held, P3D;
        Kang et al. 2010).
    allele_freq : (m,) array_like, optional
        The frequencies G was built with (by default those of M).

    Returns
    -------
    pandas.DataFrame
        One row per marker, indexed by marker name (``snp``): ``chromosome`` and ``position``
        when M carries a marker map, then ``effect``, ``se``, ``z`` = effect / se and the
        two-sided normal ``p``. NaN for markers monomorphic under the frequencies and for markers
        that X explains completely (w_k'P w_k = 0).

    Raises
    ------
    ShapeMismatchError
        M has another number of rows than the fit.
    InputError
        ``method`` is not one of the two; ``fit`` is not a GBLUP fit; the fit's G is not
        W W' / c of these genotypes and frequencies (its GEBVs are not reproduced by the
        back-solved effects, as in :func:`lmmbook.backsolve_snp_effects`).

    Notes
    -----
    With V = sigma2_u G_oo + sigma2_e I over the phenotyped rows o and the REML projection matrix
    P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1, the back-solved effects (chapter 6, eq-backsolve) are
    alpha_hat = (sigma2_u / c) W_o' P y_o, a linear function of y_o with sampling variance

        Var(alpha_hat) = (sigma2_u / c)^2 W_o' P V P W_o = (sigma2_u / c)^2 W_o' P W_o,

    since P V P = P (Gualdron Duarte et al. 2014). Only the diagonal is computed, for every
    marker at once, from the eigendecomposition G_oo = U diag(lambda) U': in the rotated basis
    V = diag(sigma2_u lambda + sigma2_e), and diag(W_o'P W_o) is a sum over the n_o directions
    (the spectral core's PEV quadratic, which also holds at sigma2_e = 0), so no n x n inverse
    is formed.

    For the single-marker test with V fixed, the GLS coefficient of w_k in y = X b + w_k a + e
    is, by the Frisch-Waugh-Lovell theorem in the metric V^-1, a_hat = w_k'P y / w_k'P w_k with
    variance 1 / w_k'P w_k. Both methods therefore give the same statistic,
    z_k = w_k'P y / sqrt(w_k'P w_k), and the same p-value: the back-solved effect is the
    single-marker effect shrunk by (sigma2_u / c) w_k'P w_k, and so is its standard error. They
    differ from EMMAX proper, which re-estimates the residual scale for each marker (an F test),
    by that re-estimation only. The marker tested is part of G in both (no leaving out of its
    chromosome).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> pop = lmmbook.simulate_population(2, 60, 5, n_snp=300, n_qtl=5, seed=1)
    >>> M = pop.genotype_frame()
    >>> fit = lmmbook.gblup(pop.phenotypes["y"], np.ones((180, 1)),
    ...                     lmmbook.genomic_relationship(M), ids=pop.ids)
    >>> bs = lmmbook.gwas(fit, M)
    >>> sm = lmmbook.gwas(fit, M, method="single_marker")
    >>> bs.columns.tolist()
    ['effect', 'se', 'z', 'p']
    >>> bool(np.allclose(bs["z"], sm["z"], equal_nan=True))
    True
    """
    if method not in ("backsolve", "single_marker"):
        raise InputError(f"method must be 'backsolve' or 'single_marker', got {method!r}.")
    if not isinstance(fit, GBLUPResult):
        raise InputError(f"fit must be the result of lmmbook.gblup, got {type(fit).__name__}.")
    if fit.traits is not None:
        raise InputError(
            f"fit is a GBLUP of {len(fit.traits)} traits ({', '.join(fit.traits)}); these tests "
            "are for one trait: fit each trait alone (lmmbook.gblup with one column of y).")
    geno = as_genotypes(M)
    q, m = geno.M.shape
    if q != len(fit.u):
        raise ShapeMismatchError(
            f"M has {q} rows but the GBLUP fit has {len(fit.u)}; pass the genotypes of the rows "
            "of G, in the same order.")
    p = geno.allele_freq if allele_freq is None else _frequencies(allele_freq, m)
    # refuses a fit whose G was not W W'/c of these genotypes and frequencies
    backsolve_snp_effects(fit, geno, allele_freq=p)
    W, poly, c = centred_polymorphic(geno, p)
    observed = np.isfinite(fit.v_inv_residual)
    W_o, X_o = W[observed], np.asarray(fit.X)[observed]
    s2u, s2e = fit.sigma2_u, fit.sigma2_e
    # the rotation of the fit (G_oo rebuilt from the markers); P does not involve y
    rot = _spectral.rotate_eigh(np.zeros(len(X_o)), X_o, cross_product(W_o, 1.0 / c), clip=False)
    wPy = W_o.T @ fit.v_inv_residual[observed]
    v = s2u * rot.lam + s2e  # V in the rotated basis
    v_inv = np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0)
    wPw, wVw = np.empty(len(poly)), np.empty(len(poly))
    for start in range(0, len(poly), _CHUNK):
        block = slice(start, start + _CHUNK)
        B = W_o[:, block].T @ rot.U
        wPw[block] = _spectral.p_quadratic(rot, s2u, s2e, B)
        wVw[block] = (B**2) @ v_inv
    # w'Pw is 0 for a marker that X explains on the phenotyped rows (constant there, with an
    # intercept); round-off leaves it at a few eps times w'V^-1 w, the term it cancels against
    ok = wPw > len(X_o) * np.finfo(float).eps * wVw
    root = np.where(ok, np.sqrt(np.where(ok, wPw, 1.0)), np.nan)
    if method == "backsolve":
        effect = np.where(ok, (s2u / c) * wPy, np.nan)
        se = (s2u / c) * root
    else:
        effect = wPy / np.where(ok, wPw, np.nan)
        se = 1.0 / root
    z_poly = wPy / root  # = effect / se in both methods, also when sigma2_u = 0
    out = np.full((m, 4), np.nan)
    out[poly, 0], out[poly, 1], out[poly, 2] = effect, se, z_poly
    out[poly, 3] = 2.0 * stats.norm.sf(np.abs(z_poly))
    names = geno.snp_names if geno.snp_names is not None else np.arange(m)
    frame = pd.DataFrame(out, columns=["effect", "se", "z", "p"],
                         index=pd.Index(np.asarray(names), name="snp"))
    snps = getattr(M, "snps", None)
    if isinstance(snps, pd.DataFrame) and len(snps) == m:
        for column in ("position", "chromosome"):
            if column in snps.columns:
                frame.insert(0, column, snps[column].to_numpy())
    return frame
