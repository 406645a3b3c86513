"""SNP-BLUP: the genomic model parameterised by marker effects, and back-solving (chapter 6)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from . import _checks, _spectral, chunked
from ._marker_loops import centred_columns
from .errors import InputError
from .markers import (
    _frequencies,
    _weights,
    as_genotypes,
    centred_polymorphic,
    cross_product,
    marker_scaling,
)

if TYPE_CHECKING:  # genomic and snpblup are siblings: no import between them at run time
    from .genomic import GBLUPResult

__all__ = ["SNPBLUPResult", "snp_blup", "backsolve_snp_effects"]


@dataclass(frozen=True, eq=False)
class SNPBLUPResult:
    """SNP-BLUP: marker effects, GEBVs and variance components.

    Attributes
    ----------
    b : (p,) ndarray
    alpha : (m,) ndarray
        Effect of one more copy of the counted allele, per marker (0 for markers monomorphic under
        ``allele_freq``), aligned with ``snp_names``.
    snp_names : (m,) ndarray
    gebv : (n,) ndarray
        W alpha for every row of M, phenotyped or not, aligned with ``ids``.
    ids : (n,) ndarray
    sigma2_alpha, sigma2_e : float
        Variance of a marker effect and residual variance.
    sigma2_u : float
        The genomic variance they imply, 2 sum p(1-p) sigma2_alpha (the sigma2_u of GBLUP).
    h2 : float
        sigma2_u / (sigma2_u + sigma2_e).
    loglik : float
        REML log-likelihood (lme4's convention); the same as GBLUP's for the same model.
    allele_freq : (m,) ndarray
        The frequencies used for centring, kept for :meth:`predict`.
    fixed_names : (p,) ndarray
    n_obs : int
    boundary : str or None
    iterations : int or None
        PCG iterations (``solver="pcg"``); None for the direct solution. The REML
        ``loglik`` is not computed by PCG (NaN).
    """

    b: np.ndarray
    alpha: np.ndarray
    snp_names: np.ndarray
    gebv: np.ndarray
    ids: np.ndarray
    sigma2_alpha: float
    sigma2_e: float
    sigma2_u: float
    h2: float
    loglik: float
    allele_freq: np.ndarray
    fixed_names: np.ndarray
    n_obs: int
    boundary: str | None
    iterations: int | None = None

    def predict(self, M_new: Any) -> np.ndarray:
        """GEBVs of newly genotyped individuals: (M_new - 2p) alpha with the frequencies of the fit
        (a missing call counts as 2p, contributing 0). ``M_new`` may be chunked (a PlinkChunks
        or a dask array): then it is streamed block by block, on a dask cluster if one is active.

        Examples
        --------
        >>> import numpy as np, lmmbook
        >>> rng = np.random.default_rng(0)
        >>> M = rng.binomial(2, 0.5, size=(30, 50)).astype(float)
        >>> fit = lmmbook.snp_blup(rng.normal(size=30), np.ones((30, 1)), M,
        ...                        sigma2_alpha=0.01, sigma2_e=1.0)
        >>> np.allclose(fit.predict(M), fit.gebv)
        True
        """
        if chunked.is_chunked(M_new):
            m_new = chunked.shape_of(M_new)[1]
            if m_new != len(self.alpha):
                raise InputError(f"M_new has {m_new} markers but the fit has {len(self.alpha)}; "
                                 "use the same markers in the same order.")
            engine = chunked.BlockEngine(M_new, cache_bytes=0)
            return chunked.block_product(engine, self.allele_freq, self.alpha)
        geno = as_genotypes(M_new, "M_new")
        if geno.M.shape[1] != len(self.alpha):
            raise InputError(f"M_new has {geno.M.shape[1]} markers but the fit has "
                             f"{len(self.alpha)}; use the same markers in the same order.")
        used = np.flatnonzero(self.alpha != 0) if np.any(self.alpha) else np.arange(0)
        if len(used) == 0:
            return np.zeros(geno.M.shape[0])
        W = centred_columns(geno.M, used, 2.0 * self.allele_freq[used], np.ones(len(used)))
        return W @ self.alpha[used]

    def effects(self) -> pd.Series:
        """alpha as a Series indexed by marker name."""
        return pd.Series(self.alpha, index=pd.Index(self.snp_names, name="snp"), name="alpha")


def snp_blup(
    y: Any,
    X: Any,
    M: Any,
    *,
    ids: Any = None,
    allele_freq: Any = None,
    sigma2_alpha: float | None = None,
    sigma2_e: float | None = None,
    space: Literal["auto", "markers", "animals"] = "auto",
    solver: Literal["auto", "spectral", "pcg"] = "auto",
    tol: float = 1e-10,
    maxiter: int = 1000,
    cache_bytes: int = 2**29,
    progress: bool = False,
) -> SNPBLUPResult:
    """SNP-BLUP (ridge regression on markers): y = X b + W alpha + e, alpha ~ N(0, sigma2_alpha I).

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        Phenotypes; NaN = predict, do not fit. A Series indexed by ID is joined to the rows of M.
    X : (n, p) array_like, DataFrame or Incidence
        Fixed effects, one row per row of M.
    M : (n, m) array_like, DataFrame, GenotypeData, PlinkChunks or dask array
        Genotypes 0/1/2, NaN for missing (mean-imputed). A DataFrame or a reader's result gives
        ``ids`` and marker names. Chunked genotypes (``read_plink(prefix, chunks=k)`` or a dask
        array of blocks of rows) are never held whole: they are solved by PCG.
    ids : (n,) array_like, optional
        IDs of the rows of M.
    allele_freq : (m,) array_like, optional
        Frequencies for centring (by default those of M), kept for :meth:`SNPBLUPResult.predict`.
    sigma2_alpha, sigma2_e : float, optional
        Both, or neither: then REML estimates them.
    space : {"auto", "markers", "animals"}
        Where the eigenproblem is solved: "markers" by a thin SVD of the n x m centred markers,
        "animals" by the eigendecomposition of the n x n W W'/c; "auto" takes the markers when
        m < n. The results are the same; only the cost differs (chapter 6).
    solver : {"auto", "spectral", "pcg"}
        "spectral" (in-memory genotypes; REML possible) or "pcg": the marker-space MME solved by
        preconditioned conjugate gradients with the genotypes streamed block by block
        (``lmmbook.chunked.solve_snp_blup``; the variances must be given). "auto" takes PCG
        for chunked genotypes. With a ``dask.distributed`` client active, PCG's products run on
        the cluster's workers, with no change to this call.
    tol, maxiter : float, int
        PCG: relative residual to reach (the default gives the direct solution to about 1e-9
        relative) and the most iterations.
    cache_bytes : int
        PCG: memory for decoded blocks of genotypes (int8, n m bytes for all), kept between
        iterations instead of being read again; 0 keeps none.
    progress : bool
        PCG: a progress bar on stderr (off by default). Iterations and residuals are logged at
        level INFO to the logger ``lmmbook.chunked`` whatever this is.

    Returns
    -------
    SNPBLUPResult

    Notes
    -----
    Chapter 6. The same model as GBLUP with G = W W' / (2 sum p(1-p)) and
    sigma2_u = 2 sum p(1-p) sigma2_alpha (eq-mapping): REML is the spectral method of chapter 2 on
    a thin SVD of the centred markers of the phenotyped rows when there are fewer markers than
    records, O(n m^2), which never forms an n x n matrix (with more markers than records, on the
    eigendecomposition of W W'/c, O(n^2 m + n^3), which is then cheaper; ``space`` overrides the
    choice); alpha_hat = sigma2_alpha W_o' V_o^-1 (y_o - X_o b_hat) (eq-alpha-hat) and
    GEBV = W alpha_hat. Meuwissen et al. (2001); Stranden & Garrick (2009).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> pop = lmmbook.simulate_population(2, 60, 5, n_snp=300, n_qtl=20, seed=1)
    >>> fit = lmmbook.snp_blup(pop.phenotypes["y"], np.ones((180, 1)), pop.genotype_frame())
    >>> G = lmmbook.genomic_relationship(pop.genotypes)
    >>> gb = lmmbook.gblup(pop.phenotypes["y"], np.ones((180, 1)), G, ids=pop.ids)
    >>> bool(np.allclose(fit.gebv, gb.u, atol=1e-8)), round(fit.h2, 6) == round(gb.h2, 6)
    (True, True)
    >>> pcg = lmmbook.snp_blup(pop.phenotypes["y"], np.ones((180, 1)), pop.genotype_frame(),
    ...                        sigma2_alpha=fit.sigma2_alpha, sigma2_e=fit.sigma2_e, solver="pcg")
    >>> bool(np.allclose(pcg.gebv, fit.gebv, rtol=0, atol=1e-8))
    True
    """
    if solver not in ("auto", "spectral", "pcg"):
        raise InputError(f"solver must be 'auto', 'spectral' or 'pcg', got {solver!r}.")
    if solver == "pcg" or (solver == "auto" and chunked.is_chunked(M)):
        return _snp_blup_pcg(y, X, M, ids=ids, allele_freq=allele_freq,
                             sigma2_alpha=sigma2_alpha, sigma2_e=sigma2_e, tol=tol,
                             maxiter=maxiter, cache_bytes=cache_bytes, progress=progress)
    if chunked.is_chunked(M):
        raise InputError("chunked genotypes are solved by PCG only: use solver='pcg' (or "
                         "'auto'), or read them whole.")
    geno = as_genotypes(M)
    n, m = geno.M.shape
    ids, y_values, X_values, fixed_names, observed = _records(y, X, ids, geno.ids, n)
    n_obs = int(observed.sum())
    if (sigma2_alpha is None) != (sigma2_e is None):
        raise InputError("give both sigma2_alpha and sigma2_e, or neither (then REML estimates "
                         "them).")
    p = geno.allele_freq if allele_freq is None else _frequencies(allele_freq, m)
    W, poly, scale = centred_polymorphic(geno, p)
    W_o = W[observed]
    # H = W_o W_o' / scale = G_oo. With fewer markers than records, by the thin SVD of its factor
    # (the marker space: no n x n matrix); otherwise the n x n product and its eigendecomposition
    # are cheaper than an SVD of the wide W_o, and give the same rotation.
    y_o, X_o = y_values[observed], X_values[observed]
    if space not in ("auto", "markers", "animals"):
        raise InputError(f"space must be 'auto', 'markers' or 'animals', got {space!r}.")
    if space == "markers" or (space == "auto" and W_o.shape[1] < W_o.shape[0]):
        rot = _spectral.rotate_factor(y_o, X_o, W_o / np.sqrt(scale))
    else:
        rot = _spectral.rotate_eigh(y_o, X_o, cross_product(W_o, 1.0 / scale))
    if sigma2_alpha is None:
        res = _spectral.fit(rot)
        s2u, s2e, boundary = res.sigma2_u, res.sigma2_e, res.boundary
    else:
        s2u = scale * _checks.positive_variance("sigma2_alpha", sigma2_alpha)
        s2e = _checks.positive_variance("sigma2_e", sigma2_e)
        boundary = None
    b, loglik = _spectral.gls_at(rot, s2u, s2e)
    v_inv_r = _spectral.v_inverse_residual(rot, s2u, s2e, b)
    s2a = s2u / scale
    alpha = np.zeros(m)
    alpha[poly] = s2a * (W_o.T @ v_inv_r)
    gebv = W @ alpha[poly]
    frozen = _checks.frozen
    names = geno.snp_names if geno.snp_names is not None else np.arange(m)
    return SNPBLUPResult(
        b=frozen(b), alpha=frozen(alpha), snp_names=frozen(names), gebv=frozen(gebv),
        ids=frozen(np.asarray(ids) if ids is not None else np.arange(n)),
        sigma2_alpha=float(s2a), sigma2_e=float(s2e), sigma2_u=float(s2u),
        h2=float(s2u / (s2u + s2e)), loglik=float(loglik), allele_freq=frozen(p),
        fixed_names=frozen(fixed_names), n_obs=n_obs, boundary=boundary,
    )


def _records(y, X, ids, own_ids, n: int):
    """y and X aligned to the rows of M (by ID), which records are observed, and the checks
    both solvers need: more phenotyped rows than fixed effects, X of full column rank there."""
    ids = _checks.row_ids(ids, own_ids, n, "M")
    y_values = _checks.align_to_ids(y, ids, n, of="M")
    X_values, fixed_names = _checks.design_to_ids(X, ids, n, y_values, of="M")
    observed = np.isfinite(y_values)
    n_obs, p_fixed = int(observed.sum()), X_values.shape[1]
    if n_obs <= p_fixed:
        raise InputError(f"SNP-BLUP needs more phenotyped individuals than fixed effects: {n_obs} "
                         f"and {p_fixed}.")
    _checks.full_column_rank("X", X_values[observed], None)
    return ids, y_values, X_values, fixed_names, observed


def _snp_blup_pcg(y, X, M, *, ids, allele_freq, sigma2_alpha, sigma2_e, tol, maxiter,
                  cache_bytes, progress) -> SNPBLUPResult:
    """snp_blup(solver="pcg"): validation as for the direct solution, then chunked PCG."""
    if sigma2_alpha is None or sigma2_e is None:
        raise InputError("the PCG solver needs sigma2_alpha and sigma2_e: estimate them first "
                         "(REML on a subset of the animals, or a method that scales) and pass "
                         "both.")
    s2a = _checks.positive_variance("sigma2_alpha", sigma2_alpha)
    s2e = _checks.positive_variance("sigma2_e", sigma2_e)
    if chunked.is_chunked(M):
        n, m = chunked.shape_of(M)
        own_ids = getattr(M, "ids", None)
        snps = getattr(M, "snps", None)
        names = snps["name"].to_numpy() if snps is not None else np.arange(m)
        _checks.unique_ids("the marker names of the genotypes", pd.Index(names))
        source = M
    else:
        geno = as_genotypes(M)
        n, m = geno.M.shape
        own_ids = geno.ids
        names = geno.snp_names if geno.snp_names is not None else np.arange(m)
        source = geno
    ids, y_values, X_values, fixed_names, observed = _records(y, X, ids, own_ids, n)
    n_obs = int(observed.sum())
    p = None if allele_freq is None else _frequencies(allele_freq, m)
    engine = chunked.BlockEngine(source, cache_bytes=cache_bytes)
    sol = chunked.solve_snp_blup(engine, y_values, np.asarray(X_values, dtype=float),
                                 s2e / s2a, p=p, tol=tol, maxiter=maxiter, progress=progress)
    p = sol.allele_freq
    s2u = s2a * float(2.0 * (p * (1.0 - p))[sol.polymorphic].sum())
    frozen = _checks.frozen
    return SNPBLUPResult(
        b=frozen(sol.b), alpha=frozen(sol.alpha), snp_names=frozen(names),
        gebv=frozen(sol.gebv), ids=frozen(np.asarray(ids) if ids is not None else np.arange(n)),
        sigma2_alpha=float(s2a), sigma2_e=float(s2e), sigma2_u=s2u, h2=s2u / (s2u + s2e),
        loglik=float("nan"), allele_freq=frozen(p), fixed_names=frozen(fixed_names),
        n_obs=n_obs, boundary=None, iterations=sol.iterations,
    )


def backsolve_snp_effects(
    fit: GBLUPResult,
    M: Any,
    *,
    method: Literal["vanraden1", "vanraden2"] = "vanraden1",
    allele_freq: Any = None,
    weights: Any = None,
    exact: bool = True,
    g_weight: float = 1.0,
) -> pd.Series:
    """Marker effects alpha_hat from a GBLUP fit with G = W D_alpha W' / c, exactly.

    Parameters
    ----------
    fit : GBLUPResult
        A :func:`lmmbook.gblup` fit; its ``v_inv_residual`` holds V_o^-1 (y_o - X_o b_hat) on the
        phenotyped rows o.
    M : (q, m) array_like or pandas.DataFrame
        The genotypes G was built from (0/1/2, NaN for a missing call), rows in the order of G.
    method : {"vanraden1", "vanraden2"}, optional
        How G was built, as in :func:`lmmbook.genomic_relationship`: "vanraden1" D_alpha = I and
        c = 2 sum_k p_k (1 - p_k); "vanraden2" D_alpha = diag(1 / (2 p_k (1 - p_k))) and c = m,
        the number of markers polymorphic under the frequencies.
    allele_freq : (m,) array_like, optional
        The frequencies G was built with (by default those of M).
    weights : (m,) array_like, optional
        The marker weights d_k >= 0 G was built with (weighted GBLUP or ssGBLUP): D_alpha becomes
        diag(d_k) times the method's D_alpha, and c stays the method's.
    exact : bool, optional
        W alpha_hat = u_hat holds when the fit's G is the W D_alpha W' / c that ``M``, ``method``,
        ``allele_freq`` and ``weights`` describe. With the default True, a fit whose GEBVs are not
        reproduced (to 1e-6 relative) is refused: its G was built otherwise (ridged, Yang's, other
        frequencies or weights). With False the effects are returned with a warning.
    g_weight : float, optional
        For a blended G_b = g_weight G + (1 - g_weight) A: the model is then u = W alpha + a
        polygenic part, Var(alpha) = g_weight sigma2_u D_alpha / c, and the effects returned are
        exactly the marker part (W alpha is not the whole GEBV, so no reproduction check is made).

    Returns
    -------
    pandas.Series
        (m,) alpha_hat, indexed by marker name; 0 for markers monomorphic under the frequencies
        (and for markers of weight 0).

    Raises
    ------
    InputError
        M has another number of rows than the fit; ``method`` is not one of the two; ``weights``
        not one finite, non-negative value per marker; ``g_weight`` outside (0, 1]; with
        ``exact=True``, effects that do not reproduce the GEBVs (the message gives the largest
        difference).

    Notes
    -----
    Chapter 6, eq-backsolve in its general form (Stranden & Garrick 2009; Wang et al. 2012 for
    weighted G). If u = W alpha with alpha ~ N(0, sigma2_u D_alpha / c), then Var(u) =
    sigma2_u W D_alpha W' / c = sigma2_u G: GBLUP with this G and the marker model are one model,
    and the BLUP of alpha is Cov(alpha, y_o) V_o^-1 (y_o - X_o b_hat), which is computed as

        alpha_hat = (sigma2_u / c) D_alpha W_o' V_o^-1 (y_o - X_o b_hat).

    Then W alpha_hat = sigma2_u (W D_alpha W_o' / c) V_o^-1 (y_o - X_o b_hat) =
    sigma2_u G_{.o} V_o^-1 (y_o - X_o b_hat) = u_hat, for every D_alpha >= 0 and c > 0, for the
    rows without a phenotype too. When G is invertible, G^-1 u_hat / sigma2_u is
    V_o^-1 (y_o - X_o b_hat) on the rows o and 0 elsewhere, so
    alpha_hat = D_alpha W' G^-1 u_hat / c. Nothing is inverted but V_o, which the fit already used,
    so a singular G (VanRaden's G with the sample's frequencies) is fine. With D_alpha positive
    definite, alpha_hat also solves the SNP-BLUP equations with heterogeneous marker variances
    sigma2_u D_alpha / c.

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> rng = np.random.default_rng(1)
    >>> M = rng.binomial(2, 0.4, size=(40, 60)).astype(float)
    >>> d = rng.uniform(0.5, 2.0, 60)  # marker weights (D_alpha = diag(d) D_alpha of VanRaden 2)
    >>> G = lmmbook.genomic_relationship(M, method="vanraden2", weights=d)
    >>> y = rng.normal(size=40)
    >>> y[::4] = np.nan  # ten individuals without a record
    >>> fit = lmmbook.gblup(y, np.ones((40, 1)), G, sigma2_u=1.0, sigma2_e=1.0)
    >>> alpha = lmmbook.backsolve_snp_effects(fit, M, method="vanraden2", weights=d)
    >>> W = lmmbook.markers.center(M)
    >>> bool(np.allclose(W @ alpha.to_numpy(), fit.u, rtol=0, atol=1e-10))
    True
    """
    if method not in ("vanraden1", "vanraden2"):
        raise InputError(f"method must be 'vanraden1' or 'vanraden2' (G = W D_alpha W' / c), got "
                         f"{method!r}. Yang's G is not of that form: its diagonal is computed "
                         "otherwise.")
    if not 0 < g_weight <= 1:
        raise InputError(f"g_weight must be in (0, 1], got {g_weight}.")
    geno = as_genotypes(M)
    q, m = geno.M.shape
    if q != len(fit.u):
        raise InputError(f"M has {q} rows but the GBLUP fit has {len(fit.u)}; pass the "
                         "genotypes of the rows of G, in the same order.")
    p = geno.allele_freq if allele_freq is None else _frequencies(allele_freq, m)
    d = None if weights is None else _weights(weights, m)
    poly, root, c = marker_scaling(p, method, d)
    W, _, _ = centred_polymorphic(geno, p)  # the same polymorphic columns, unscaled
    observed = np.isfinite(fit.v_inv_residual)
    alpha = np.zeros(m)
    alpha[poly] = (g_weight * fit.sigma2_u / c) * root**2 * (
        W[observed].T @ fit.v_inv_residual[observed])
    mismatch = np.abs(W @ alpha[poly] - fit.u).max()
    tolerance = 1e-6 * (1.0 + np.abs(fit.u).max())
    if g_weight == 1 and mismatch > tolerance:
        message = (f"the back-solved effects do not reproduce the GEBVs (largest difference "
                   f"{mismatch:.3g}): the fit's G was not W D_alpha W' / c of method={method!r} "
                   "for these genotypes, allele frequencies and weights (ridged, built otherwise, "
                   "or blended: then give g_weight).")
        if exact:
            raise InputError(message + " Pass exact=False to accept approximate effects.")
        warnings.warn(message, stacklevel=2)
    names = geno.snp_names if geno.snp_names is not None else np.arange(m)
    return pd.Series(alpha, index=pd.Index(names, name="snp"), name="alpha")
