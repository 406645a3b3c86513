"""Genotypes streamed in blocks of animals: allele frequencies in one pass, centred blocks, and the
products W v and W'u without the (n, m) matrix (issue 17, the chapter on national-scale runs).

The genotypes may be a dense (n, m) array (or DataFrame, or a reader's :class:`GenotypeData`), a
:class:`~lmmbook.readers.PlinkChunks` from ``read_plink(prefix, chunks=k)``, or a dask array
(blocks of rows). Every function here visits the rows block by block, in the order of the rows,
and accumulates in float64; only one block of rows is held at a time.

W = M - 2p is the centred genotype matrix of chapter 5 (eq. of ``markers.center``): a missing call
is set to 0, its expected value under p (mean imputation).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from . import _chunked_loops as loops
from .errors import ConvergenceError, InputError, NotPositiveDefiniteError
from .markers import as_genotypes

__all__ = ["blocks", "frequencies", "centred_block", "matvec", "rmatvec", "shape_of",
           "is_chunked", "BlockEngine", "PCGSolution", "solve_snp_blup"]

logger = logging.getLogger(__name__)

#: Bytes of one float64 block of rows that :func:`blocks` cuts a dense matrix into.
DENSE_BLOCK_BYTES = 2**25


def is_chunked(genotypes: Any) -> bool:
    """True for genotypes kept out of memory: a PlinkChunks or a dask array."""
    return _is_plink_chunks(genotypes) or _is_dask(genotypes)


def _is_plink_chunks(genotypes: Any) -> bool:
    return hasattr(genotypes, "block") and hasattr(genotypes, "rows") and hasattr(genotypes, "bed")


def _is_dask(genotypes: Any) -> bool:
    return type(genotypes).__module__.split(".")[0] == "dask" and hasattr(genotypes, "numblocks")


def shape_of(genotypes: Any) -> tuple[int, int]:
    """(n, m) of the genotypes, without reading them if they are chunked."""
    if is_chunked(genotypes):
        shape = tuple(int(s) for s in genotypes.shape)
        if len(shape) != 2:
            raise InputError(f"genotypes must be two-dimensional (animals x markers), got shape "
                             f"{shape}.")
        return shape
    return as_genotypes(genotypes, "genotypes").M.shape


def blocks(genotypes: Any, chunk: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
    """Iterate over blocks of rows: ``(rows, block)`` with ``block`` = the genotypes' ``rows``.

    Parameters
    ----------
    genotypes : (n, m) array_like, DataFrame, GenotypeData, PlinkChunks or dask array
        Counts 0/1/2, NaN for a missing call.
    chunk : int, optional
        Rows per block for in-memory genotypes (by default as many as fill 32 MiB of float64);
        a PlinkChunks or a dask array keeps its own blocks.

    Yields
    ------
    rows : slice
        Positions of the block's rows among the n rows.
    block : (k, m) ndarray
        float64 counts, NaN for missing (a view for in-memory genotypes: do not write to it).

    Examples
    --------
    >>> import numpy as np
    >>> M = np.array([[0, 1], [2, np.nan], [1, 1]])
    >>> [(rows.start, rows.stop, b.shape) for rows, b in blocks(M, chunk=2)]
    [(0, 2, (2, 2)), (2, 3, (1, 2))]
    """
    if _is_plink_chunks(genotypes):
        for i in range(len(genotypes)):
            yield genotypes.rows(i), genotypes.block(i)
        return
    if _is_dask(genotypes):
        start = 0
        for i in range(genotypes.numblocks[0]):
            block = np.asarray(genotypes.blocks[i].compute(), dtype=float)
            _check_block(block, start)
            yield slice(start, start + block.shape[0]), block
            start += block.shape[0]
        return
    M = as_genotypes(genotypes, "genotypes").M
    n, m = M.shape
    if chunk is None:
        chunk = max(1, DENSE_BLOCK_BYTES // (8 * max(m, 1)))
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise InputError(f"chunk must be a positive number of rows, got {chunk!r}.")
    for start in range(0, n, int(chunk)):
        rows = slice(start, min(start + int(chunk), n))
        yield rows, M[rows]


def _check_block(block: np.ndarray, start: int) -> None:
    """Counts 0/1/2 or NaN in a block that no reader has checked (a dask array's)."""
    bad = ~(np.isnan(block) | (block == 0) | (block == 1) | (block == 2))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"genotypes must be 0, 1, 2 or NaN; row {start + i}, column {j} holds "
                         f"{float(block[i, j])!r}.")


def frequencies(genotypes: Any, chunk: int | None = None) -> np.ndarray:
    """Allele frequencies p (m,) in one pass over the blocks: sum of counts / (2 calls), missing
    calls ignored.

    Raises
    ------
    InputError
        A marker with no call at all (its frequency is undefined; remove it).

    Examples
    --------
    >>> import numpy as np
    >>> frequencies(np.array([[0, 2], [1, 2], [2, np.nan]]), chunk=1).tolist()
    [0.5, 1.0]
    """
    if not is_chunked(genotypes):
        return as_genotypes(genotypes, "genotypes").allele_freq
    m = shape_of(genotypes)[1]
    total, calls = np.zeros(m), np.zeros(m)
    for _, block in blocks(genotypes, chunk):
        called = ~np.isnan(block)
        total += np.where(called, block, 0.0).sum(axis=0)
        calls += called.sum(axis=0)
    if np.any(calls == 0):
        j = int(np.flatnonzero(calls == 0)[0])
        raise InputError(f"marker {j} has no call in any animal: its allele frequency is "
                         "undefined; remove it.")
    return total / (2.0 * calls)


def centred_block(block: Any, p: Any, scale: Any = None) -> np.ndarray:
    """The rows of W = M - 2p for one block of counts, missing calls 0, columns times ``scale``.

    Parameters
    ----------
    block : (k, m) array_like
        Counts 0/1/2, NaN for missing.
    p : (m,) array_like
        Allele frequencies to centre with.
    scale : (m,) array_like, optional
        A factor per column (0 drops a marker, 1/sqrt(2p(1-p)) standardises).

    Returns
    -------
    (k, m) ndarray
        float64, a new array.

    Examples
    --------
    >>> import numpy as np
    >>> centred_block(np.array([[0.0, np.nan], [2.0, 1.0]]), [0.5, 0.25]).tolist()
    [[-1.0, 0.0], [1.0, 0.5]]
    """
    W = np.array(block, dtype=float) - 2.0 * np.asarray(p, dtype=float)
    W[np.isnan(W)] = 0.0
    if scale is not None:
        W *= np.asarray(scale, dtype=float)
    return W


def matvec(genotypes: Any, v: Any, p: Any, *, scale: Any = None,
           chunk: int | None = None) -> np.ndarray:
    """W v streamed over the blocks of rows: (n,) for v (m,), (n, k) for v (m, k).

    Examples
    --------
    >>> import numpy as np
    >>> from lmmbook.markers import center
    >>> M = np.array([[0.0, 1, 2], [1, np.nan, 2], [2, 1, 0], [1, 1, 1]])
    >>> p = frequencies(M)
    >>> v = np.array([1.0, -2.0, 0.5])
    >>> bool(np.allclose(matvec(M, v, p, chunk=3), center(M) @ v))
    True
    """
    n, m = shape_of(genotypes)
    v = np.asarray(v, dtype=float)
    if v.shape[0] != m:
        raise InputError(f"v has {v.shape[0]} rows but the genotypes have {m} markers.")
    out = np.empty((n, *v.shape[1:]))
    for rows, block in blocks(genotypes, chunk):
        out[rows] = centred_block(block, p, scale) @ v
    return out


def rmatvec(genotypes: Any, u: Any, p: Any, *, scale: Any = None,
            chunk: int | None = None) -> np.ndarray:
    """W'u streamed over the blocks of rows: (m,) for u (n,), (m, k) for u (n, k); the partial
    products of the blocks are summed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from lmmbook.markers import center
    >>> M = np.array([[0.0, 1, 2], [1, np.nan, 2], [2, 1, 0], [1, 1, 1]])
    >>> u = np.array([1.0, 2.0, -1.0, 0.5])
    >>> bool(np.allclose(rmatvec(M, u, frequencies(M), chunk=3), center(M).T @ u))
    True
    """
    n, m = shape_of(genotypes)
    u = np.asarray(u, dtype=float)
    if u.shape[0] != n:
        raise InputError(f"u has {u.shape[0]} rows but the genotypes have {n} animals.")
    out = np.zeros((m, *u.shape[1:]))
    for rows, block in blocks(genotypes, chunk):
        out += centred_block(block, p, scale).T @ u[rows]
    return out


# ------------------------------------------------------------------ blocks as tasks (dask)

def _bed_codes(bed: str, n: int, m: int, start: int, stop: int, version: tuple) -> np.ndarray:
    """Rows start:stop of a .bed as int8 codes (-127 missing), read where the task runs.
    ``version`` (the file's size and modification time) makes the task's key change with the
    file, so that a cluster never serves blocks of an older file of the same name."""
    from bed_reader import open_bed

    with open_bed(bed, iid_count=n, sid_count=m) as reader:
        return reader.read(index=np.s_[start:stop, :], dtype="int8", order="C")


def _array_codes(block: Any, start: int) -> np.ndarray:
    """A block of float counts (NaN missing) as int8 codes, refusing anything but 0/1/2/NaN."""
    block = np.ascontiguousarray(block, dtype=float)
    codes, bad = loops.codes_from_counts(block)
    if bad:
        _check_block(block, start)
    return codes


def _active_client():
    """The dask.distributed client in use, if any (none unless distributed was imported)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


class BlockEngine:
    """The blocks of rows of some genotypes as dask tasks, each giving int8 codes (-127 missing),
    and a way to run one function on every block.

    With a ``dask.distributed`` client active, every task runs on the cluster's workers: a block
    of a .bed is read by the worker that uses it (so the path must be readable there: the same
    machine or a shared file system), and the blocks kept in memory (``cache_bytes``) stay on the
    workers. Without one, the same tasks run in threads of this process (the compiled
    loops release the GIL). Sums over the blocks are added in one fixed tree of tasks, so the
    result does not depend on where, or in which order, the tasks ran.

    Parameters
    ----------
    genotypes : PlinkChunks, dask array or (n, m) array_like
        A dense matrix is cut into blocks of ``chunk`` rows (by default 2**22 / m).
    cache_bytes : int
        Keep decoded blocks (int8, rows x m bytes each), the first ones that fit, in memory for
        the passes to come; the others are read from their source on every pass. 0 keeps none.
    threads : int, optional
        Threads without a cluster (default: the number of cores).

    Examples
    --------
    >>> import numpy as np
    >>> from lmmbook import _chunked_loops
    >>> M = np.array([[0.0, 1, 2], [1, np.nan, 2], [2, 1, 0], [1, 1, 1], [0, 2, 2]])
    >>> engine = BlockEngine(M, chunk=2, cache_bytes=0)
    >>> [(r.start, r.stop) for r in engine.rows]
    [(0, 2), (2, 4), (4, 5)]
    >>> total, calls = engine.sum(_chunked_loops.counts)  # one pass: sums and calls per marker
    >>> total.tolist(), calls.tolist()
    ([4.0, 5.0, 7.0], [5.0, 4.0, 5.0])
    """

    def __init__(self, genotypes: Any, *, cache_bytes: int = 2**29, chunk: int | None = None,
                 threads: int | None = None):
        import dask

        self.client = _active_client()
        self.threads = threads or os.cpu_count() or 1
        self.shape = shape_of(genotypes)
        n, m = self.shape
        if _is_plink_chunks(genotypes):
            starts = [genotypes.rows(i).start for i in range(len(genotypes))] + [n]
            stat = os.stat(genotypes.bed)
            version = (stat.st_size, stat.st_mtime_ns)
            self.tasks = [dask.delayed(_bed_codes, pure=True)(str(genotypes.bed), n, m, a, b,
                                                              version)
                          for a, b in zip(starts[:-1], starts[1:], strict=True)]
        elif _is_dask(genotypes):
            arr = genotypes if genotypes.numblocks[1] == 1 else genotypes.rechunk({1: -1})
            starts = np.concatenate([[0], np.cumsum(arr.chunks[0])]).astype(int).tolist()
            self.tasks = [dask.delayed(_array_codes, pure=True)(d[0], a)
                          for d, a in zip(arr.to_delayed(), starts[:-1], strict=False)]
        else:
            M = as_genotypes(genotypes, "genotypes").M
            rows = [r for r, _ in blocks(M, chunk)]
            starts = [r.start for r in rows] + [n]
            self.tasks = [dask.delayed(_array_codes, pure=True)(M[r], r.start) for r in rows]
        self.rows = [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        sizes = np.array([(r.stop - r.start) * m for r in self.rows])
        self.cached = int(np.searchsorted(np.cumsum(sizes), cache_bytes, side="right"))
        if self.cached:
            self.tasks[:self.cached] = dask.persist(*self.tasks[:self.cached],
                                                    **self._scheduler())
        logger.info("%d blocks of rows (%d kept in memory, %.3g GiB) %s", len(self.rows),
                    self.cached, sizes[:self.cached].sum() / 2**30,
                    "on a dask.distributed cluster" if self.client else
                    f"in {self.threads} threads")

    def _scheduler(self) -> dict:
        return {} if self.client is not None else {"scheduler": "threads",
                                                   "num_workers": self.threads}

    def _run(self, *tasks):
        import dask

        return list(dask.compute(*tasks, **self._scheduler()))

    def _tasks(self, function, shared, per_block) -> list:
        import dask

        shared = [dask.delayed(s) if isinstance(s, np.ndarray) else s for s in shared]
        call = dask.delayed(function, pure=True)
        return [call(codes, *(per_block[i] if per_block is not None else ()), *shared)
                for i, codes in enumerate(self.tasks)]

    def map(self, function, *shared, per_block=None) -> list:
        """``function(codes, *per_block[i], *shared)`` for every block i, results in block order.
        ``shared`` arguments are sent once per call (one dask key each)."""
        return self._run(*self._tasks(function, shared, per_block))

    def sum(self, function, *shared, per_block=None):
        """The sum over the blocks of what :meth:`map` would return (arrays or tuples of arrays),
        added in a fixed binary tree of tasks (neighbouring blocks first), so that partial
        results are freed as they are added, and on a cluster added where they lie."""
        import dask

        tasks = self._tasks(function, shared, per_block)
        add = dask.delayed(_add, pure=True)
        while len(tasks) > 1:
            tasks = [add(*tasks[i:i + 2]) if i + 1 < len(tasks) else tasks[i]
                     for i in range(0, len(tasks), 2)]
        return self._run(tasks[0])[0]


def _add(x, y):
    """x + y for arrays or tuples of arrays (a new result: inputs may be shared)."""
    if isinstance(x, tuple):
        return tuple(s + t for s, t in zip(x, y, strict=True))
    return x + y


# ------------------------------------------------------------------ SNP-BLUP by PCG

@dataclass(frozen=True)
class PCGSolution:
    """Marker-space SNP-BLUP solved by PCG (see :func:`solve_snp_blup`)."""

    b: np.ndarray
    alpha: np.ndarray
    gebv: np.ndarray
    allele_freq: np.ndarray
    polymorphic: np.ndarray
    iterations: int
    relative_residual: float


def _centring(p: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a, b of w = a c + b: scale 1 on ``columns`` (0 elsewhere) and -2p a."""
    a = np.zeros(len(p))
    a[columns] = 1.0
    return a, -2.0 * p * a


def block_frequencies(engine: BlockEngine) -> np.ndarray:
    """Allele frequencies from the engine's blocks in one pass (missing calls ignored)."""
    total, calls = engine.sum(loops.counts)
    if np.any(calls == 0):
        j = int(np.flatnonzero(calls == 0)[0])
        raise InputError(f"marker {j} has no call in any animal: its allele frequency is "
                         "undefined; remove it.")
    return total / (2.0 * calls)


def block_product(engine: BlockEngine, p: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """W alpha for every row (centred by p, missing 0), streamed over the engine's blocks."""
    used = np.flatnonzero(alpha != 0)
    a, b = _centring(p, used)
    return np.concatenate(engine.map(loops.product, a, b, np.asarray(alpha, dtype=float)))


def solve_snp_blup(engine: BlockEngine, y: np.ndarray, X: np.ndarray, lam: float, *,
                   p: np.ndarray | None = None, tol: float = 1e-10, maxiter: int = 1000,
                   block_size: int = 64, progress: bool = False) -> PCGSolution:
    """The marker-space mixed-model equations with the fixed effects absorbed, by PCG.

    Over the phenotyped rows o (y finite), with P = I - X_o (X_o'X_o)^-1 X_o':

        (W_o' P W_o + lam I) alpha = W_o' P y_o,   b = (X_o'X_o)^-1 X_o'(y_o - W_o alpha),

    which is the marker-space MME [X'X X'W; W'X W'W + lam I] with b eliminated exactly
    (lam = sigma2_e / sigma2_alpha). W_o'P W_o v = W_o'(W_o v) - (W_o'X)(X'X)^-1 (X'W_o) v: one
    pass over the blocks per iteration (the m x p matrix W_o'X is formed once). The
    preconditioner is block-Jacobi: the diagonal blocks of the system over groups of
    ``block_size`` consecutive markers, formed in the same pass as W_o'X and W_o'y, inverted
    once. Markers in LD are neighbours on the map, so these blocks hold most of the
    off-diagonal mass: on simulated LD (r about 0.9 between neighbours) 64 markers per group
    took 30 iterations where the diagonal alone (``block_size=1``, Jacobi) took 102.
    Monomorphic markers (p(1-p) = 0) get alpha = 0.

    Parameters
    ----------
    engine : BlockEngine
    y : (n,) ndarray
        NaN where not phenotyped.
    X : (n, q) ndarray
    lam : float
    p : (m,) ndarray, optional
        Allele frequencies (by default from the blocks, one more pass).
    block_size : int
        Markers per diagonal block of the preconditioner (1: Jacobi).
    tol : float
        Stop when ||r|| <= tol ||W_o'P y_o|| (the default gives solutions equal to a dense solve
        to about 1e-9 relative).
    maxiter : int
    progress : bool
        A one-line progress bar on stderr (off by default); the iterations are also logged
        (logger ``lmmbook.chunked``, level INFO).

    Raises
    ------
    NotPositiveDefiniteError
        X_o'X_o is singular.
    ConvergenceError
        Not converged in ``maxiter`` iterations.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> M = rng.binomial(2, 0.4, size=(60, 25)).astype(float)
    >>> y, X = rng.normal(size=60), np.ones((60, 1))
    >>> sol = solve_snp_blup(BlockEngine(M, chunk=16), y, X, 50.0, block_size=8)
    >>> W = M - 2 * sol.allele_freq
    >>> P = np.eye(60) - 1 / 60  # absorbs the mean
    >>> direct = np.linalg.solve(W.T @ P @ W + 50.0 * np.eye(25), W.T @ P @ y)
    >>> bool(np.allclose(sol.alpha, direct, rtol=0, atol=1e-9)), sol.iterations < 25
    (True, True)
    """
    n, m = engine.shape
    p = block_frequencies(engine) if p is None else p
    poly = np.flatnonzero(p * (1.0 - p) > 0)
    if len(poly) == 0:
        raise InputError("no marker is polymorphic under the allele frequencies used.")
    a, c = _centring(p, poly)
    observed = np.isfinite(y)
    per_block = []
    for rows in engine.rows:
        o = np.flatnonzero(observed[rows])
        per_block.append((o, np.ascontiguousarray(X[rows][o]), y[rows][o]))
    size = max(1, min(int(block_size), m))
    WX, Wy, grams = engine.sum(loops.normal_setup, a, c, size, per_block=per_block)
    logger.info("W'X, W'y and the preconditioner's %d blocks of %d markers formed",
                grams.shape[0], size)
    X_o, y_o = X[observed], y[observed]
    try:
        XtX = cho_factor(X_o.T @ X_o)
    except np.linalg.LinAlgError:
        raise NotPositiveDefiniteError("X'X of the phenotyped rows is singular: drop the "
                                       "redundant columns of X.") from None
    WX_XtX = cho_solve(XtX, WX.T).T  # (m, q): W'X (X'X)^-1
    rhs = Wy - WX_XtX @ (X_o.T @ y_o)
    groups, width = grams.shape[0], grams.shape[0] * size
    padded = np.zeros((2, width, X.shape[1]))
    padded[0, :m], padded[1, :m] = WX_XtX, WX
    by_group = padded.reshape(2, groups, size, -1)
    blocks_ = grams - by_group[0] @ by_group[1].transpose(0, 2, 1)  # blocks of W'PW
    blocks_[:, np.arange(size), np.arange(size)] += lam
    inverse = np.linalg.inv(blocks_)
    del grams, blocks_

    def precond(r):
        r_padded = np.zeros(width)
        r_padded[:m] = r
        return (inverse @ r_padded.reshape(groups, size, 1)).reshape(width)[:m]

    def apply(v):
        Av = engine.sum(loops.normal_product, a, c, v, per_block=[(o,) for o, _, _ in per_block])
        return Av - WX_XtX @ (WX.T @ v) + lam * v

    alpha = np.zeros(m)
    norm_rhs = float(np.linalg.norm(rhs))
    r = rhs.copy()
    relative = 1.0 if norm_rhs > 0 else 0.0
    k = 0
    if norm_rhs > 0:
        z = precond(r)
        d = z.copy()
        rz = float(r @ z)
        for k in range(1, maxiter + 1):  # noqa: B007 (k is the iteration count after the loop)
            q = apply(d)
            step = rz / float(d @ q)
            alpha += step * d
            r -= step * q
            relative = float(np.linalg.norm(r)) / norm_rhs
            logger.info("PCG iteration %d: relative residual %.3g", k, relative)
            if progress:
                print(f"\rPCG iteration {k}: relative residual {relative:.2e}", end="",
                      file=sys.stderr, flush=True)
            if relative <= tol:
                break
            z = precond(r)
            rz_new = float(r @ z)
            d = z + (rz_new / rz) * d
            rz = rz_new
        if progress:
            print(file=sys.stderr, flush=True)
        if relative > tol:
            raise ConvergenceError(f"PCG did not reach a relative residual of {tol:g} in "
                                   f"{maxiter} iterations (it is {relative:.3g}); raise maxiter "
                                   "or check the variances (a tiny lambda is ill-conditioned).")
    alpha[a == 0] = 0.0
    b = cho_solve(XtX, X_o.T @ y_o - WX.T @ alpha)
    gebv = block_product(engine, p, alpha) if np.any(alpha) else np.zeros(n)
    return PCGSolution(b=b, alpha=alpha, gebv=gebv, allele_freq=p, polymorphic=poly,
                       iterations=k, relative_residual=relative)
