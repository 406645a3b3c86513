"""Genome-wide association from a GBLUP fit: back-solved marker effects with their standard errors,
the single-marker mixed-model test with the variances of the null fit, and the share of the
genomic variance carried by windows of markers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg.blas import dsyrk

from . import _marker_loops, _spectral
from .errors import InputError, ShapeMismatchError
from .genomic import GBLUPResult
from .markers import _frequencies, as_genotypes, marker_scaling

__all__ = ["GWASResult", "gwas"]

#: Markers centred at a time (a block of W and of W_o'U): memory O(n * _CHUNK) beyond the fit's
#: n_o x n_o eigenvectors.
_CHUNK = 2048


@dataclass(frozen=True, eq=False)
class GWASResult:
    """:func:`lmmbook.gwas` with ``window=``: the test of every marker and the windows.

    Attributes
    ----------
    snps : pandas.DataFrame
        One row per marker, the frame that ``gwas`` returns without ``window``.
    windows : pandas.DataFrame
        One row per window of markers (index ``window``, from 0, in the order of the markers):
        ``chromosome`` (with a marker map), ``first_snp`` and ``last_snp`` (marker names),
        ``start`` and ``end`` (the positions of those two markers, with a map that gives
        positions), ``n_snps`` (markers in the window, monomorphic ones included), ``variance``
        (Var(u_hat_(r)) over the genotyped individuals, ddof=1), ``variance_pct``
        (100 Var(u_hat_(r)) / Var(u_hat)) and ``share`` (Cov(u_hat_(r), u_hat) / Var(u_hat), which
        sums to 1 over the windows); see :func:`lmmbook.gwas`.
    """

    snps: pd.DataFrame
    windows: pd.DataFrame


@overload
def gwas(fit: GBLUPResult, M: Any, *, method: Literal["backsolve", "single_marker"] = ...,
         window: None = None, allele_freq: Any = None) -> pd.DataFrame: ...


@overload
def gwas(fit: GBLUPResult, M: Any, *, method: Literal["backsolve", "single_marker"] = ...,
         window: int | str, allele_freq: Any = None) -> GWASResult: ...


def gwas(
    fit: GBLUPResult,
    M: Any,
    *,
    method: Literal["backsolve", "single_marker"] = "backsolve",
    window: int | str | None = None,
    allele_freq: Any = None,
) -> pd.DataFrame | GWASResult:
    """A test of every marker after a GBLUP fit with G = W W' / c (VanRaden 1), and optionally
    the share of the genomic variance carried by windows of markers.

    Parameters
    ----------
    fit : GBLUPResult or SSGBLUPResult
        A :func:`lmmbook.gblup` fit whose G is ``genomic_relationship(M, allele_freq=...)``, or
        an :func:`lmmbook.ssgblup` fit ("From a single-step fit" in the Notes).
    M : (q, m) array_like, pandas.DataFrame or GenotypeData
        The genotypes G was built from (0/1/2, NaN for a missing call), rows in the order of G.
        A DataFrame's columns name the markers; a reader's result (:func:`lmmbook.read_plink`)
        also gives their chromosome and position. After ssgblup, the genotypes it was given:
        joined to its genotyped animals by ID (a DataFrame's index, a reader's IDs), an array
        in the order of the rows given to ssgblup.
    method : {"backsolve", "single_marker"}, optional
        "backsolve": the back-solved effects alpha_hat and their sampling standard errors
        (Gualdron Duarte et al. 2014). "single_marker": each marker as a fixed effect, the GLS of
        y on [X, w_k] with V at the variances of the fit (EMMAX with both variances held, P3D;
        Kang et al. 2010).
    window : int or str, optional
        Also split the GEBVs into windows of markers: an int k >= 1, k consecutive markers (in
        the order of M's columns); or a length in base pairs, such as ``"1Mb"``, ``"500kb"`` or
        ``"20000bp"`` (case ignored): the bins [0, L), [L, 2L), ... of each chromosome, which
        needs the positions of a marker map (:func:`lmmbook.read_plink` or
        :func:`lmmbook.read_vcf` give them; without a file, a :class:`lmmbook.GenotypeData` with
        a ``snps`` frame of ``chromosome`` and ``position``). Windows never cross chromosomes: a
        chromosome's last window may be shorter, and only bins that hold a marker are windows.
        Without a map, M is one chromosome. The windows use the back-solved effects whatever
        ``method`` is.
    allele_freq : (m,) array_like, optional
        The frequencies G was built with (by default those of M).

    Returns
    -------
    pandas.DataFrame or GWASResult
        Without ``window``, the frame of the markers: one row per marker, indexed by marker name
        (``snp``): ``chromosome`` and ``position`` when M carries a marker map, then ``effect``,
        ``se``, ``z`` = effect / se and the two-sided normal ``p``. NaN for markers monomorphic
        under the frequencies and for markers that X explains completely (w_k'P w_k = 0).
        With ``window``, a :class:`GWASResult` holding that frame (``snps``) and one of the
        windows (``windows``).

    Raises
    ------
    ShapeMismatchError
        M has another number of rows than the fit.
    InputError
        ``method`` is not one of the two; ``fit`` is not a GBLUP fit; the fit's G is not
        W W' / c of these genotypes and frequencies (its GEBVs are not reproduced by the
        back-solved effects, as in :func:`lmmbook.backsolve_snp_effects`, or the fit's kept
        eigendecomposition is not that of W_o W_o' / c); ``window`` is not a
        whole number >= 1 nor a length such as "1Mb"; a length without marker positions; a map
        whose chromosomes are not contiguous or whose positions decrease within a chromosome.
        After ssgblup: ``method="single_marker"``, an APY fit, tau or omega other than 1, more
        than ``lmmbook.mme.PEV_AUTO_MAX_LEVELS`` animals, or MME rebuilt from M that the fit's
        solution does not solve (other genotypes, frequencies or animals).
    UnknownIdError
        After ssgblup: M has a row for an animal that the fit did not genotype.

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

    Cost. The eigendecomposition is the fit's own: :func:`lmmbook.gblup` keeps it
    (``GBLUPResult.rotation``). It does not depend on the variances, so it serves a fit at given
    variances as well; a fit made with ``keep_rotation=False`` gets G_oo rebuilt from the markers
    and decomposed again, at about the cost of the fit. What is left is W_o'U, O(n_o^2 m). The
    markers are centred a block of ``_CHUNK`` columns at a time (missing calls 0), used for
    W_o'P y_o, W alpha_hat, W_o'U and the windows' parts, and dropped, so the memory beyond M
    and the fit is O(n_o^2 + n _CHUNK) (no n x m copy of the markers; a non-float M is converted
    to float once, on input). The fit is refused unless W alpha_hat reproduces its GEBVs (as
    :func:`lmmbook.backsolve_snp_effects` refuses, at its tolerance) and, with a kept
    eigendecomposition, u_i'W_o W_o'u_i / c equals lambda_i for every eigenvector u_i (to 1e-6
    of the largest): the eigendecomposition is then that of W_o W_o'/c.

    For the single-marker test with V fixed, the GLS coefficient of w_k in y = X b + w_k a + e
    is, by the Frisch-Waugh-Lovell theorem in the metric V^-1, a_hat = w_k'P y / w_k'P w_k with
    variance 1 / w_k'P w_k. Both methods therefore give the same statistic,
    z_k = w_k'P y / sqrt(w_k'P w_k), and the same p-value: the back-solved effect is the
    single-marker effect shrunk by (sigma2_u / c) w_k'P w_k, and so is its standard error. They
    differ from EMMAX proper, which re-estimates the residual scale for each marker (an F test),
    by that re-estimation only. The marker tested is part of G in both (no leaving out of its
    chromosome).

    Windows (Wang et al. 2012, Genet. Res. 94:73; the windows of BLUPF90's postGSf90). The
    GEBVs are the sum of the markers' parts, u_hat = W alpha_hat (chapter 6, eq-backsolve), so
    over windows r of markers, u_hat = sum_r u_hat_(r) with u_hat_(r) = W_(r) alpha_hat_(r), the
    part of the GEBVs carried by window r. Two measures are given over the q genotyped
    individuals (the rows of M). ``variance`` is Var(u_hat_(r)), postGSf90's measure, and
    ``variance_pct`` is it as a percentage of Var(u_hat), the variance of the GEBVs over the same
    individuals, not of sigma2_u: both then are variances of predictions of the same animals
    (sigma2_u is the variance of true values in the base population, larger than that of the
    shrunken predictions, and would make the percentages depend on the fit's accuracy as well).
    Because windows in linkage disequilibrium (or carried by related animals) covary, these
    percentages do not add up to 100. ``share`` = Cov(u_hat_(r), u_hat) / Var(u_hat) does: it is
    the regression of the window's part on the GEBVs, and since u_hat = sum_r u_hat_(r), the shares
    sum to exactly 1 (a window can have a negative share). Var(u_hat) is computed from
    W alpha_hat, which equals the fit's u to 1e-6 relative (checked), so the sum is 1 to
    round-off. When sigma2_u = 0 every part is 0 and ``variance_pct`` and ``share`` are NaN.

    From a single-step fit (Aguilar et al. 2019, Genet. Sel. Evol. 51:28). With ssgblup's
    G_t = chi_0 11' + chi_1 [(1 - beta) W W' / c + beta A22] (chapter 9, eq-tuning), the values
    of the genotyped animals are u_2 = 1 mu_2 + W alpha + a polygenic part, with
    alpha ~ N(0, sigma2_u k I), k = chi_1 (1 - beta) / c, so Cov(alpha, u_2) = sigma2_u k W'. The
    records depend on alpha only through u_2 (the ungenotyped are u_1 = A12 A22^-1 u_2 +
    epsilon_1, chapter 9, eq-conditional), hence the BLUP of alpha and its sampling variance

        alpha_hat = k W' G_t^-1 u_hat_2,
        Var(alpha_hat) = k^2 W' G_t^-1 (sigma2_u G_t - PEV_22) G_t^-1 W,

    since Var(u_hat_2) = Var(u_2) - Var(u_2 - u_hat_2) for a BLUP, with PEV_22 = sigma2_e
    (C^-1)_22 the block of the genotyped animals in the inverse of the MME's coefficient matrix
    C. The inverse is that of the G_t ssgblup used, blended and tuned (without either, k = 1/c,
    Aguilar et al.'s formula); k sets the effects' scale and cancels in z. The MME are rebuilt
    from M and the fit (which keeps its pedigree, X, y, genotyped IDs and frequencies); the
    fit's solution must solve them (relative residual 1e-8, or ten times a PCG fit's last one),
    which refuses other genotypes or frequencies. (C^-1)_22 is the inverse of the Schur
    complement of the genotyped animals' equations, C_22 - C_2r C_rr^-1 C_r2 over the rest r
    (fixed effects and ungenotyped animals: sparse): one sparse LU of C_rr, n_g solves with it
    and a dense Cholesky inverse; u_hat_2 comes from the same (a PCG fit gives the direct
    result). This is allowed for pedigrees of up to ``lmmbook.mme.PEV_AUTO_MAX_LEVELS``
    animals; the markers then cost O(n_g^2 m).

    Refused after ssgblup: an APY fit (G_APY is not W W' / c outside the core, and where
    PEV_22 is affordable APY is not needed); tau or omega other than 1 (u_2's prior precision
    is then tau G_t^-1 + (1 - omega) A22^-1, the variance of no marker model);
    "single_marker" (the ungenotyped have no genotypes to test). Var(alpha_hat_k) = 0 (NaN)
    when H_o2 G_t^-1 w_k, the marker as the recorded animals carry it (the ungenotyped through
    A12 A22^-1), lies in the span of X_o, e.g. a marker constant over the records when every
    recorded animal is genotyped. With every animal genotyped and G neither blended nor tuned,
    ssGBLUP is GBLUP and so are these p-values. Windows are those of W alpha_hat, the marker
    part of u_hat_2.

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
    >>> res = lmmbook.gwas(fit, M, window=50)  # windows of 50 markers
    >>> res.windows.columns.tolist()
    ['first_snp', 'last_snp', 'n_snps', 'variance', 'variance_pct', 'share']
    >>> len(res.windows), round(float(res.windows["share"].sum()), 10)
    (6, 1.0)
    """
    from ._gwas_singlestep import SSGBLUPResult, ssgwas  # imports this module's helpers
    if isinstance(fit, SSGBLUPResult):  # Aguilar et al. (2019): lmmbook/_gwas_singlestep.py
        return ssgwas(fit, M, method=method, window=window, allele_freq=allele_freq)
    if method not in ("backsolve", "single_marker"):
        raise InputError(f"method must be 'backsolve' or 'single_marker', got {method!r}.")
    size = None if window is None else _window_size(window)
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
    snp_map = getattr(M, "snps", None)
    if not (isinstance(snp_map, pd.DataFrame) and len(snp_map) == m):
        snp_map = None
    if size is not None:  # the map is checked before any computation
        window_of = _assign_windows(snp_map, size, m)
    poly, _, c = marker_scaling(p, "vanraden1")  # raises when no marker is polymorphic
    two_p = 2.0 * p[poly]
    observed = np.isfinite(fit.v_inv_residual)
    X_o, Py = np.asarray(fit.X)[observed], fit.v_inv_residual[observed]
    s2u, s2e = fit.sigma2_u, fit.sigma2_e
    rot = fit.rotation
    reuse = (isinstance(rot, _spectral.Rotated) and rot.n0 == 0
             and len(rot.lam) == len(Py) and rot.X.shape == X_o.shape)
    wPy = np.empty(len(poly))
    u_back = np.zeros(q)  # W w'Py, then the GEBVs back-solved: W alpha_hat
    if not reuse:  # G_oo rebuilt from the markers, streamed, with w'Py; P does not involve y
        G_oo = np.zeros((len(Py), len(Py)), order="F")
        for block, W, W_o in _centred_blocks(geno.M, poly, two_p, observed):
            wPy[block] = W_o.T @ Py
            u_back += W @ wPy[block]
            G_oo = dsyrk(1.0 / c, W_o, beta=1.0, c=G_oo, trans=0, lower=0, overwrite_c=1)
        _refuse_unless_reproduced(u_back, fit, s2u / c)
        G_oo = _marker_loops.mirror_upper(G_oo).T
        rot = _spectral.rotate_eigh(np.zeros(len(Py)), X_o, G_oo, clip=False)
        del G_oo
    v = s2u * rot.lam + s2e  # V in the rotated basis
    v_inv = np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0)
    wPw, wVw = np.empty(len(poly)), np.empty(len(poly))
    lam_back = np.zeros(len(Py))  # diag(U'W_o W_o'U): the fit's lambda when G_oo = W_o W_o'/c
    for block, W, W_o in _centred_blocks(geno.M, poly, two_p, observed):
        if reuse:
            wPy[block] = W_o.T @ Py
            u_back += W @ wPy[block]
        del W
        B = W_o.T @ rot.U
        del W_o
        B2 = B * B
        wPw[block] = _spectral.p_quadratic(rot, s2u, s2e, B)
        del B
        wVw[block] = B2 @ v_inv
        if reuse:
            lam_back += B2.sum(axis=0)
    if reuse:
        _refuse_unless_reproduced(u_back, fit, s2u / c)
        _refuse_other_rotation(lam_back / c, rot.lam)
    alpha = np.zeros(m)
    alpha[poly] = (s2u / c) * wPy
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
    frame, names = _snp_frame(m, poly, effect, se, z_poly, geno, snp_map)
    if size is None:
        return frame
    return GWASResult(snps=frame, windows=_window_frame(geno.M, poly, two_p, alpha, u_back,
                                                       window_of, snp_map, np.asarray(names)))


def _centred_blocks(M: np.ndarray, poly: np.ndarray, two_p: np.ndarray, observed: np.ndarray):
    """(slice of poly, W, W_o) for blocks of _CHUNK polymorphic markers: their centred columns
    (missing calls 0) over all rows and over the phenotyped rows, formed one block at a time."""
    every = bool(observed.all())
    ones = np.ones(len(poly))
    for start in range(0, len(poly), _CHUNK):
        block = slice(start, start + _CHUNK)
        W = _marker_loops.centred_columns(M, poly[block], two_p[block], ones[block])
        yield block, W, (W if every else np.asfortranarray(W[observed]))


def _refuse_unless_reproduced(W_wPy: np.ndarray, fit: GBLUPResult, factor: float) -> None:
    """Refuse a fit whose GEBVs are not W alpha_hat (as :func:`lmmbook.backsolve_snp_effects`
    does, at its tolerance); ``W_wPy`` is W W_o'P y, scaled to W alpha_hat in place."""
    W_wPy *= factor
    mismatch = float(np.abs(W_wPy - fit.u).max())
    if mismatch > 1e-6 * (1.0 + float(np.abs(fit.u).max())):
        raise InputError(
            f"the back-solved effects do not reproduce the GEBVs (largest difference "
            f"{mismatch:.3g}): the fit's G was not W W' / c (genomic_relationship with "
            "method='vanraden1') of these genotypes and allele frequencies. Pass the markers G "
            "was built from, in the rows of G, and the frequencies it was built with.")


def _refuse_other_rotation(lam_markers: np.ndarray, lam: np.ndarray) -> None:
    """Refuse a fit whose kept eigendecomposition is not that of W_o W_o'/c: u'_i W_o W_o' u_i / c
    must be its lambda_i for every eigenvector (1e-6 of the largest, as the GEBVs' check)."""
    gap = np.abs(lam_markers - lam)
    if gap.max() > 1e-6 * (float(np.abs(lam).max()) + np.finfo(float).tiny):
        k = int(np.argmax(gap))
        raise InputError(
            f"the fit's eigendecomposition of G_oo is not that of W W' / c of these genotypes "
            f"(eigenvalue {k}: {lam[k]:.6g} in the fit, {lam_markers[k]:.6g} from the markers), "
            "although its GEBVs are reproduced: the fit was altered or G built otherwise. Fit "
            "again with gblup(y, X, genomic_relationship(M)).")


def _snp_frame(m: int, poly: np.ndarray, effect: np.ndarray, se: np.ndarray, z: np.ndarray,
               geno, snp_map: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame of the markers that ``gwas`` returns (NaN for the markers not in ``poly``), with
    the chromosome and position of a marker map, and the marker names."""
    out = np.full((m, 4), np.nan)
    out[poly, 0], out[poly, 1], out[poly, 2] = effect, se, z
    out[poly, 3] = 2.0 * stats.norm.sf(np.abs(z))
    names = np.asarray(geno.snp_names if geno.snp_names is not None else np.arange(m))
    frame = pd.DataFrame(out, columns=["effect", "se", "z", "p"],
                         index=pd.Index(names, name="snp"))
    if snp_map is not None:
        for column in ("position", "chromosome"):
            if column in snp_map.columns:
                frame.insert(0, column, snp_map[column].to_numpy())
    return frame, names


_LENGTH = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(bp|kb|mb)\s*", re.IGNORECASE)
_UNIT = {"bp": 1.0, "kb": 1e3, "mb": 1e6}


def _window_size(window: Any) -> tuple[str, float]:
    """("snps", k) for a number of markers, ("bp", L) for a length in base pairs."""
    if isinstance(window, str):
        found = _LENGTH.fullmatch(window)
        if found is None:
            raise InputError(f"window {window!r} is not a length: give a number of base pairs "
                             "with its unit, such as '1Mb', '500kb' or '20000bp', or a number "
                             "of markers (an int).")
        length = float(found.group(1)) * _UNIT[found.group(2).lower()]
        if length < 1:
            raise InputError(f"window {window!r} is shorter than one base pair; give a length "
                             "such as '1Mb'.")
        return "bp", length
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise InputError(f"window must be a number of markers (an int >= 1) or a length such "
                         f"as '1Mb', got {window!r}.")
    if window < 1:
        raise InputError(f"window must hold at least 1 marker, got {int(window)}.")
    return "snps", float(window)


def _assign_windows(snp_map: pd.DataFrame | None, size: tuple[str, float], m: int) -> np.ndarray:
    """The window (0, 1, ...) of each marker: runs of one chromosome, cut every k markers or at
    every multiple of L base pairs; non-decreasing along the markers."""
    kind, width = size
    has_chrom = snp_map is not None and "chromosome" in snp_map.columns
    chrom = pd.Series(snp_map["chromosome"].to_numpy() if has_chrom else np.zeros(m))
    names = (snp_map["name"].to_numpy() if snp_map is not None and "name" in snp_map.columns
             else np.arange(m))
    new_chrom = np.r_[True, chrom.to_numpy()[1:] != chrom.to_numpy()[:-1]]
    run = np.cumsum(new_chrom) - 1
    starts = np.flatnonzero(new_chrom)
    seen = chrom.iloc[starts].duplicated().to_numpy()
    if seen.any():
        k = int(starts[np.flatnonzero(seen)[0]])
        raise InputError(f"chromosome {chrom.iloc[k]!r} comes back at marker {names[k]!r} "
                         f"(column {k}) after other chromosomes: windows need each "
                         "chromosome's markers together; sort the map by chromosome and "
                         "position and M's columns with it.")
    position = None
    if snp_map is not None and "position" in snp_map.columns:
        position = pd.to_numeric(snp_map["position"], errors="coerce").to_numpy(dtype=float)
        if not np.any(position != 0):  # 0 where the file does not say
            position = None
    if position is not None:
        if not np.all(np.isfinite(position)):
            k = int(np.flatnonzero(~np.isfinite(position))[0])
            raise InputError(f"the position of marker {names[k]!r} (column {k}) is missing; "
                             "windows need a position for every marker.")
        back = np.flatnonzero((np.diff(position) < 0) & ~new_chrom[1:]) + 1
        if len(back):
            k = int(back[0])
            raise InputError(f"the position of marker {names[k]!r} (column {k}), "
                             f"{position[k]:.0f}, is before that of the marker before it on "
                             f"chromosome {chrom.iloc[k]!r} ({position[k - 1]:.0f}): sort the "
                             "map by chromosome and position and M's columns with it.")
    if kind == "snps":
        within = np.arange(m) - starts[run]  # the marker's place on its chromosome
        key = within // int(width)
    else:
        if position is None:
            raise InputError(f"a window of {width:.0f} bp needs the markers' positions: pass "
                             "the genotypes as read_plink or read_vcf give them (their snps "
                             "frame has chromosome and position), or a GenotypeData with such "
                             "a frame, or give window as a number of markers.")
        key = np.floor(position / width)
    new_window = new_chrom | np.r_[True, key[1:] != key[:-1]]
    return np.cumsum(new_window) - 1


def _window_frame(M: np.ndarray, poly: np.ndarray, two_p: np.ndarray, alpha: np.ndarray,
                  u_hat: np.ndarray, window_of: np.ndarray, snp_map: pd.DataFrame | None,
                  names: np.ndarray) -> pd.DataFrame:
    """Var(u_hat_(r)), 100 Var(u_hat_(r)) / Var(u_hat) and Cov(u_hat_(r), u_hat) / Var(u_hat) of
    every window r, u_hat = W alpha_hat; the parts u_hat_(r) = W_(r) alpha_(r) are formed a block
    of whole windows at a time, their columns of W centred then (memory O(q * chunk))."""
    q = M.shape[0]
    n_windows = int(window_of[-1]) + 1
    a = alpha[poly]
    u_c = u_hat - u_hat.mean()
    var_u = float(u_c @ u_c) / (q - 1)
    variance, cov = np.zeros(n_windows), np.zeros(n_windows)
    win = window_of[poly]  # non-decreasing: the windows of the polymorphic columns
    first = np.flatnonzero(np.r_[True, win[1:] != win[:-1]]) if len(win) else np.arange(0)
    bounds = np.r_[first, len(win)]
    b = 0
    while b < len(first):  # windows b .. e-1 at once, about _CHUNK columns (at least one window)
        e = max(b + 1, min(len(first), int(np.searchsorted(bounds, bounds[b] + _CHUNK,
                                                           side="right")) - 1))
        lo, hi = bounds[b], bounds[e]
        W = _marker_loops.centred_columns(M, poly[lo:hi], two_p[lo:hi], a[lo:hi])  # W_(r) alpha
        parts = np.add.reduceat(W, bounds[b:e] - lo, axis=1)
        del W
        parts -= parts.mean(axis=0)
        variance[win[first[b:e]]] = np.einsum("ij,ij->j", parts, parts) / (q - 1)
        cov[win[first[b:e]]] = (u_c @ parts) / (q - 1)
        b = e
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(var_u > 0, 100.0 * variance / var_u, np.nan)
        share = np.where(var_u > 0, cov / var_u, np.nan)
    first_k = np.flatnonzero(np.r_[True, window_of[1:] != window_of[:-1]])
    last_k = np.r_[first_k[1:] - 1, len(window_of) - 1]
    columns: dict[str, Any] = {}
    if snp_map is not None and "chromosome" in snp_map.columns:
        columns["chromosome"] = snp_map["chromosome"].to_numpy()[first_k]
    columns["first_snp"], columns["last_snp"] = names[first_k], names[last_k]
    if snp_map is not None and "position" in snp_map.columns and np.any(snp_map["position"] != 0):
        position = snp_map["position"].to_numpy()
        columns["start"], columns["end"] = position[first_k], position[last_k]
    columns["n_snps"] = last_k - first_k + 1
    columns.update(variance=variance, variance_pct=pct, share=share)
    return pd.DataFrame(columns, index=pd.RangeIndex(n_windows, name="window"))
