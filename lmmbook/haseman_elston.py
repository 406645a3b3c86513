"""Variance components at scale: Haseman-Elston regression with randomised traces (issue 17).

Model: y = X b + W alpha + e, alpha ~ N(0, sigma2_alpha I), e ~ N(0, sigma2_e I), so that
Var(y) = sigma2_u G + sigma2_e I with G = W W' / c and sigma2_u = c sigma2_alpha (chapters 5
and 6). REML needs V^-1 or an eigendecomposition of G, O(n^3); the method of moments of Haseman
and Elston (1972, made for linkage in sib pairs), in the form that matches y y' to its
expectation after the fixed effects are projected out, needs only a few traces of A = P G P,
and those can be estimated with random probes at O(n m) work each, streaming the genotypes
block by block (RHE-reg, Wu and Sankararaman 2018, the form made for biobanks). Nothing n x n
or n x m is formed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import _checks, chunked
from .errors import InputError
from .markers import _frequencies, as_genotypes

__all__ = ["HEResult", "he_regression"]

Traces = Literal["random", "exact"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class HEResult:
    """Haseman-Elston estimates of sigma2_u and sigma2_e, with two kinds of standard error.

    Attributes
    ----------
    sigma2_u, sigma2_e, h2 : float
        Genomic variance (per unit of G = W W'/c, as in :func:`lmmbook.gblup`), residual variance
        and sigma2_u / (sigma2_u + sigma2_e). A method of moments is not held inside the parameter
        space: an estimate may be negative when the true value is near 0 (reported as it is).
    sigma2_u_se, sigma2_e_se, h2_se : float
        Sampling standard errors: the spread of the estimates over the phenotypes y drawn from the
        model at the estimates (negative ones taken as 0), for the genotypes at hand, from the
        moment equations' own covariance (Gaussian y; delta method for h2). This is the error
        that comparing with REML or with a simulated truth is about.
    sigma2_u_mc_se, sigma2_e_mc_se, h2_mc_se : float
        Monte Carlo standard errors: the extra spread that comes from estimating tr(A^2) with
        ``n_probes`` random probes rather than exactly (over the probes, for the data at hand;
        0 when ``traces="exact"``). It falls as 1 / sqrt(n_probes).
    covariance, mc_covariance : (2, 2) ndarray
        The sampling and the Monte Carlo covariance matrices of (sigma2_u, sigma2_e).
    traces : (4,) ndarray
        tr(A), tr(A^2), tr(A^3), tr(A^4) with A = P G P over the phenotyped rows: tr(A) exact,
        the others estimated from the probes (tr(A^3) and tr(A^4) enter only the sampling
        standard errors).
    trace_mc_se : (4,) ndarray
        Monte Carlo standard errors of ``traces`` (0 where exact).
    moments : (2,) ndarray
        y'P G P y and y'P y, the right-hand side of the moment equations.
    n_probes : int
        Random probes used (0 with exact traces).
    method : str
        "random" or "exact".
    n_obs, n_fixed, n_markers : int
        Phenotyped rows used, columns of X, markers polymorphic under the allele frequencies.
    c : float
        The scale of G, 2 sum p(1-p) over those markers.
    """

    sigma2_u: float
    sigma2_e: float
    h2: float
    sigma2_u_se: float
    sigma2_e_se: float
    h2_se: float
    sigma2_u_mc_se: float
    sigma2_e_mc_se: float
    h2_mc_se: float
    covariance: np.ndarray
    mc_covariance: np.ndarray
    traces: np.ndarray
    trace_mc_se: np.ndarray
    moments: np.ndarray
    n_probes: int
    method: str
    n_obs: int
    n_fixed: int
    n_markers: int
    c: float

    @property
    def sigma2_alpha(self) -> float:
        """The variance of one marker effect, sigma2_u / c (chapter 6's eq-mapping)."""
        return self.sigma2_u / self.c

    def covariance_at(self, sigma2_u: float, sigma2_e: float) -> np.ndarray:
        """The sampling covariance of (sigma2_u, sigma2_e) if y followed the model at the given
        variances (e.g. REML's), from the stored traces: the spread of HE's estimates grows with
        sigma2_u, so the standard error at the estimates can understate it where HE's estimate
        is low."""
        su = _checks.positive_variance("sigma2_u", sigma2_u)
        se = _checks.positive_variance("sigma2_e", sigma2_e)
        return _sampling_covariance(self.traces, float(self.n_obs - self.n_fixed), su, se)

    def summary(self) -> pd.DataFrame:
        """One row per parameter: the estimate, its sampling and Monte Carlo standard errors and
        their combination sqrt(se_sampling^2 + se_probes^2) (the probes are drawn independently
        of y)."""
        rows = {
            "sigma2_u": (self.sigma2_u, self.sigma2_u_se, self.sigma2_u_mc_se),
            "sigma2_e": (self.sigma2_e, self.sigma2_e_se, self.sigma2_e_mc_se),
            "h2": (self.h2, self.h2_se, self.h2_mc_se),
        }
        frame = pd.DataFrame(rows, index=["estimate", "se_sampling", "se_probes"]).T
        frame["se_total"] = np.hypot(frame["se_sampling"], frame["se_probes"])
        frame.index.name = "parameter"
        return frame


def he_regression(
    y: Any,
    X: Any,
    genotypes: Any,
    *,
    ids: Any = None,
    allele_freq: Any = None,
    traces: Traces = "random",
    probes: int = 50,
    seed: int | np.random.Generator = 0,
    cache_bytes: int = 2**29,
) -> HEResult:
    """Haseman-Elston regression: sigma2_u and sigma2_e by the method of moments, at O(n m) work.

    Parameters
    ----------
    y : (n,) array_like or pandas.Series
        Phenotypes, one per row of the genotypes; NaN = not recorded (the row leaves the fit). A
        Series indexed by ID is joined to the genotypes' IDs.
    X : (n, p) array_like, pandas.DataFrame or Incidence
        Fixed effects, one row per row of the genotypes; they are projected out.
    genotypes : (n, m) array_like, pandas.DataFrame, GenotypeData or PlinkChunks
        Counts 0/1/2, NaN for missing (mean-imputed: centred to 0). A
        :class:`lmmbook.PlinkChunks` (``read_plink(prefix, chunks=k)``) is read block by block
        and never held whole.
    ids : (n,) array_like, optional
        IDs of the rows of the genotypes (a DataFrame's index or a reader's IDs by default).
    allele_freq : (m,) array_like, optional
        Frequencies for centring, by default those of all the genotyped rows (as
        :func:`lmmbook.genomic_relationship` does).
    traces : {"random", "exact"}
        "random": tr(A^2), tr(A^3) and tr(A^4) from ``probes`` Rademacher probes, in four
        streamed passes over the genotypes with ``probes`` columns each, after the pass that
        gives y'P G P y and tr(A) exactly (and, for chunked genotypes without ``allele_freq``,
        one pass for the frequencies). "exact": from the smaller of the two Gram matrices
        (n_obs x n_obs or m x m, formed in memory, and W_o itself when n_obs < m): for small
        data and for checking the random path.
    probes : int
        Number of random probes (at least 2, so that their Monte Carlo error can be estimated).
    seed : int or numpy.random.Generator
        Seed of the probes: the result is deterministic for a given seed.
    cache_bytes : int
        Decoded blocks (int8, one byte per genotype) kept in memory between the passes, as in
        :func:`lmmbook.snp_blup`; the others are read again from the .bed on every pass.

    Returns
    -------
    HEResult

    Raises
    ------
    ShapeMismatchError, UnknownIdError, DuplicateIdError, NonFiniteError, RankDeficientError
        As for :func:`lmmbook.gblup`.
    InputError
        ``traces`` or ``probes`` not valid; too few phenotyped rows; no polymorphic marker; the
        moment equations singular (G P-orthogonal to I: e.g. every row of W equal).

    Notes
    -----
    With P the projection orthogonal to X over the n phenotyped rows (P X = 0), A = P G P and
    theta = (sigma2_u, sigma2_e), E(P y y' P) = sigma2_u A + sigma2_e P. Least squares of the
    entries of P y y' P on those of A and P (Haseman and Elston 1972 in the form of RHE-reg, Wu
    and Sankararaman 2018) gives the moment equations

        [tr(A^2)  tr(A) ] theta = [y'P G P y]
        [tr(A)    n - p ]         [y'P y    ]

    whose solution is unbiased for theta. y'P G P y = v'v / c with v = W'P y, and tr(A) =
    [tr(W_o'W_o) - tr(W_o'Q Q'W_o)] / c (Q an orthonormal basis of X, W_o the phenotyped rows)
    are exact and cost one pass; tr(A^2) = E[(A z)'(A z)] for z with independent +-1 entries
    (Hutchinson 1990), estimated by the mean over the probes. Two more passes give
    tr(A^3) = E[(A z)'A(A z)] and tr(A^4) = E[(A^2 z)'(A^2 z)], needed for the sampling
    covariance: for Gaussian y, Cov(y'B y, y'C y) = 2 tr(B V C V) with
    V = sigma2_u G + sigma2_e I, so with S the matrix above

        Var(y'PGPy)   = 2 [s_u^2 tr(A^4) + 2 s_u s_e tr(A^3) + s_e^2 tr(A^2)]
        Cov           = 2 [s_u^2 tr(A^3) + 2 s_u s_e tr(A^2) + s_e^2 tr(A)]
        Var(y'P y)    = 2 [s_u^2 tr(A^2) + 2 s_u s_e tr(A)   + s_e^2 (n - p)]

    and Var(theta_hat) = S^-1 Var(q) S^-1. The Monte Carlo covariance is that of the probes'
    tr(A^2) (their sample variance over the number of probes) carried through
    d theta / d tr(A^2) = -S^-1 e_1 sigma2_u. Work: O(n m) per probe and pass; memory: n x probes
    and m x probes, the decoded int8 blocks kept (``cache_bytes``) and one float64 block of
    centred genotypes per thread. Each pass is logged (logger ``lmmbook.haseman_elston``,
    level INFO).

    Examples
    --------
    500 animals, 300 markers, sigma2_u = sigma2_e = 1 (alpha ~ N(0, 1/c)):

    >>> import numpy as np, lmmbook
    >>> rng = np.random.default_rng(1)
    >>> M = rng.binomial(2, 0.4, size=(500, 300)).astype(float)
    >>> p = lmmbook.allele_frequencies(M)
    >>> c = 2 * float(np.sum(p * (1 - p)))
    >>> y = lmmbook.markers.center(M) @ rng.normal(0, np.sqrt(1 / c), 300) + rng.normal(0, 1, 500)
    >>> fit = lmmbook.he_regression(y, np.ones((500, 1)), M, probes=30, seed=1)
    >>> fit.summary().round(2)
               estimate  se_sampling  se_probes  se_total
    parameter
    sigma2_u       1.52         0.27       0.07      0.28
    sigma2_e       0.67         0.15       0.07      0.17
    h2             0.69         0.08       0.03      0.09
    """
    if traces not in ("random", "exact"):
        raise InputError(f"traces must be 'random' or 'exact', got {traces!r}.")
    if traces == "random" and (isinstance(probes, bool) or not isinstance(probes, int | np.integer)
                               or probes < 2):
        raise InputError(f"probes must be an integer of at least 2 (their spread gives the Monte "
                         f"Carlo error), got {probes!r}; use 30 to 100, or traces='exact'.")
    if chunked.is_chunked(genotypes):  # checked block by block as they are read
        gen_labels = getattr(genotypes, "ids", None)
    else:  # checked once here; the engine cuts the checked array into blocks
        genotypes = as_genotypes(genotypes, "genotypes")
        gen_labels = genotypes.ids
    n, m = chunked.shape_of(genotypes)
    gen_ids = _checks.row_ids(ids, gen_labels, n, "the genotypes")
    y_all = _checks.align_to_ids(y, gen_ids, n, of="the genotypes")
    X_all, _ = _checks.design_to_ids(X, gen_ids, n, y_all, of="the genotypes")
    observed = np.isfinite(y_all)
    n_obs, p = int(observed.sum()), X_all.shape[1]
    if n_obs <= p + 1:
        raise InputError(f"Haseman-Elston regression needs more phenotyped rows than fixed effects "
                         f"plus one: {n_obs} rows, {p} fixed effects.")
    y_o, X_o = y_all[observed], X_all[observed]
    _checks._finite("X", X_o, None, None)
    _checks.full_column_rank("X", X_o, None)
    Q = np.linalg.qr(X_o)[0] if p else np.zeros((n_obs, 0))
    source = _Source(genotypes, allele_freq, cache_bytes)  # the first pass over the genotypes

    def project(R: np.ndarray) -> np.ndarray:  # P R over the phenotyped rows
        return R - Q @ (Q.T @ R)

    def embed(R: np.ndarray) -> np.ndarray:  # phenotyped rows -> all n rows, 0 elsewhere
        out = np.zeros((n, R.shape[1]))
        out[observed] = R
        return out

    c = source.c
    # one pass: W'[Py, Q] gives y'PGPy and the part of tr(A) that X removes, and the rows' |w_i|^2
    Py = project(y_o[:, None])
    logger.info("Haseman-Elston: %d phenotyped rows, %d markers, %d blocks; pass 1: W'P y",
                n_obs, m, len(source.engine.rows))
    first, row_sq = source.first_pass(embed(np.hstack([Py, Q])))
    yAy = float(first[:, 0] @ first[:, 0]) / c
    yPy = float(Py[:, 0] @ Py[:, 0])
    trace_G = float(row_sq[observed].sum()) / c  # tr(G_oo), the scale of the traces below
    t1 = trace_G - float(np.sum(first[:, 1:] ** 2)) / c

    if traces == "exact":
        t2, t3, t4 = _exact_traces(source, observed, Q)
        t_se = np.zeros(4)
        n_probes, var_t2 = 0, 0.0
    else:
        rng = np.random.default_rng(seed)
        Z = rng.integers(0, 2, size=(n_obs, probes)).astype(float) * 2.0 - 1.0

        def apply_A(R: np.ndarray, pass_no: int) -> tuple[np.ndarray, np.ndarray]:
            """(W'P R, P G P R) for R over the phenotyped rows: two passes."""
            logger.info("Haseman-Elston: pass %d of 5: W'P Z (%d probes)", pass_no, probes)
            V = source.rmatmat(embed(project(R)))
            logger.info("Haseman-Elston: pass %d of 5: W V", pass_no + 1)
            return V, project(source.matmat(V)[observed]) / c

        _, AZ = apply_A(Z, 2)
        V2, A2Z = apply_A(AZ, 4)
        per_probe = np.vstack([np.sum(AZ**2, axis=0), np.sum(V2**2, axis=0) / c,
                               np.sum(A2Z**2, axis=0)])
        t2, t3, t4 = per_probe.mean(axis=1)
        t_se = np.concatenate([[0.0], per_probe.std(axis=1, ddof=1) / np.sqrt(probes)])
        n_probes, var_t2 = int(probes), float(t_se[1] ** 2)

    dof = float(n_obs - p)
    S = np.array([[t2, t1], [t1, dof]])
    # S is singular when A = 0 (X explains all of G) or A is a multiple of P (G = I within what
    # X leaves); the relative tolerances stand for round-off in sums of n terms
    if t1 <= 1e-10 * trace_G or t2 * dof - t1**2 <= 1e-10 * t2 * dof:
        raise InputError("the moment equations are singular: after the fixed effects, G is 0 or "
                         "a multiple of the identity over the phenotyped rows (tr(A^2) (n - p) = "
                         "tr(A)^2), so sigma2_u and sigma2_e cannot be told apart. Check that the "
                         "animals' genotypes differ and that X does not absorb them.")
    S_inv = np.linalg.inv(S)
    q = np.array([yAy, yPy])
    theta = S_inv @ q
    cov = _sampling_covariance((t1, t2, t3, t4), dof, *np.clip(theta, 0.0, None))
    J = -S_inv[:, 0] * theta[0]  # d theta / d tr(A^2)
    mc_cov = np.outer(J, J) * var_t2
    total = float(theta.sum())
    h2 = float(theta[0] / total) if total != 0 else float("nan")
    grad = np.array([theta[1], -theta[0]]) / total**2

    def se_of(C: np.ndarray) -> tuple[float, float, float]:
        d = np.sqrt(np.clip(np.diag(C), 0.0, None))
        return float(d[0]), float(d[1]), float(np.sqrt(max(float(grad @ C @ grad), 0.0)))

    s_u, s_e, s_h = se_of(cov)
    mc_u, mc_e, mc_h = se_of(mc_cov)
    frozen = _checks.frozen
    return HEResult(
        sigma2_u=float(theta[0]), sigma2_e=float(theta[1]), h2=h2,
        sigma2_u_se=s_u, sigma2_e_se=s_e, h2_se=s_h,
        sigma2_u_mc_se=mc_u, sigma2_e_mc_se=mc_e, h2_mc_se=mc_h,
        covariance=frozen(cov), mc_covariance=frozen(mc_cov),
        traces=frozen([t1, t2, t3, t4]), trace_mc_se=frozen(t_se), moments=frozen(q),
        n_probes=n_probes, method=traces, n_obs=n_obs, n_fixed=p, n_markers=source.n_markers,
        c=float(c),
    )


def _sampling_covariance(traces: Any, dof: float, su: float, se: float) -> np.ndarray:
    """S^-1 Var(q) S^-1 for Gaussian y with V = su G + se I, from tr(A^k), k = 1..4."""
    t1, t2, t3, t4 = (float(t) for t in traces)
    S_inv = np.linalg.inv(np.array([[t2, t1], [t1, dof]]))
    Vq = 2.0 * np.array([
        [su**2 * t4 + 2 * su * se * t3 + se**2 * t2, su**2 * t3 + 2 * su * se * t2 + se**2 * t1],
        [su**2 * t3 + 2 * su * se * t2 + se**2 * t1, su**2 * t2 + 2 * su * se * t1 + se**2 * dof],
    ])
    return S_inv @ Vq @ S_inv


def _exact_traces(source: _Source, observed: np.ndarray, Q: np.ndarray) -> tuple[float, float,
                                                                             float]:
    """tr(A^2), tr(A^3), tr(A^4) from the smaller matrix with the nonzero eigenvalues of
    A = P G P: W_o'P W_o / c (m x m, one pass) when m <= n_obs, else A itself (n_obs x n_obs,
    from the phenotyped rows of W held in memory)."""
    n, m = source.shape
    if m <= int(observed.sum()):
        Q_all = np.zeros((n, Q.shape[1]))
        Q_all[observed] = Q
        WtW, WtQ = source.gram(observed, Q_all)
        B = (WtW - WtQ @ WtQ.T) / source.c
    else:
        W_o = source.rows_of(observed)
        G = W_o @ W_o.T / source.c
        PG = G - Q @ (Q.T @ G)
        B = PG - (PG @ Q) @ Q.T
    B = (B + B.T) / 2.0
    B2 = B @ B
    return float(np.sum(B * B)), float(np.sum(B2 * B)), float(np.sum(B2 * B2))


class _Source:
    """The genotypes as blocks of rows of :class:`lmmbook.chunked.BlockEngine` (int8 codes, kept
    in memory within ``cache_bytes``, run in threads or on a dask.distributed cluster's workers),
    centred as W = M - 2p over the markers polymorphic under p (the others scaled by 0), with
    c = 2 sum p(1-p) over them."""

    def __init__(self, genotypes: Any, allele_freq: Any, cache_bytes: int) -> None:
        """``genotypes``: chunked, or checked (:func:`lmmbook.markers.as_genotypes`)."""
        if allele_freq is not None:  # checked before any block is read
            p = _frequencies(allele_freq, chunked.shape_of(genotypes)[1])
        else:
            p = None if chunked.is_chunked(genotypes) else genotypes.allele_freq
        self.engine = chunked.BlockEngine(genotypes, cache_bytes=cache_bytes)
        self.shape = self.engine.shape
        if p is None:
            p = chunked.block_frequencies(self.engine)  # one pass
        het = p * (1.0 - p)
        poly = het > 0
        self.n_markers = int(poly.sum())
        if self.n_markers == 0:
            raise InputError("no marker is polymorphic under the allele frequencies used: G is "
                             "undefined.")
        self.c = float(2.0 * het[poly].sum())
        self.a = poly.astype(float)  # w = a x + b for a call x, 0 for a missing one
        self.b = -2.0 * p * self.a

    def _per_block(self, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        return [tuple(A[rows] for A in arrays) for rows in self.engine.rows]

    def first_pass(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """W'U and the squared norm w_i'w_i of every row of W, in one pass over the blocks."""
        parts = self.engine.map(_first_pass, self.a, self.b, per_block=self._per_block(U))
        return sum(part[0] for part in parts), np.concatenate([part[1] for part in parts])

    def rmatmat(self, U: np.ndarray) -> np.ndarray:
        """W'U, (m, k), summed over the blocks."""
        return self.engine.sum(_rmatmat, self.a, self.b, per_block=self._per_block(U))

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """W V, (n, k)."""
        return np.concatenate(self.engine.map(_matmat, self.a, self.b, V))

    def gram(self, observed: np.ndarray, Q_all: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """W_o'W_o (m x m) and W'Q_all, in one pass."""
        return self.engine.sum(_gram, self.a, self.b,
                               per_block=self._per_block(observed, Q_all))

    def rows_of(self, observed: np.ndarray) -> np.ndarray:
        """W_o, the phenotyped rows of W (n_obs x m, in memory: the exact path only)."""
        return np.vstack(self.engine.map(_rows, self.a, self.b,
                                         per_block=self._per_block(observed)))


# Functions run on one block of int8 codes (-127 missing), wherever the engine runs them.

def _centred(codes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W = a x + b over the calls, 0 for a missing call: one float64 block, made in place."""
    W = np.multiply(codes, a)
    W += b
    W[codes < 0] = 0.0
    return W


def _first_pass(codes, U_b, a, b):
    W = _centred(codes, a, b)
    return W.T @ U_b, np.einsum("ij,ij->i", W, W)


def _rmatmat(codes, U_b, a, b):
    return _centred(codes, a, b).T @ U_b


def _matmat(codes, a, b, V):
    return _centred(codes, a, b) @ V


def _gram(codes, keep, Q_b, a, b):
    W = _centred(codes, a, b)
    W_k = W[keep]
    return W_k.T @ W_k, W.T @ Q_b


def _rows(codes, keep, a, b):
    return _centred(codes[keep], a, b)
