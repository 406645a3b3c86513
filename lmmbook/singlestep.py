"""Single-step GBLUP: H^-1 from A^-1, G and A22, blending and tuning, the APY inverse (chapter 9).

The relationship matrix H of Legarra et al. (2009) joins genotyped and ungenotyped animals; its
inverse (Aguilar et al. 2010; Christensen & Lund 2010) differs from A^-1 only in the block of the
genotyped animals:

    H^-1 = A^-1 + [[0, 0], [0, tau G_t^-1 - omega A22^-1]]        (chapter 9, eq-h-inverse)

with G_t = a + b G_b, G_b = (1 - blend) G + blend A22 (Chen et al. 2011: a and b put G on the
scale of A22). The APY inverse (Misztal et al. 2014) replaces G_t^-1 by a form that is sparse
outside a core of animals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _checks, markers, mme
from . import _marker_loops as marker_loops
from .errors import (
    DuplicateIdError,
    InputError,
    LmmbookWarning,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    UnknownIdError,
    format_ids,
)
from .pedigree import Pedigree

__all__ = ["APYInverse", "SSGBLUPResult", "TunedG", "H_inverse", "apy_inverse", "ssgblup",
           "tune_genomic", "MIN_CORRELATION", "REML_MAX_ANIMALS"]

#: Default of ``min_correlation``: G and A22 that agree less than this are refused.
MIN_CORRELATION = 0.3

#: ``ssgblup`` estimates the variances by REML (through the dense H) up to this many animals.
REML_MAX_ANIMALS = 5_000


# --- G on the scale of A22 ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TunedG:
    """G blended with A22 and tuned to its scale (chapter 9, eq-tuning).

    Attributes
    ----------
    G_t : (n_g, n_g) ndarray
        a + b G_b with G_b = (1 - blend) G + blend A22.
    a, b : float
        The tuning coefficients (0 and 1 without tuning).
    blend : float
    diagonal_correlation, offdiagonal_correlation : float
        Correlation of G's and A22's diagonal elements, and of their elements off the diagonal
        (NaN when one side does not vary, e.g. no genotyped animal is inbred).
    """

    G_t: np.ndarray
    a: float
    b: float
    blend: float
    diagonal_correlation: float
    offdiagonal_correlation: float


def tune_genomic(G: Any, A22: Any, *, blend: float = 0.0, tune: Literal["mean"] | None = "mean",
                 min_correlation: float | None = MIN_CORRELATION) -> TunedG:
    """Blend G with A22 and put it on A22's scale: G_t = a + b [(1 - blend) G + blend A22].

    Parameters
    ----------
    G, A22 : (n_g, n_g) array_like
        Genomic and pedigree relationships of the same animals, in the same order.
    blend : float in [0, 1)
        Weight of A22 in G_b (0.05 is common: it makes G_b invertible).
    tune : {"mean", None}
        "mean": a and b make the mean diagonal and the mean of all elements of G_t equal to those
        of A22 (Chen et al. 2011; Vitezica et al. 2011 for the mean of all elements); None: a = 0,
        b = 1.
    min_correlation : float or None
        Refuse G when its elements off the diagonal correlate with A22's less than this (None: no
        check). IDs swapped between the genotype and pedigree files are the usual cause. The
        correlation of the diagonals is reported but not checked: it measures how well markers
        and pedigree agree on inbreeding, which varies little in shallow pedigrees (correct
        genotypes of simulated five-generation populations gave 0.2-0.5).

    Returns
    -------
    TunedG

    Raises
    ------
    InputError
        G and A22 disagree (the correlations are given), blend outside [0, 1), an unknown tune.

    Notes
    -----
    Chapter 9, eq-tuning: with d and m the mean diagonal and the mean of all elements,
    b = (d_A - m_A) / (d_Gb - m_Gb) and a = m_A - b m_Gb. On Mrode & Pocrnic's (2023) Example 12.1,
    a = 0.202 and b = 0.709.

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> G = np.array([[0.9, -0.3], [-0.3, 0.9]])
    >>> A22 = np.array([[1.0, 0.25], [0.25, 1.0]])
    >>> t = lmmbook.tune_genomic(G, A22, min_correlation=None)
    >>> round(t.a, 4), round(t.b, 4)
    (0.4375, 0.625)
    >>> np.round(t.G_t, 4).tolist()  # two animals: the two means fix every element
    [[1.0, 0.25], [0.25, 1.0]]
    """
    G = _square("G", G)
    A22 = _square("A22", A22)
    if G.shape != A22.shape:
        raise ShapeMismatchError(f"G is {G.shape} and A22 {A22.shape}: they must be the "
                                 "relationships of the same genotyped animals.")
    blend = _blend(blend)
    off = ~np.eye(len(G), dtype=bool)
    r_diag = _correlation(np.diag(G), np.diag(A22))
    r_off = _correlation(G[off], A22[off]) if len(G) > 1 else np.nan
    _agree(r_diag, r_off, min_correlation)
    G_b = (1.0 - blend) * G + blend * A22 if blend else G
    a, b = _tuning(tune, _means(G_b), _means(A22))
    return TunedG(_checks.frozen(a + b * G_b), a, b, blend, r_diag, r_off)


def _means(K: np.ndarray) -> tuple[float, float]:
    """(mean diagonal, mean of all elements)."""
    return float(np.mean(np.diag(K))), float(np.mean(K))


def _tuning(tune, G_means, A_means) -> tuple[float, float]:
    if tune is None:
        return 0.0, 1.0
    if tune != "mean":
        raise InputError(f"tune must be 'mean' or None, got {tune!r}.")
    (d_G, m_G), (d_A, m_A) = G_means, A_means
    if d_G - m_G <= 0:
        raise InputError("G's mean diagonal is not above the mean of its elements, so it cannot "
                         "be tuned to A22 (a G of identical genomes?). Check the genotypes.")
    b = (d_A - m_A) / (d_G - m_G)
    return float(m_A - b * m_G), float(b)


def _blend(blend: float) -> float:
    blend = float(blend)
    if not 0.0 <= blend < 1.0:
        raise InputError(f"blend must be in [0, 1) (the weight of A22 in G_b), got {blend!r}.")
    return blend


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) <= 1e-12 or np.ptp(y) <= 1e-12:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _agree(r_diag: float, r_off: float, minimum: float | None) -> None:
    """Refuse G whose relationships (off the diagonal) disagree with the pedigree's; the
    diagonal's correlation is only reported (see tune_genomic)."""
    if minimum is None:
        return
    for r, what in ((r_off, "elements off the diagonal"),):
        if np.isfinite(r) and r < minimum:
            raise InputError(
                f"G and A22 disagree: the correlation of their {what} is {r:.3f}, below "
                f"min_correlation = {minimum:g}. Genotypes attached to the wrong animals (IDs "
                "swapped or shifted between the genotype and the pedigree files) are the usual "
                "cause; check the IDs, the parentage of the animals whose G and A22 differ most, "
                "or pass min_correlation=None to go on anyway."
            )


def _smallest_eigenvalue(K: np.ndarray) -> str:
    """The smallest eigenvalue of K for a message: "0 up to rounding" when it is at the level of
    rounding (its digits would differ from one machine to another)."""
    lam = np.linalg.eigvalsh(K)
    if abs(lam[0]) <= 1e-10 * max(abs(lam[-1]), 1e-300):
        return "0 up to rounding"
    return f"{lam[0]:.3g}"


def _square(name: str, K: Any) -> np.ndarray:
    labelled = _checks.matrix(name, K)
    K = _checks.dense(labelled.values)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ShapeMismatchError(f"{name} must be square, got shape {K.shape}.")
    _checks.symmetric(name, K)
    return K


# --- the APY inverse ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class APYInverse:
    """The APY inverse of G (chapter 9, eq-apy), kept in the parts it is made of.

    G_APY^-1 = [[G_cc^-1 + P M^-1 P', -P M^-1], [-M^-1 P', M^-1]] with P = G_cc^-1 G_cn and
    M = diag(m), m_i = g_ii - g_ic G_cc^-1 g_ci for the non-core animals (Misztal et al. 2014).
    Memory is n_c^2 + n_c n_n + n_n numbers, never n_g^2; rows and columns are those of G
    (``core`` and ``noncore`` say where each part sits).

    Attributes
    ----------
    core, noncore : ndarray of int
        Rows of G in the core and out of it.
    G_cc_inv : (n_c, n_c) ndarray
    P : (n_c, n_n) ndarray
    m : (n_n,) ndarray
        The diagonal of M_nn.
    """

    core: np.ndarray
    noncore: np.ndarray
    G_cc_inv: np.ndarray
    P: np.ndarray
    m: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        n = len(self.core) + len(self.noncore)
        return n, n

    def __matmul__(self, x: Any) -> np.ndarray:
        """G_APY^-1 x for a vector or a matrix of columns x: O(n_c n) work, no n x n matrix."""
        x = np.asarray(x, dtype=float)
        x_c, x_n = x[self.core], x[self.noncore]
        t = ((x_n - self.P.T @ x_c).T / self.m).T
        out = np.empty_like(x)
        out[self.core] = self.G_cc_inv @ x_c - self.P @ t
        out[self.noncore] = t
        return out

    def diagonal(self) -> np.ndarray:
        out = np.empty(self.shape[0])
        out[self.core] = np.diag(self.G_cc_inv) + (self.P**2 / self.m) @ np.ones(len(self.m))
        out[self.noncore] = 1.0 / self.m
        return out

    def toarray(self) -> np.ndarray:
        """The dense (n_g, n_g) matrix, for small examples."""
        out = self @ np.eye(self.shape[0])
        return 0.5 * (out + out.T)  # exactly symmetric (the blocks round differently)

    def __array__(self, dtype=None, copy=None):
        return self.toarray().astype(dtype) if dtype is not None else self.toarray()


def apy_inverse(G: Any, core: Any, *, ids: Any = None) -> APYInverse:
    """The APY inverse of a genomic relationship matrix for a core of animals.

    Parameters
    ----------
    G : (n_g, n_g) array_like or pandas.DataFrame
        Genomic relationships (blended and tuned, or not). Only its core rows, core columns and
        diagonal are read.
    core : sequence
        The core animals: IDs when ``ids`` is given or G is a DataFrame (its index), else rows.
    ids : (n_g,) array_like, optional

    Returns
    -------
    APYInverse

    Raises
    ------
    UnknownIdError, DuplicateIdError
        A core animal is not among the rows of G, or listed twice.
    NotPositiveDefiniteError
        G_cc is singular (the core has more animals than G has independent dimensions: pick a
        smaller core or blend G), or a non-core animal is fully explained by the core (m_i <= 0).

    Notes
    -----
    Chapter 9, eq-apy; Misztal et al. (2014), Mrode & Pocrnic (2023) Example 12.2.

    Examples
    --------
    With every animal in the core, the APY inverse is the inverse:

    >>> import numpy as np, lmmbook
    >>> G = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    >>> np.allclose(lmmbook.apy_inverse(G, [0, 1, 2]).toarray(), np.linalg.inv(G))
    True
    >>> inv = lmmbook.apy_inverse(G, [0])  # non-core 1 and 2: conditionally independent
    >>> round(float(inv.toarray()[1, 2]), 12)
    0.0
    """
    labelled = _checks.matrix("G", G)
    G = _square("G", G)
    if ids is None and labelled.rows is not None:
        ids = labelled.rows
    core_rows = _core_rows(core, ids, len(G))
    noncore = np.setdiff1d(np.arange(len(G)), core_rows)
    return _apy(G[np.ix_(core_rows, core_rows)], G[np.ix_(noncore, core_rows)],
                np.diag(G)[noncore], core_rows, noncore,
                None if ids is None else np.asarray(ids)[noncore])


def _core_rows(core: Any, ids: Any, n: int) -> np.ndarray:
    core = np.atleast_1d(np.asarray(core, dtype=object if ids is not None else None))
    if len(core) == 0:
        raise InputError("the APY core is empty: give at least one core animal.")
    _checks.unique_ids("the APY core", pd.Index(core))  # by ID, before IDs become rows
    if ids is not None:
        index = pd.Index(np.asarray(ids))
        _checks.unique_ids("ids", index)
        rows = index.get_indexer(pd.Index(core))
        if (rows < 0).any():
            raise UnknownIdError(f"core animal(s) {format_ids(core[rows < 0])} are not among the "
                                 "genotyped animals; the APY core must be a subset of them.")
    else:
        if not np.issubdtype(core.dtype, np.integer):
            raise InputError("core lists rows of G (integers) when G has no IDs; pass ids= to "
                             "name the core animals by ID.")
        rows = core.astype(np.int64)
        if ((rows < 0) | (rows >= n)).any():
            raise UnknownIdError(f"core rows {format_ids(rows[(rows < 0) | (rows >= n)])} are "
                                 f"outside G's {n} rows.")
    _checks.unique_ids("the APY core", pd.Index(rows))
    return np.sort(rows)


def _apy(G_cc, G_nc, g_nn, core, noncore, noncore_ids) -> APYInverse:
    try:
        L = la.cholesky(G_cc, lower=True)
        if _zero_pivot(np.diag(L), G_cc):
            raise la.LinAlgError
    except la.LinAlgError:
        lam = np.linalg.eigvalsh(G_cc)
        raise NotPositiveDefiniteError(
            f"G_cc of the APY core ({len(core)} animals) is singular (smallest eigenvalue "
            f"{_smallest_eigenvalue(G_cc)}): the core has more animals than G has independent "
            "dimensions "
            f"(about {int(np.sum(lam > 1e-8 * lam[-1]))} here). Choose a smaller core, or blend "
            "G with A22 first."
        ) from None
    G_cc_inv = la.cho_solve((L, True), np.eye(len(core)))
    P = la.cho_solve((L, True), G_nc.T)
    m = g_nn - np.einsum("ij,ij->j", G_nc.T, P)
    small = m <= 1e-10 * max(float(np.mean(np.diag(G_cc))), 1e-300)
    if small.any():
        which = noncore_ids[small] if noncore_ids is not None else noncore[small]
        raise NotPositiveDefiniteError(
            f"non-core animal(s) {format_ids(which)} are fully explained by the core (m_i <= 0): "
            "their genomes are combinations of the core's. Put them in the core, or blend G with "
            "A22 first.")
    frozen = _checks.frozen
    return APYInverse(frozen(core), frozen(noncore), frozen(G_cc_inv), frozen(P), frozen(m))


# --- H^-1 -----------------------------------------------------------------------------------


def H_inverse(pedigree: Pedigree, G: Any, ids: Any = None, *, blend: float = 0.0,
              tune: Literal["mean"] | None = None, tau: float = 1.0, omega: float = 1.0,
              core: Any = None, min_correlation: float | None = MIN_CORRELATION
              ) -> sp.csc_array:
    """The inverse of the single-step relationship matrix H, over every animal of the pedigree.

    Parameters
    ----------
    pedigree : Pedigree
    G : (n_g, n_g) array_like or pandas.DataFrame
        Genomic relationships of the genotyped animals (a DataFrame's index gives ``ids``).
    ids : (n_g,) array_like
        The genotyped animals, the rows of G; all must be in the pedigree.
    blend, tune, min_correlation
        As for :func:`tune_genomic` (here tune defaults to None: G as given).
    tau, omega : float
        Weights of G_t^-1 and A22^-1 (1 and 1 in the single-step model itself; other values are
        used against bias, e.g. omega < 1).
    core : sequence of IDs, optional
        An APY core: G_t^-1 is replaced by its APY inverse (:func:`apy_inverse`).

    Returns
    -------
    scipy.sparse.csc_array
        (n, n) in the order of ``pedigree.ids`` (like ``Pedigree.A_inverse()``): A^-1 plus the
        dense block tau G_t^-1 - omega A22^-1 of the genotyped animals.

    Raises
    ------
    UnknownIdError, DuplicateIdError
        A genotyped ID is not in the pedigree, or is listed twice (named).
    NotPositiveDefiniteError
        G_t stays singular (give ``blend`` > 0), or A22 is singular (an animal genotyped twice
        under two IDs, or clones).
    InputError
        G and A22 disagree (see :func:`tune_genomic`).

    Notes
    -----
    Chapter 9, eq-h-inverse; Aguilar et al. (2010), Christensen & Lund (2010).

    Examples
    --------
    With G = A22, H is A:

    >>> import numpy as np, lmmbook
    >>> ped = lmmbook.Pedigree(animal=[1, 2, 3, 4], sire=[0, 0, 1, 1], dam=[0, 0, 2, 2])
    >>> A22 = ped.A22([3, 4])
    >>> H_inv = lmmbook.H_inverse(ped, A22, [3, 4], min_correlation=None)
    >>> np.allclose(H_inv.toarray(), ped.A_inverse().toarray())
    True
    """
    part = _Genotyped.of(pedigree, G, ids)
    A22 = pedigree.A22(part.ids)
    tuned = tune_genomic(part.G, A22, blend=blend, tune=tune, min_correlation=min_correlation)
    G_t_inv = (apy_inverse(tuned.G_t, core, ids=part.ids).toarray() if core is not None
               else _spd_inverse(tuned.G_t, _what_G(blend, tune), _G_HINT))
    A22_inv = _spd_inverse(A22, "A22", _A22_HINT)
    block = float(tau) * G_t_inv - float(omega) * A22_inv
    return _add_block(pedigree.A_inverse(), pedigree.index(part.ids), block)


_G_HINT = ("A G from fewer markers than animals, or from relatives with identical genotypes, is "
           "singular: blend it with A22 (blend=0.05 is common).")
_A22_HINT = ("Two IDs of the same animal, or clones in the pedigree, make A22 singular; check "
             "the genotyped IDs for duplicates.")


def _what_G(blend: float, tune: str | None) -> str:
    """How a message names the G that is inverted."""
    if blend and tune:
        return "G_t (G blended with A22 and tuned)"
    if blend:
        return "G_b (G blended with A22)"
    return "G_t (G tuned to A22)" if tune else "G"


def _spd_inverse(K: np.ndarray, what: str, hint: str) -> np.ndarray:
    """K^-1 of a symmetric positive definite K through its Cholesky factor (LAPACK potrf and
    potri: n^3 flops, half those of an LU inverse)."""
    # K.T of a symmetric C-ordered K is K in Fortran order: LAPACK's copy need not transpose
    c, info = la.lapack.dpotrf(K.T if K.flags.c_contiguous else K, lower=1)
    if info != 0 or _zero_pivot(np.diag(c), K):
        raise NotPositiveDefiniteError(
            f"{what} is not positive definite (smallest eigenvalue {_smallest_eigenvalue(K)}). "
            f"{hint}")
    inv, info = la.lapack.dpotri(c, lower=1, overwrite_c=1)  # in place of c, a copy of K
    return marker_loops.mirror_upper(inv.T)  # inv's lower triangle is inv.T's upper (C order)


def _zero_pivot(L_diag: np.ndarray, K: np.ndarray) -> bool:
    """Whether a Cholesky factor that did not fail is that of a singular matrix: rounding can
    leave a last pivot of about n eps max K_ii instead of a failure; below 1000 times that, the
    inverse would be noise."""
    return bool(np.min(L_diag**2) <= 1e3 * len(K) * np.finfo(float).eps * np.max(np.diag(K)))


def _add_block(A_inv: sp.csc_array, rows: np.ndarray, block: np.ndarray) -> sp.csc_array:
    r, c = np.meshgrid(rows, rows, indexing="ij")
    extra = sp.csc_array((block.ravel(), (r.ravel(), c.ravel())), shape=A_inv.shape)
    return sp.csc_array(A_inv + extra)


@dataclass(frozen=True)
class _Genotyped:
    """The genotyped animals: their IDs and G, checked against the pedigree."""

    ids: np.ndarray
    G: np.ndarray | None

    @classmethod
    def of(cls, pedigree: Pedigree, G: Any, ids: Any) -> _Genotyped:
        labelled = _checks.matrix("G", G)
        if ids is None:
            if labelled.rows is None:
                raise InputError("give ids=, the genotyped animals (the rows of G).")
            ids = labelled.rows
        ids = _genotyped_ids(pedigree, ids)
        G = _square("G", G)
        _checks.same_length("ids", len(G), "G", len(ids), unit="entries")
        return cls(ids, G)


def _genotyped_ids(pedigree: Pedigree, ids: Any) -> np.ndarray:
    ids = np.asarray(ids)
    _checks.unique_ids("the genotyped IDs", pd.Index(ids))
    try:
        pedigree.index(ids)
    except UnknownIdError as exc:
        raise UnknownIdError(f"genotyped animal(s): {exc}") from None
    return ids


# --- ssGBLUP --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SSGBLUPResult:
    """Single-step GBLUP: variances, BLUE, and GEBVs of every animal of the pedigree.

    Attributes
    ----------
    b : (p,) ndarray
    u : (n,) ndarray
        GEBV of every animal, in ``pedigree.ids`` order (genotyped or not, phenotyped or not).
    ids : (n,) ndarray
    genotyped : (n,) ndarray of bool
    sigma2_u, sigma2_e, h2 : float
    pev, reliability : (n,) ndarray or None
        From the inverse of the MME ("direct" with at most ``lmmbook.mme.PEV_AUTO_MAX_LEVELS``
        animals); None otherwise.
    tuning : (float, float)
        a and b of G_t = a + b G_b.
    blend : float
    core : ndarray or None
        The APY core (IDs), if any.
    correlations : (float, float)
        Of G's and A22's diagonals and off-diagonal elements (NaN when not computed or undefined).
    fixed_names : (p,) ndarray
    n_obs : int
    estimated : bool
        Whether the variances were estimated (REML).
    loglik : float
        REML log-likelihood when estimated, else NaN.
    method : str
    n_iter : int or None
        PCG iterations.
    residuals : ndarray or None
        PCG relative residuals, one per iteration.
    tau, omega : float
        The weights of G_t^-1 and A22^-1 in H^-1.
    genotype_ids : (n_g,) ndarray or None
        The genotyped animals in the order of the rows of M.
    allele_freq : (m,) ndarray or None
        The allele frequencies G was centred with.
    pedigree : Pedigree or None
    X : (n, p) ndarray or None
        The fixed effects in ``ids`` order.
    y : (n,) ndarray or None
        The records in ``ids`` order, NaN for an animal without one. With ``pedigree``, ``X``,
        ``genotype_ids`` and ``allele_freq``, what :func:`lmmbook.gwas` needs to rebuild the MME
        and the PEV covariances of the genotyped animals.
    """

    b: np.ndarray
    u: np.ndarray
    ids: np.ndarray
    genotyped: np.ndarray
    sigma2_u: float
    sigma2_e: float
    h2: float
    pev: np.ndarray | None
    reliability: np.ndarray | None
    tuning: tuple[float, float]
    blend: float
    core: np.ndarray | None
    correlations: tuple[float, float]
    fixed_names: np.ndarray
    n_obs: int
    estimated: bool
    loglik: float
    method: str
    n_iter: int | None
    residuals: np.ndarray | None
    tau: float = 1.0
    omega: float = 1.0
    genotype_ids: np.ndarray | None = None
    allele_freq: np.ndarray | None = None
    pedigree: Pedigree | None = None
    X: np.ndarray | None = None
    y: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """GEBV, genotyped flag (and PEV, reliability when computed) indexed by ID."""
        cols = {"gebv": self.u, "genotyped": self.genotyped}
        if self.pev is not None:
            cols |= {"pev": self.pev, "reliability": self.reliability}
        return pd.DataFrame(cols, index=pd.Index(self.ids, name="id"))


def ssgblup(
    y: Any,
    X: Any,
    pedigree: Pedigree,
    M: Any,
    ids: Any = None,
    *,
    sigma2_u: float | None = None,
    sigma2_e: float | None = None,
    blend: float = 0.05,
    tune: Literal["mean"] | None = "mean",
    tau: float = 1.0,
    omega: float = 1.0,
    core: Any = None,
    method: Literal["direct", "pcg"] = "direct",
    compute_pev: bool | None = None,
    allele_freq: Any = None,
    min_correlation: float | None = MIN_CORRELATION,
    tol: float = 1e-8,
    maxiter: int | None = None,
) -> SSGBLUPResult:
    """Single-step GBLUP: the animal model with H in place of A (chapter 9).

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        One record per animal: a vector in ``pedigree.ids`` order (NaN = no record), or a Series
        indexed by animal ID holding only the recorded animals. Phenotyped animals need not be
        genotyped, and genotyped animals need not be phenotyped.
    X : (n, p) array_like or pandas.DataFrame
        Fixed effects, one row per animal of the pedigree (a DataFrame indexed by ID is joined;
        rows of animals without a record are not used).
    pedigree : Pedigree
    M : (n_g, m) array_like or pandas.DataFrame
        Genotypes (0/1/2, NaN missing) of the genotyped animals; a DataFrame's index gives ``ids``,
        and so does a reader's result (:func:`lmmbook.read_plink` ...).
    ids : (n_g,) array_like
        The genotyped animals, the rows of M.
    sigma2_u, sigma2_e : float, optional
        Both, or neither: then REML estimates them through the dense H (pedigrees of at most
        ``REML_MAX_ANIMALS`` animals).
    blend, tune, min_correlation
        As for :func:`tune_genomic`.
    tau, omega : float
        As for :func:`H_inverse`.
    core : sequence of IDs, optional
        An APY core among the genotyped animals: G_t^-1 in its APY form, from the genotypes of
        the core and the diagonal of the rest (G is never formed whole).
    method : {"direct", "pcg"}
        "direct" factorises the MME (sparse LU), with PEV and reliabilities for up to
        ``lmmbook.mme.PEV_AUTO_MAX_LEVELS`` animals. "pcg" iterates on them and never forms H^-1:
        A^-1 is sparse; G_t^-1 (dense, or its APY form) and A22^-1 (by solves with the sparse
        A^-1 of the genotyped animals' ancestors) are applied as operators.
    compute_pev : bool, optional
        "direct": whether to compute PEV and reliabilities (by default up to
        ``lmmbook.mme.PEV_AUTO_MAX_LEVELS`` animals); they cost n solves with the factorised MME,
        often more than the solution itself. Not available with "pcg".
    allele_freq : (m,) array_like, optional
        Frequencies to centre G with (by default those of the genotyped animals).
    tol, maxiter
        "pcg": stop at ||C x - r|| <= tol ||r||, or after maxiter iterations.

    Returns
    -------
    SSGBLUPResult

    Raises
    ------
    UnknownIdError, DuplicateIdError
        A genotyped or phenotyped animal is not in the pedigree, an ID is repeated.
    InputError, NotPositiveDefiniteError, ShapeMismatchError
        As for :func:`H_inverse` and :func:`apy_inverse`; a REML fit of too large a pedigree.

    Warns
    -----
    LmmbookWarning
        The APY core's unblended G_cc is singular: the core is larger than the number of
        independent dimensions of G (blending alone makes it invertible).

    Notes
    -----
    The MME of chapter 1 with K^-1 = H^-1 (chapter 9, eq-h-inverse): G = W W' / (2 sum p (1 - p))
    (VanRaden's first method), G_t as in :func:`tune_genomic`. Models with more random effects
    (repeated records, maternal effects) take ``lmmbook.H_inverse(...)`` as the K_inv of the
    animal effect in :func:`lmmbook.solve_mme`.

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> ped = lmmbook.Pedigree(animal=[1, 2, 3, 4, 5], sire=[0, 0, 1, 1, 3], dam=[0, 0, 2, 2, 4])
    >>> M = np.array([[0, 1, 2, 1], [1, 1, 0, 2], [2, 0, 1, 1]])
    >>> y = pd.Series([1.0, 2.5, 0.5], index=[2, 3, 4])  # animal 2 is not genotyped
    >>> fit = lmmbook.ssgblup(y, np.ones((5, 1)), ped, M, ids=[3, 4, 5], sigma2_u=1.0,
    ...                       sigma2_e=1.0, min_correlation=None)
    >>> fit.ids.tolist(), fit.genotyped.tolist()
    ([1, 2, 3, 4, 5], [False, False, True, True, True])
    """
    if method not in ("direct", "pcg"):
        raise InputError(f"method must be 'direct' or 'pcg', got {method!r}.")
    if method == "pcg" and compute_pev:
        raise InputError("compute_pev=True needs the inverse of the MME, which 'pcg' never forms: "
                         "use method='direct'.")
    if (sigma2_u is None) != (sigma2_e is None):
        raise InputError("give both sigma2_u and sigma2_e, or neither (then REML estimates them).")
    n = len(pedigree)
    all_ids = pd.Index(pedigree.ids)
    if ids is None and isinstance(M, pd.DataFrame):
        ids = M.index
    elif ids is None and hasattr(M, "to_genotypes"):  # a file reader's result
        ids = M.to_genotypes().ids
    if ids is None:
        raise InputError("give ids=, the genotyped animals (the rows of M).")
    g_ids = _genotyped_ids(pedigree, ids)
    geno = markers.as_genotypes(M)
    _checks.same_length("ids", geno.M.shape[0], "M", len(g_ids), unit="entries")
    y_all = _records_by_animal(y, all_ids, n)
    X_all, fixed_names = _checks.design_to_ids(X, all_ids, n, y_all, of="the pedigree")
    observed = np.isfinite(y_all)
    if observed.sum() <= X_all.shape[1]:
        raise InputError(f"ssGBLUP needs more records than fixed effects: {int(observed.sum())} "
                         f"and {X_all.shape[1]}.")
    _checks.full_column_rank("X", X_all[observed], None)
    g_rows = pedigree.index(g_ids)

    parts = _genomic_parts(pedigree, geno, g_ids, blend=_blend(blend), tune=tune, core=core,
                           allele_freq=allele_freq, min_correlation=min_correlation)
    loglik = np.nan
    if sigma2_u is None:
        s2u, s2e, loglik = _reml(y_all, X_all, pedigree, g_rows, parts, tau, omega)
    else:
        s2u = _checks.positive_variance("sigma2_u", sigma2_u)
        s2e = _checks.positive_variance("sigma2_e", sigma2_e)

    pev = reliability = n_iter = residuals = None
    if method == "direct":
        H_inv = _add_block(pedigree.A_inverse(), g_rows, parts.dense_block(tau, omega))
        fit = mme.solve_mme(y_all, X_all, sp.identity(n, format="csr"), H_inv, s2u, s2e,
                            compute_pev=compute_pev)
        b, u, pev, reliability = fit.b, fit.u, fit.pev, fit.reliability
    else:
        b, u, residuals = _pcg(y_all, X_all, observed, pedigree, g_rows, parts, tau, omega,
                               s2e / s2u, tol, maxiter)
        n_iter = len(residuals) - 1
    genotyped = np.zeros(n, dtype=bool)
    genotyped[g_rows] = True
    frozen = _checks.frozen
    return SSGBLUPResult(
        b=frozen(b), u=frozen(u), ids=frozen(pedigree.ids), genotyped=frozen(genotyped),
        sigma2_u=float(s2u), sigma2_e=float(s2e), h2=float(s2u / (s2u + s2e)),
        pev=frozen(pev), reliability=frozen(reliability), tuning=(parts.a, parts.b),
        blend=parts.blend, core=None if core is None else frozen(g_ids[parts.apy.core]),
        correlations=parts.correlations, fixed_names=frozen(fixed_names),
        n_obs=int(observed.sum()), estimated=sigma2_u is None, loglik=float(loglik),
        method=method, n_iter=n_iter, residuals=frozen(residuals), tau=float(tau),
        omega=float(omega), genotype_ids=frozen(g_ids), pedigree=pedigree, X=frozen(X_all),
        y=frozen(y_all), allele_freq=frozen(geno.allele_freq if allele_freq is None else
                                            markers._frequencies(allele_freq, geno.M.shape[1])),
    )


def _records_by_animal(y: Any, all_ids: pd.Index, n: int) -> np.ndarray:
    """y in pedigree order: one record per animal, every recorded animal in the pedigree."""
    if isinstance(y, pd.Series):
        repeated = y.index[y.index.duplicated()].unique()
        if len(repeated):
            raise DuplicateIdError(
                f"{format_ids(repeated)} {'has' if len(repeated) == 1 else 'have'} more than one "
                "record in y; ssgblup takes one record per animal. For repeated records, fit "
                "lmmbook.solve_mme with K_inv=lmmbook.H_inverse(...) and a permanent environment "
                "effect (chapter 4), or average them into one record per animal.")
        unknown = y.index.difference(all_ids, sort=False)
        if len(unknown):
            raise UnknownIdError(
                f"{format_ids(unknown)} of y {'is' if len(unknown) == 1 else 'are'} not in the "
                f"pedigree ({n} animals). Add the animal to the pedigree (with unknown parents if "
                "need be) or drop its record.")
    return _checks.align_to_ids(y, all_ids, n, of="the pedigree")


@dataclass(frozen=True, eq=False)
class _GenomicParts:
    """What the genotyped block of H^-1 needs: G_t^-1 (dense or APY), A22 (or its ancestry),
    the tuning coefficients."""

    G_t_inv: np.ndarray | None
    apy: APYInverse | None
    A22: np.ndarray | None
    ancestry: Any
    a: float
    b: float
    blend: float
    correlations: tuple[float, float]

    def G_inv_times(self, x: np.ndarray) -> np.ndarray:
        return self.apy @ x if self.apy is not None else self.G_t_inv @ x

    def G_inv_dense(self) -> np.ndarray:
        return self.apy.toarray() if self.apy is not None else self.G_t_inv

    def A22_dense(self) -> np.ndarray:
        return self.A22 if self.A22 is not None else self.ancestry.A22()

    def dense_block(self, tau: float, omega: float) -> np.ndarray:
        """tau G_t^-1 - omega A22^-1, dense (the direct method)."""
        A22_inv = _spd_inverse(self.A22_dense(), "A22", _A22_HINT)
        return float(tau) * self.G_inv_dense() - float(omega) * A22_inv


def _genomic_parts(pedigree, geno, g_ids, *, blend, tune, core, allele_freq,
                   min_correlation) -> _GenomicParts:
    """G_t^-1 from the genotypes, without the whole G when an APY core is given."""
    p = geno.allele_freq if allele_freq is None else markers._frequencies(allele_freq,
                                                                          geno.M.shape[1])
    ancestry = pedigree._ancestry_of(g_ids)
    n_g = len(g_ids)
    one = np.zeros((len(ancestry.sire), 1))
    one[ancestry.rows, 0] = 1.0
    A_diag = 1.0 + pedigree.inbreeding()[ancestry.keep[ancestry.rows]]
    A_means = (float(np.mean(A_diag)), float(ancestry.times(one)[ancestry.rows].sum()) / n_g**2)
    if core is None:
        G, _ = markers.centred_cross_product(geno, p)  # exact float32 product if no call missing
        g_diag = np.diag(G).copy()
        G_means = (float(np.mean(g_diag)), float(np.mean(G)))
        A22 = ancestry.A22()
        correlations = (_correlation(g_diag, A_diag),
                        _offdiagonal_correlation(G, A22, np.arange(n_g)))
        _agree(*correlations, min_correlation)
        a, b = _tuning(tune, _blended(G_means, A_means, blend), A_means)
        for rows in _row_blocks(n_g, n_g):  # G_t = a + b ((1 - blend) G + blend A22), in place
            G_r = G[rows]
            if blend:
                G_r *= 1.0 - blend
                G_r += blend * A22[rows]
            G_r *= b
            G_r += a
        G_t_inv = _spd_inverse(G, _what_G(blend, tune), _G_HINT)
        return _GenomicParts(G_t_inv, None, A22, ancestry, a, b, blend, correlations)

    c = _core_rows(core, g_ids, n_g)
    nc = np.setdiff1d(np.arange(n_g), c)
    G_gc, g_diag, G_mean = _genomic_columns(geno, p, c)  # columns of G for the core
    G_cc = marker_loops.mirror_upper(G_gc[c])  # exactly symmetric
    G_nc = G_gc[nc]
    G_means = (float(np.mean(g_diag)), G_mean)
    lam = np.linalg.eigvalsh(G_cc)
    rank = int(np.sum(lam > 1e-8 * lam[-1]))
    if rank < len(c):
        warnings.warn(
            f"G_cc of the APY core ({len(c)} animals) is singular before blending: G has only "
            f"about {rank} independent dimensions among them. Blending makes it invertible, but "
            f"a core larger than that adds nothing; a core of about {rank} animals suffices.",
            LmmbookWarning, stacklevel=3)
    A_g_c = ancestry.columns(c)  # columns of A22 for the core
    correlations = (_correlation(g_diag, A_diag), _offdiagonal_correlation(G_gc, A_g_c, c))
    del G_gc
    _agree(*correlations, min_correlation)
    a, b = _tuning(tune, _blended(G_means, A_means, blend), A_means)

    def scaled(G_part, A_part):
        return a + b * ((1.0 - blend) * G_part + blend * A_part)

    apy = _apy(scaled(G_cc, A_g_c[c]), scaled(G_nc, A_g_c[nc]), scaled(g_diag[nc], A_diag[nc]),
               c, nc, g_ids[nc])
    return _GenomicParts(None, apy, None, ancestry, a, b, blend, correlations)


def _genomic_columns(geno, p, cols):
    """G[:, cols], diag(G) and the mean of all elements of G (VanRaden's first G), without the
    whole G. Without missing calls as :func:`markers.centred_cross_product`: M - round(2p) holds
    the integers -2 to 2, whose products BLAS forms exactly in single precision, and one float64
    pass corrects for the centring; with missing calls W in float64."""
    M = geno.M
    n, m = M.shape
    if not np.all(geno.col_calls == n):
        W, _, k = markers.centred_polymorphic(geno, p)
        s = W.sum(axis=0)
        return (W @ W[cols].T) / k, np.einsum("ij,ij->i", W, W) / k, float(s @ s) / k / n**2
    poly, _, k = markers.marker_scaling(p, "vanraden1")  # raises if no marker is polymorphic
    is_poly = np.zeros(m, bool)
    is_poly[poly] = True
    offset = np.where(is_poly, np.round(2.0 * p), np.nan)  # NaN: the marker is left out
    rest = 2.0 * p - offset
    f = np.where(is_poly, rest, 0.0)
    C, squares, t = np.zeros((n, len(cols))), np.zeros(n), np.zeros(n)
    s = np.zeros(m)
    for start in range(0, m, markers.EXACT_CHUNK):
        part = slice(start, start + markers.EXACT_CHUNK)
        M_s, row_term = marker_loops.shifted_counts(M[:, part], offset[part], rest[part])
        C += M_s @ M_s[cols].T  # float32, exact: integers below 2**24
        squares += np.einsum("ij,ij->i", M_s, M_s)  # exact too
        s[part] = M_s.sum(axis=0, dtype=np.float64) - n * f[part]
        t += row_term
        del M_s
    t -= 0.5 * float(f @ f)  # W W' = M_s M_s' - t 1' - 1 t'
    C -= t[:, None]
    C -= t[cols]
    C *= 1.0 / k
    return C, (squares - 2.0 * t) / k, float(s @ s) / k / n**2


def _row_blocks(n: int, width: int, numbers: int = 2**20):
    """Slices of rows of an (n, width) array, about ``numbers`` elements (8 MB) each."""
    step = max(1, numbers // max(width, 1))
    return [slice(r, min(n, r + step)) for r in range(0, n, step)]


def _offdiagonal_correlation(G_part: np.ndarray, A_part: np.ndarray, diag_rows) -> float:
    """:func:`_correlation` of the elements of G_part and A_part off the diagonal, where column j's
    diagonal element is in row diag_rows[j]: one pass over blocks of rows, without copying the
    n^2 elements (sums of deviations from the first block's means)."""
    n, width = G_part.shape
    count = n * width - len(diag_rows)
    if count < 3:
        return float("nan")
    sums = np.zeros(5)  # x, y, xx, yy, xy
    lo, hi, shift = np.full(2, np.inf), np.full(2, -np.inf), None
    for rows in _row_blocks(n, width):
        keep = np.ones((rows.stop - rows.start, width), bool)
        j = np.flatnonzero((diag_rows >= rows.start) & (diag_rows < rows.stop))
        keep[diag_rows[j] - rows.start, j] = False
        x, y = G_part[rows][keep], A_part[rows][keep]
        if len(x) == 0:
            continue
        lo = np.minimum(lo, [x.min(), y.min()])
        hi = np.maximum(hi, [x.max(), y.max()])
        if shift is None:
            shift = (x.mean(), y.mean())
        x, y = x - shift[0], y - shift[1]
        sums += [x.sum(), y.sum(), x @ x, y @ y, x @ y]
    if np.any(hi - lo <= 1e-12):
        return float("nan")
    s_x, s_y, s_xx, s_yy, s_xy = sums
    cov = s_xy - s_x * s_y / count
    return float(np.clip(cov / np.sqrt((s_xx - s_x**2 / count) * (s_yy - s_y**2 / count)),
                         -1.0, 1.0))


def _blended(G_means, A_means, blend):
    return tuple((1.0 - blend) * g + blend * a for g, a in zip(G_means, A_means, strict=True))


def _reml(y_all, X_all, pedigree, g_rows, parts, tau, omega):
    from .reml import reml  # reml imports the MME machinery: keep the import local

    n = len(pedigree)
    if n > REML_MAX_ANIMALS:
        raise InputError(
            f"REML through the dense H is limited to {REML_MAX_ANIMALS} animals (this pedigree "
            f"has {n}). Give sigma2_u and sigma2_e, e.g. estimated by REML on a subset of the "
            "data or from the literature.")
    H_inv = _add_block(pedigree.A_inverse(), g_rows, parts.dense_block(tau, omega)).toarray()
    H = _spd_inverse(H_inv, "H^-1", "With tau or omega other than 1, H^-1 may be indefinite.")
    fit = reml(y_all, X_all, None, H, method="spectral")
    return fit.sigma2_u, fit.sigma2_e, fit.loglik


class _Schur:
    """A22^-1 x = A^gg x - A^gu (A^uu)^-1 A^ug x, from the sparse A^-1 of the genotyped animals
    and their ancestors (chapter 9, eq-a22-inverse): one sparse factorisation of A^uu, then two
    triangular solves per product; the n_g x n_g A22^-1 is never formed."""

    def __init__(self, ancestry):
        A_inv = ancestry.A_inverse()
        g = ancestry.rows
        u = np.setdiff1d(np.arange(A_inv.shape[0]), g)
        A_inv = sp.csr_array(A_inv)
        self.A_gg = A_inv[g][:, g]
        self.A_gu = A_inv[g][:, u]
        self.lu = (spla.splu(sp.csc_array(A_inv[u][:, u]), permc_spec="MMD_AT_PLUS_A",
                             options={"SymmetricMode": True}) if len(u) else None)
        self.diag_upper = self.A_gg.diagonal()  # diag(A22^-1) <= diag(A^gg)

    def __matmul__(self, x):
        out = self.A_gg @ x
        if self.lu is not None:
            out -= self.A_gu @ self.lu.solve(self.A_gu.T @ x)
        return out


class _SingleStepMME:
    """C [b; u] for C = [[X'X, X'Z], [Z'X, Z'Z + lambda H^-1]] with H^-1 applied term by term."""

    def __init__(self, X_o, rows_o, A_inv, g_rows, parts, A22_inv, tau, omega, lam, n):
        self.X_o, self.rows_o, self.A_inv, self.g_rows = X_o, rows_o, A_inv, g_rows
        self.parts, self.A22_inv = parts, A22_inv
        self.tau, self.omega, self.lam, self.n, self.p = tau, omega, lam, n, X_o.shape[1]

    def H_inv_times(self, u):
        out = self.A_inv @ u
        u_g = u[self.g_rows]
        out[self.g_rows] += (self.tau * self.parts.G_inv_times(u_g)
                             - self.omega * (self.A22_inv @ u_g))
        return out

    def __matmul__(self, s):
        b, u = s[:self.p], s[self.p:]
        fitted = self.X_o @ b + u[self.rows_o]
        out = np.empty_like(s)
        out[:self.p] = self.X_o.T @ fitted
        z = np.zeros(self.n)
        z[self.rows_o] = fitted  # one record per animal: rows_o has no repeats
        out[self.p:] = z + self.lam * self.H_inv_times(u)
        return out


def _pcg(y_all, X_all, observed, pedigree, g_rows, parts, tau, omega, lam, tol, maxiter):
    n = len(pedigree)
    rows_o = np.flatnonzero(observed)
    X_o, y_o = X_all[observed], y_all[observed]
    A_inv = pedigree.A_inverse()
    A22_inv = _Schur(parts.ancestry)
    C = _SingleStepMME(X_o, rows_o, A_inv, g_rows, parts, A22_inv, float(tau), float(omega),
                       lam, n)
    rhs = np.concatenate([X_o.T @ y_o, np.bincount(rows_o, weights=y_o, minlength=n)])
    # diagonal of C, with diag(A22^-1) bounded by diag(A^gg): a preconditioner need not be exact
    diag_u = np.bincount(rows_o, minlength=n) + lam * A_inv.diagonal()
    if parts.apy is not None:
        g_inv_diag = parts.apy.diagonal()
    else:
        g_inv_diag = np.diag(parts.G_t_inv)
    diag_u[g_rows] += lam * (tau * g_inv_diag - omega * A22_inv.diag_upper)
    diag_u = np.maximum(diag_u, lam * A_inv.diagonal() * 1e-3)
    XtX_inv = np.linalg.inv(X_o.T @ X_o)
    p = X_o.shape[1]

    def precondition(r):
        return np.concatenate([XtX_inv @ r[:p], r[p:] / diag_u])

    solution, residuals = mme._pcg(C, rhs, precondition, tol,
                                   maxiter or max(1_000, min(p + n, 100_000)))
    return solution[:p], solution[p:], residuals
