"""Marker genotypes: checking 0/1/2 counts, allele frequencies, centring, quality filters
(chapter 5).

Genotypes are (n, m) counts of one allele (0, 1 or 2) per individual and marker, as floats, with NaN
for a missing call. They may come as a NumPy array or as a DataFrame with the individuals' IDs as
index and the marker names as columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg.blas import dsyrk, ssyrk

from . import _checks
from . import _marker_loops as loops
from ._hwe import hwe_exact
from .errors import InputError, format_ids

__all__ = ["Genotypes", "as_genotypes", "allele_frequencies", "center", "centred_polymorphic",
           "cross_product", "centred_cross_product", "filter_markers", "FilterResult",
           "hardy_weinberg", "EXACT_CHUNK"]

#: Markers per single-precision product in :func:`centred_cross_product`: the genotypes, shifted to
#: integers from -2 to 2, make every partial sum an integer of magnitude at most 4 * EXACT_CHUNK,
#: which float32 holds exactly (below 2**24).
EXACT_CHUNK = 2**22


@dataclass(frozen=True, eq=False)
class Genotypes:
    """Checked genotypes: ``M`` (n, m) float with NaN for missing, ``ids`` and ``snp_names``."""

    M: np.ndarray
    ids: np.ndarray | None
    snp_names: np.ndarray | None
    col_sum: np.ndarray
    col_calls: np.ndarray

    @property
    def allele_freq(self) -> np.ndarray:
        """Frequency of the counted allele at each marker, from the calls."""
        return self.col_sum / (2.0 * self.col_calls)


def as_genotypes(M: Any, name: str = "M") -> Genotypes:
    """Check that every value is 0, 1, 2 or NaN, and that no individual or marker is all missing.

    Raises
    ------
    InputError
        A value other than 0/1/2/NaN (row and column named), an all-missing marker or individual.
    DuplicateIdError
        Repeated individual IDs or marker names in a DataFrame.
    """
    ids = snp_names = None
    if isinstance(M, Genotypes):
        return M
    if hasattr(M, "to_genotypes"):  # a file reader's result (lmmbook.read_plink ...), IDs kept
        return M.to_genotypes()
    if isinstance(M, pd.DataFrame):
        ids, snp_names = M.index, M.columns
        _checks.unique_ids(f"the index of {name}", ids)
        _checks.unique_ids(f"the columns of {name}", snp_names)
        values = M.to_numpy(dtype=float)
    else:
        try:
            values = np.asarray(M, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must hold numeric genotype counts: {exc}") from None
    if values.ndim != 2:
        raise InputError(f"{name} must be two-dimensional (individuals x markers), got shape "
                         f"{values.shape}.")
    values = np.ascontiguousarray(values)
    first_bad, n_bad, col_sum, col_calls, row_calls = loops.scan(values)
    if n_bad:
        i, j = divmod(int(first_bad), values.shape[1])
        row = f"row {i}" + (f" (ID {ids[i]!r})" if ids is not None else "")
        col = f"column {j}" + (f" (marker {snp_names[j]!r})" if snp_names is not None else "")
        raise InputError(
            f"{name} holds {float(values[i, j])!r} at {row}, {col}; genotypes are counts of one "
            f"allele, 0, 1 or 2, with NaN for a missing call ({int(n_bad)} such value(s) in "
            "all). "
            "Recode them (e.g. -1/0/1 + 1) or set them to NaN."
        )
    empty_markers = np.flatnonzero(col_calls == 0)
    if len(empty_markers):
        which = snp_names[empty_markers] if snp_names is not None else empty_markers
        raise InputError(f"marker(s) {format_ids(which)} of {name} have no genotype call at all; "
                         "remove them (filter_markers does, by call rate).")
    empty_rows = np.flatnonzero(row_calls == 0)
    if len(empty_rows):
        which = ids[empty_rows] if ids is not None else empty_rows
        raise InputError(f"individual(s) {format_ids(which)} of {name} have no genotype call at "
                         "all; remove them: nothing can be said of their genomes.")
    return Genotypes(values, None if ids is None else np.asarray(ids),
                     None if snp_names is None else np.asarray(snp_names), col_sum, col_calls)


def allele_frequencies(M: Any) -> np.ndarray:
    """Frequency p of the counted allele at each marker, from the non-missing calls: mean / 2.

    Examples
    --------
    >>> allele_frequencies([[0, 2], [1, 2], [2, float("nan")]]).tolist()
    [0.5, 1.0]
    """
    return as_genotypes(M).allele_freq


def center(M: Any, allele_freq: Any = None) -> np.ndarray:
    """W = M - 2p, with a missing call set to 0 (mean imputation: the expected value under p).

    Parameters
    ----------
    M : (n, m) genotypes
    allele_freq : (m,) array_like, optional
        Frequencies to centre with, e.g. from a base or training population; by default those of M.
    """
    G = as_genotypes(M)
    p = allele_frequencies(G) if allele_freq is None else _frequencies(allele_freq, G.M.shape[1])
    W = G.M - 2.0 * p
    W[np.isnan(W)] = 0.0
    return W


def centred_polymorphic(geno: Genotypes, p: np.ndarray, scale: np.ndarray | None = None):
    """W over the markers polymorphic under p (missing calls 0), Fortran-ordered, optionally with
    each column multiplied by ``scale`` (given for all markers); returns W, the columns kept and
    c = 2 sum p(1-p) over them. The one place where genotypes are centred for G and SNP-BLUP."""
    het = p * (1.0 - p)
    poly = np.flatnonzero(het > 0)
    if len(poly) == 0:
        raise InputError("no marker is polymorphic under the allele frequencies used: G is "
                         "undefined.")
    factor = np.ones(len(poly)) if scale is None else np.asarray(scale)[poly]
    W = loops.centred_columns(geno.M, poly, 2.0 * p[poly], factor)
    return W, poly, float(2.0 * het[poly].sum())


def cross_product(W: np.ndarray, scale: float) -> np.ndarray:
    """scale * W W', symmetric to the last bit: BLAS syrk computes one triangle (half the flops of
    a general product), and the other is mirrored from it."""
    C = dsyrk(scale, np.asfortranarray(W), trans=0, lower=0)  # upper triangle
    return loops.mirror_upper(C).T  # symmetric: the transpose of the Fortran array is C-ordered


def centred_cross_product(geno: Genotypes, p: np.ndarray) -> tuple[np.ndarray, float]:
    """W W' / c over the markers polymorphic under p, and c = 2 sum p(1-p) over them
    (VanRaden's first G), symmetric to the last bit.

    Without missing calls the genotypes are not centred in floating point. With o_k the integer
    nearest to 2 p_k and f_k = 2 p_k - o_k, W = M_s - 1 f' where M_s = M - 1 o' holds the integers
    -2 to 2, so W W' = M_s M_s' - t 1' - 1 t' with t = M_s f - (f'f / 2) 1. BLAS ssyrk forms
    M_s M_s' in single precision, where it is exact: every partial sum is an integer of
    magnitude at most 4 m, and markers are taken EXACT_CHUNK at a time, so at most 2**24, which
    float32 holds. One float64 pass gives t. The single-precision product reads half the bytes
    and does twice the flops per cycle of the double-precision one; the result is the same G to
    round-off (shifting by the nearest integer keeps every term as small as W's own). With
    missing calls (centred value 0, mean imputation) W is formed in float64 and multiplied by
    dsyrk (:func:`cross_product`).
    """
    poly_columns, _, c = marker_scaling(p, "vanraden1")  # raises if no marker is polymorphic
    poly = np.zeros(len(p), bool)
    poly[poly_columns] = True
    M = geno.M
    if not np.all(geno.col_calls == M.shape[0]):
        W, _, c = centred_polymorphic(geno, p)
        return cross_product(W, 1.0 / c), c
    offset = np.where(poly, np.round(2.0 * p), np.nan)  # NaN: the marker is left out
    rest = 2.0 * p - offset
    C, row_term = None, np.zeros(M.shape[0])
    for start in range(0, M.shape[1], EXACT_CHUNK):
        cols = slice(start, start + EXACT_CHUNK)
        M_s, part = loops.shifted_counts(M[:, cols], offset[cols], rest[cols])
        C_part = ssyrk(1.0, M_s.T, trans=1, lower=0)  # upper triangle of M_s M_s', exact
        del M_s
        row_term += part
        C = C_part if C is None else np.add(C, C_part, dtype=np.float64)
    f = rest[poly]
    return loops.corrected_symmetric(C, row_term - 0.5 * float(f @ f), 1.0 / c), c


def _frequencies(allele_freq: Any, m: int) -> np.ndarray:
    p = np.asarray(allele_freq, dtype=float)
    if p.shape != (m,):
        raise InputError(f"allele_freq must hold one frequency per marker ({m}), got shape "
                         f"{p.shape}.")
    if not np.all((p >= 0) & (p <= 1)):
        raise InputError("allele_freq must lie in [0, 1] (frequencies of the counted allele).")
    return p


def _weights(weights: Any, m: int) -> np.ndarray:
    d = np.asarray(weights, dtype=float)
    if d.shape != (m,):
        raise InputError(f"weights must hold one weight per marker ({m}), got shape {d.shape}.")
    if not np.all(np.isfinite(d) & (d >= 0)):
        k = int(np.flatnonzero(~(np.isfinite(d) & (d >= 0)))[0])
        raise InputError(f"weights must be finite and non-negative (a marker's share of the "
                         f"genomic variance); marker {k} has {float(d[k])!r}.")
    return d


def marker_scaling(p: np.ndarray, method: str, weights: np.ndarray | None = None):
    """D_alpha and c of G = W D_alpha W' / c, written once for G and for back-solving.

    Over the markers polymorphic under p, returns (their columns, the square roots of D_alpha's
    diagonal there, c): "vanraden1" D_alpha = I, c = 2 sum p(1-p); "vanraden2" D_alpha =
    diag(1 / (2 p_k (1 - p_k))), c = m (the polymorphic markers); ``weights`` multiply D_alpha
    and leave c as it is (chapter 5).
    """
    het = p * (1.0 - p)
    poly = np.flatnonzero(het > 0)
    if len(poly) == 0:
        raise InputError("no marker is polymorphic under the allele frequencies used: G is "
                         "undefined.")
    if method == "vanraden1":
        root, c = np.ones(len(poly)), float(2.0 * het[poly].sum())
    else:
        root, c = 1.0 / np.sqrt(2.0 * het[poly]), float(len(poly))
    if weights is not None:
        root = root * np.sqrt(weights[poly])
    return poly, root, c


@dataclass(frozen=True, eq=False)
class FilterResult:
    """Markers kept by :func:`filter_markers` and a report of those removed.

    Attributes
    ----------
    M : (n, m_kept) ndarray
        Genotypes of the kept markers.
    kept : (m,) ndarray of bool
        Which of the original markers were kept.
    snp_names : (m_kept,) ndarray or None
    removed : pandas.DataFrame
        One row per removed marker: ``marker``, ``maf``, ``call_rate`` and ``reason`` (and
        ``hwe_p`` when ``filter_markers`` was given ``hwe``).
    hwe_p : (m,) ndarray or None
        Exact Hardy-Weinberg p-value of every original marker from its calls (1 for a
        monomorphic one); None unless ``filter_markers`` was given ``hwe``.
    """

    M: np.ndarray
    kept: np.ndarray
    snp_names: np.ndarray | None
    removed: pd.DataFrame
    hwe_p: np.ndarray | None = None


def filter_markers(M: Any, *, maf: float = 0.01, call_rate: float = 0.9,
                   hwe: float | None = None) -> FilterResult:
    """Remove markers with a low minor-allele frequency, a low call rate or (optionally) out of
    Hardy-Weinberg equilibrium, and report them.

    Parameters
    ----------
    M : (n, m) genotypes (array or DataFrame)
    maf : float
        Minimum minor-allele frequency min(p, 1 - p); monomorphic markers (maf 0) always go.
    call_rate : float
        Minimum share of individuals with a call.
    hwe : float, optional
        Remove markers whose exact Hardy-Weinberg p-value (from their calls) is below this
        (e.g. 1e-6); markers removed for another reason keep that reason. None (the default):
        no test, and the result is the same as without the argument.

    Raises
    ------
    InputError
        ``hwe`` outside [0, 1].

    Notes
    -----
    The Hardy-Weinberg test is the exact test of Wigginton, Cutler & Abecasis (2005), two-sided
    (the het counts no more likely than the one observed, ties within a relative 1e-7 included),
    conditional on the marker's called individuals and allele counts. It assumes unrelated,
    randomly mated individuals: in a selected population of families many sound markers deviate,
    so a strict threshold (1e-6 or lower) is the safer choice; a marker far out of equilibrium
    is more often a genotyping artefact (a null allele, a cluster called wrongly) than biology.

    Examples
    --------
    >>> import numpy as np
    >>> res = filter_markers(np.array([[0, 1, 2], [0, 2, np.nan], [0, 1, 0]]))
    >>> res.kept.tolist(), res.removed["reason"].tolist()
    ([False, True, False], ['monomorphic', 'call rate < 0.9'])
    """
    G = as_genotypes(M)
    called = ~np.isnan(G.M)
    rate = called.mean(axis=0)
    with np.errstate(invalid="ignore"):
        p = np.nanmean(G.M, axis=0) / 2.0
    minor = np.minimum(p, 1.0 - p)
    reason = np.full(G.M.shape[1], "", dtype=object)
    reason[minor < maf] = f"maf < {maf:g}"
    reason[minor == 0] = "monomorphic"
    reason[(reason == "") & (rate < call_rate)] = f"call rate < {call_rate:g}"
    hwe_p = None
    if hwe is not None:
        if not 0.0 <= hwe <= 1.0:
            raise InputError(f"hwe is a p-value threshold in [0, 1] (e.g. 1e-6), got {hwe!r}.")
        hwe_p = hardy_weinberg(G)
        reason[(reason == "") & (hwe_p < hwe)] = f"hwe p < {hwe:g}"
    kept = reason == ""
    names = G.snp_names if G.snp_names is not None else np.arange(G.M.shape[1])
    removed = pd.DataFrame({"marker": names[~kept], "maf": minor[~kept],
                            "call_rate": rate[~kept], "reason": reason[~kept].astype(str)})
    if hwe_p is not None:
        removed.insert(3, "hwe_p", hwe_p[~kept])
    return FilterResult(G.M[:, kept], kept,
                        None if G.snp_names is None else G.snp_names[kept], removed, hwe_p)


def hardy_weinberg(M: Any) -> np.ndarray:
    """Exact Hardy-Weinberg p-value of each marker from its calls (Wigginton et al. 2005).

    Parameters
    ----------
    M : (n, m) genotypes (array or DataFrame)

    Returns
    -------
    (m,) ndarray
        Two-sided p-values; 1 for a monomorphic marker.

    Examples
    --------
    >>> import numpy as np
    >>> M = np.array([[0, 0], [0, 1], [2, 1], [2, 1]])  # no heterozygote at the first marker
    >>> hardy_weinberg(M).round(4).tolist()  # 3/35: P(0 het) = 3/35, P(2) = 24/35, P(4) = 8/35
    [0.0857, 1.0]
    """
    G = as_genotypes(M)
    counts = [np.count_nonzero(G.M == g, axis=0).astype(np.int64) for g in (0.0, 1.0, 2.0)]
    return hwe_exact(counts[1], counts[0], counts[2])
