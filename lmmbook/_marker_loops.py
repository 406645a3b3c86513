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
    column sums, column calls, row calls).

    The inner loop has no branch (comparisons become 0/1 values), so it runs at the speed of
    reading M; the first bad value is looked for again only when there is one.
    """
    n, m = M.shape
    col_sum = np.zeros(m)
    col_calls = np.zeros(m)  # counted in floats (exact below 2**53) to keep the loop vectorised
    row_calls = np.zeros(n, np.int64)
    n_bad = 0
    first_bad_row = -1
    for i in range(n):
        calls = 0.0
        bad = 0.0
        for j in range(m):
            x = M[i, j]
            ok = (x == 0.0) | (x == 1.0) | (x == 2.0)
            one = 1.0 if ok else 0.0
            col_sum[j] += x if ok else 0.0
            col_calls[j] += one
            calls += one
            bad += 0.0 if (ok | (x != x)) else 1.0  # neither a count nor NaN (a missing call)
        row_calls[i] = np.int64(calls)
        if bad > 0.0:
            n_bad += np.int64(bad)
            if first_bad_row < 0:
                first_bad_row = i
    first_bad = -1
    if first_bad_row >= 0:
        for j in range(m):
            x = M[first_bad_row, j]
            if not (x == 0.0 or x == 1.0 or x == 2.0 or x != x):
                first_bad = first_bad_row * m + j
                break
    return first_bad, n_bad, col_sum, col_calls.astype(np.int64), row_calls


@njit(cache=True)
def shifted_counts(M, offset, rest):
    """M_s = M - offset (small integers, held exactly in float32) and M_s @ rest in float64.

    Markers with ``offset`` NaN are left out: their column of M_s is 0. M has no missing call.
    """
    n, m = M.shape
    M_s = np.empty((n, m), np.float32)
    o = np.where(np.isnan(offset), 0.0, offset)
    keep = np.where(np.isnan(offset), 0.0, 1.0)
    f = np.where(np.isnan(offset), 0.0, rest)
    row_term = np.empty(n)
    for i in range(n):
        acc = 0.0
        for j in range(m):
            x = (M[i, j] - o[j]) * keep[j]
            M_s[i, j] = x
            acc += x * f[j]
        row_term[i] = acc
    return M_s, row_term


@njit(cache=True)
def corrected_symmetric(C, t, scale):
    """G[i, j] = scale * (C[i, j] - t[i] - t[j]), both triangles, from the upper triangle of the
    Fortran-ordered float32 C that BLAS syrk returns (read as the lower triangle of C.T)."""
    L = C.T  # C-ordered; L[i, j] = C[j, i] is set for j <= i
    n = L.shape[0]
    G = np.empty((n, n))
    block = 64
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        for j0 in range(0, i1, block):
            for i in range(i0, i1):
                ti = t[i]
                for j in range(j0, min(j0 + block, i + 1)):
                    g = scale * ((np.float64(L[i, j]) - ti) - t[j])
                    G[i, j] = g
                    G[j, i] = g
    return G


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
