"""Compiled passes over one block of int8 genotype codes (private; used by lmmbook.chunked).

A block holds counts 0, 1, 2 as int8 and -127 for a missing call (bed-reader's int8 convention).
The centred, scaled genotype of column j is w = a_j c + b_j for a call c (a_j = s_j the column's
scale, b_j = -2 p_j s_j) and 0 for a missing call, so no float64 copy of the block is made: rows
are centred where they are used. All sums are in
float64. ``reassoc`` lets the compiler vectorise the sums over a row (it changes their order,
i.e. results by round-off only). The loops release the GIL, so several blocks run in threads.
"""

import numpy as np
from numba import njit

MISSING = -127
_FAST = {"reassoc", "contract", "nsz"}


@njit(cache=True, nogil=True)
def codes_from_counts(M):
    """float counts (NaN missing) -> int8 codes (-127 missing); returns (codes, number of values
    other than 0, 1, 2, NaN)."""
    k, m = M.shape
    codes = np.empty((k, m), np.int8)
    bad = 0
    for i in range(k):
        for j in range(m):
            x = M[i, j]
            if np.isnan(x):
                codes[i, j] = MISSING
            elif x == 0.0 or x == 1.0 or x == 2.0:
                codes[i, j] = np.int8(x)
            else:
                codes[i, j] = MISSING
                bad += 1
    return codes, bad


@njit(cache=True, nogil=True)
def counts(codes):
    """Per column over all rows: sum of the calls and number of calls (floats, exact)."""
    k, m = codes.shape
    total = np.zeros(m)
    calls = np.zeros(m)
    for i in range(k):
        for j in range(m):
            c = codes[i, j]
            called = 1.0 if c >= 0 else 0.0
            total[j] += called * c
            calls[j] += called
    return total, calls


@njit(cache=True, nogil=True, fastmath=_FAST)
def _centre_row(codes, i, a, b, w):
    m = codes.shape[1]
    for j in range(m):
        c = codes[i, j]
        w[j] = a[j] * c + b[j] if c >= 0 else 0.0


@njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
def _w(codes, i, j, aj, bj):
    c = codes[i, j]
    return aj * c + bj if c >= 0 else 0.0


@njit(cache=True, nogil=True, fastmath=_FAST)
def normal_product(codes, rows, a, b, v):
    """W_r'(W_r v) over the listed rows r of the block: (m,).

    Rows are taken eight at a time and centred on the fly, twice, instead of being stored: one
    sweep over a, b and v gives eight dot products s_k = w_k'v, a second adds sum_k w_k s_k to
    the output. Each sweep reads the vectors of length m once for eight rows, which matters when
    they no longer fit in cache (m = 50,000: 3x faster than centring each row into a buffer).
    A short last group repeats its last row with s_k = 0.
    """
    m = codes.shape[1]
    out = np.zeros(m)
    n_rows = len(rows)
    r = np.empty(8, np.int64)
    for start in range(0, n_rows, 8):
        t = min(8, n_rows - start)
        for k in range(8):
            r[k] = rows[start + min(k, t - 1)]
        i0, i1, i2, i3, i4, i5, i6, i7 = r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for j in range(m):
            aj, bj, vj = a[j], b[j], v[j]
            s0 += _w(codes, i0, j, aj, bj) * vj
            s1 += _w(codes, i1, j, aj, bj) * vj
            s2 += _w(codes, i2, j, aj, bj) * vj
            s3 += _w(codes, i3, j, aj, bj) * vj
            s4 += _w(codes, i4, j, aj, bj) * vj
            s5 += _w(codes, i5, j, aj, bj) * vj
            s6 += _w(codes, i6, j, aj, bj) * vj
            s7 += _w(codes, i7, j, aj, bj) * vj
        s1 = s1 if t > 1 else 0.0
        s2 = s2 if t > 2 else 0.0
        s3 = s3 if t > 3 else 0.0
        s4 = s4 if t > 4 else 0.0
        s5 = s5 if t > 5 else 0.0
        s6 = s6 if t > 6 else 0.0
        s7 = s7 if t > 7 else 0.0
        for j in range(m):
            aj, bj = a[j], b[j]
            out[j] += (_w(codes, i0, j, aj, bj) * s0 + _w(codes, i1, j, aj, bj) * s1
                       + _w(codes, i2, j, aj, bj) * s2 + _w(codes, i3, j, aj, bj) * s3
                       + _w(codes, i4, j, aj, bj) * s4 + _w(codes, i5, j, aj, bj) * s5
                       + _w(codes, i6, j, aj, bj) * s6 + _w(codes, i7, j, aj, bj) * s7)
    return out


@njit(cache=True, nogil=True, fastmath=_FAST)
def product(codes, a, b, v):
    """W v for every row of the block: (k,)."""
    k, m = codes.shape
    out = np.zeros(k)
    w = np.empty(m)
    for i in range(k):
        _centre_row(codes, i, a, b, w)
        s = 0.0
        for j in range(m):
            s += w[j] * v[j]
        out[i] = s
    return out


@njit(cache=True, nogil=True, fastmath=_FAST)
def normal_setup(codes, rows, X, y, a, b, size):
    """Over the listed rows r of the block (X, y given for those rows): W_r'X (m, q), W_r'y (m,)
    and the Gram matrices of the groups of ``size`` consecutive markers (G, size, size), the last
    group padded with zero columns. Rows are taken four at a time, so that each Gram entry is
    read and written once per four rows."""
    m = codes.shape[1]
    q = X.shape[1]
    groups = (m + size - 1) // size
    width = groups * size
    wx = np.zeros((m, q))
    wy = np.zeros(m)
    grams = np.zeros((groups, size, size))
    w = np.zeros((4, width))
    n_rows = len(rows)
    for start in range(0, n_rows, 4):
        t = min(4, n_rows - start)
        for k in range(4):
            if k < t:
                i = rows[start + k]
                for j in range(m):
                    c = codes[i, j]
                    w[k, j] = a[j] * c + b[j] if c >= 0 else 0.0
                yk = y[start + k]
                for j in range(m):
                    wy[j] += w[k, j] * yk
                    for s in range(q):
                        wx[j, s] += w[k, j] * X[start + k, s]
            else:
                w[k, :] = 0.0
        for g in range(groups):
            o = g * size
            for u in range(size):
                w0 = w[0, o + u]
                w1 = w[1, o + u]
                w2 = w[2, o + u]
                w3 = w[3, o + u]
                for v in range(size):
                    grams[g, u, v] += (w0 * w[0, o + v] + w1 * w[1, o + v]
                                       + w2 * w[2, o + v] + w3 * w[3, o + v])
    return wx, wy, grams
