"""Compiled single passes over genotype matrices (private): checking, counting, centring.

A genotype matrix is read a few times at most: these loops do in one pass what NumPy would do in
several (each a full sweep through memory), which matters next to the one BLAS product that
builds G.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def scan(M):
    """Validate 0/1/2/NaN and count: returns (first bad flat index or -1, number of bad values,
    column sums, column calls, row calls)."""
    n, m = M.shape
    col_sum = np.zeros(m)
    col_calls = np.zeros(m, np.int64)
    row_calls = np.zeros(n, np.int64)
    first_bad = -1
    n_bad = 0
    for i in range(n):
        for j in range(m):
            x = M[i, j]
            if x != x:  # NaN: a missing call
                continue
            if x == 0.0 or x == 1.0 or x == 2.0:
                col_sum[j] += x
                col_calls[j] += 1
                row_calls[i] += 1
            else:
                n_bad += 1
                if first_bad < 0:
                    first_bad = i * m + j
    return first_bad, n_bad, col_sum, col_calls, row_calls


@njit(cache=True)
def centred_columns(M, columns, two_p, scale):
    """W[:, k] = (M[:, columns[k]] - two_p[k]) * scale[k], NaN -> 0, in Fortran order."""
    n = M.shape[0]
    W = np.empty((len(columns), n)).T  # Fortran-ordered n x len(columns)
    for i in range(n):
        for k in range(len(columns)):
            x = M[i, columns[k]]
            W[i, k] = 0.0 if x != x else (x - two_p[k]) * scale[k]
    return W


@njit(cache=True)
def mirror_upper(C):
    """Copy the upper triangle of a square matrix onto its lower triangle, in blocks."""
    n = C.shape[0]
    block = 64
    for i0 in range(0, n, block):
        for j0 in range(i0, n, block):
            for i in range(i0, min(i0 + block, n)):
                for j in range(max(j0, i + 1), min(j0 + block, n)):
                    C[j, i] = C[i, j]
    return C
