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

from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import InputError
from .markers import as_genotypes

__all__ = ["blocks", "frequencies", "centred_block", "matvec", "rmatvec", "shape_of",
           "is_chunked"]

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
                         f"{block[i, j]!r}.")


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
