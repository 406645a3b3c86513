"""The loops of the pedigree algorithms, compiled with numba (private).

Each function works on integer parent arrays in which -1 means "unknown" and animals are numbered
so that parents precede offspring (except in :func:`topological_order`, which establishes that).
They are plain loops on purpose: this is the honest form of these algorithms, and numba makes it
fast. Compilation is cached in ``__pycache__``.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def topological_order(sire, dam):
    """Kahn's algorithm: an order in which parents precede offspring, and each animal's depth.

    Returns (order, depth, n_done): ``order[:n_done]`` are the animals that could be ordered;
    n_done < n means a loop in the pedigree (an animal among its own ancestors).
    """
    n = len(sire)
    pending = np.zeros(n, np.int64)  # known parents not yet placed
    n_children = np.zeros(n + 1, np.int64)
    for i in range(n):
        for parent in (sire[i], dam[i]):
            if parent >= 0:
                pending[i] += 1
                n_children[parent + 1] += 1
    start = np.cumsum(n_children)  # children of j are children[start[j]:start[j + 1]]
    children = np.empty(start[-1], np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        for parent in (sire[i], dam[i]):
            if parent >= 0:
                children[fill[parent]] = i
                fill[parent] += 1
    order = np.empty(n, np.int64)
    depth = np.zeros(n, np.int64)
    head = tail = 0
    for i in range(n):
        if pending[i] == 0:
            order[tail] = i
            tail += 1
    while head < tail:
        j = order[head]
        head += 1
        for k in range(start[j], start[j + 1]):
            child = children[k]
            depth[child] = max(depth[child], depth[j] + 1)
            pending[child] -= 1
            if pending[child] == 0:
                order[tail] = child
                tail += 1
    return order, depth, tail


@njit(cache=True)
def dense_a(sire, dam):
    """Numerator relationship matrix by the tabular method (chapter 3): O(n^2)."""
    n = len(sire)
    A = np.zeros((n, n))
    for i in range(n):
        s, d = sire[i], dam[i]
        for j in range(i):
            a = 0.0
            if s >= 0:
                a += 0.5 * A[j, s]
            if d >= 0:
                a += 0.5 * A[j, d]
            A[i, j] = a
            A[j, i] = a
        A[i, i] = 1.0 + (0.5 * A[s, d] if s >= 0 and d >= 0 else 0.0)
    return A


@njit(cache=True)
def _family(first, last, g, members, sire, dam, depth, D, F, stamp, stack, anc, ancestors,
            counts, w, v):
    """F of the members of one sire family from one column of A (see below)."""
    s = sire[members[first]]
    # ancestors of the sire and of every dam in the family (each animal is its own ancestor)
    n_anc = 0
    top = 0
    stack[top] = s
    top += 1
    for k in range(first, last):
        stack[top] = dam[members[k]]
        top += 1
    while top > 0:
        top -= 1
        j = stack[top]
        if stamp[j] == g:
            continue
        stamp[j] = g
        anc[n_anc] = j
        n_anc += 1
        if sire[j] >= 0 and stamp[sire[j]] != g:
            stack[top] = sire[j]
            top += 1
        if dam[j] >= 0 and stamp[dam[j]] != g:
            stack[top] = dam[j]
            top += 1
    # counting sort of the ancestors by depth: parents before offspring
    top_depth = 0
    for k in range(n_anc):
        dk = depth[anc[k]]
        counts[dk + 1] += 1
        if dk > top_depth:
            top_depth = dk
    for k in range(1, top_depth + 2):
        counts[k] += counts[k - 1]
    for k in range(n_anc):
        dk = depth[anc[k]]
        ancestors[counts[dk]] = anc[k]
        counts[dk] += 1
    for k in range(top_depth + 2):
        counts[k] = 0
    for k in range(n_anc):
        w[ancestors[k]] = 0.0
    w[s] = 1.0
    for k in range(n_anc - 1, -1, -1):  # w = T' e_s: deep to shallow
        j = ancestors[k]
        if w[j] != 0.0:
            if sire[j] >= 0:
                w[sire[j]] += 0.5 * w[j]
            if dam[j] >= 0:
                w[dam[j]] += 0.5 * w[j]
    for k in range(n_anc):  # v = T D w: shallow to deep
        j = ancestors[k]
        vj = D[j] * w[j]
        if sire[j] >= 0:
            vj += 0.5 * v[sire[j]]
        if dam[j] >= 0:
            vj += 0.5 * v[dam[j]]
        v[j] = vj
    for k in range(first, last):
        i = members[k]
        F[i] = 0.5 * v[dam[i]]


@njit(parallel=True, cache=True)
def inbreeding_by_sire_families(sire, dam, depth, group_start, members, level_group_start,
                                by_depth, level_animal_start, threads):
    """Inbreeding coefficients by the indirect method of Colleau (2002), in sire families
    (Sargolzaei, Iwaisaki & Colleau 2005).

    A = T D T', so a column A e_s is two passes over the ancestors of s: w = T' e_s (from the young
    to the old), then v = T D w (from the old to the young). For the offspring of sire s and dam d,
    F = a_sd / 2 = v[d] / 2: one column serves the whole family of s. ``members`` lists the
    animals with both parents known, grouped by (depth, sire); ``group_start`` delimits the
    families and ``level_group_start`` the families of each depth. Families of one depth depend
    only on shallower animals, so they run in parallel, each thread with its own work arrays.
    Before the families of depth L, D is set for the animals of depth L - 1 (``by_depth`` lists
    the animals by depth, ``level_animal_start`` delimits them). The ancestors of a family are put
    in order by a counting sort on depth (a parent is always shallower than its child).
    """
    n = len(sire)
    F = np.zeros(n)
    D = np.ones(n)
    max_depth = depth.max() if n else 0
    # int32 work arrays (IDs fit): half the memory traffic of int64 on the ancestor walks
    stamp = np.full((threads, n), -1, np.int32)
    # an animal can be pushed once per child before it is visited: 3n bounds the stack
    stack = np.empty((threads, 3 * n + 1), np.int32)
    anc = np.empty((threads, n), np.int32)
    ancestors = np.empty((threads, n), np.int32)
    counts = np.zeros((threads, max_depth + 2), np.int64)
    w = np.zeros((threads, n))
    v = np.zeros((threads, n))
    for level in range(1, max_depth + 1):
        for k in range(level_animal_start[level - 1], level_animal_start[level]):
            j = by_depth[k]
            fs = F[sire[j]] if sire[j] >= 0 else -1.0
            fd = F[dam[j]] if dam[j] >= 0 else -1.0
            D[j] = 0.5 - 0.25 * (fs + fd)
        g0, g1 = level_group_start[level], level_group_start[level + 1]
        for t in prange(threads):
            for g in range(g0 + t, g1, threads):
                _family(group_start[g], group_start[g + 1], g, members, sire, dam, depth, D, F,
                        stamp[t], stack[t], anc[t], ancestors[t], counts[t], w[t], v[t])
    return F


@njit(cache=True)
def a_inverse_triplets(sire, dam, alpha):
    """Henderson's rules as (row, column, value) triplets, up to 9 per animal (chapter 3)."""
    n = len(sire)
    size = 0
    for i in range(n):
        k = 1 + (sire[i] >= 0) + (dam[i] >= 0)
        size += k * k
    rows = np.empty(size, np.int64)
    cols = np.empty(size, np.int64)
    vals = np.empty(size)
    who = np.empty(3, np.int64)
    weight = np.empty(3)
    t = 0
    for i in range(n):
        m = 0
        who[m], weight[m] = i, 1.0
        m += 1
        if sire[i] >= 0:
            who[m], weight[m] = sire[i], -0.5
            m += 1
        if dam[i] >= 0:
            who[m], weight[m] = dam[i], -0.5
            m += 1
        for a in range(m):
            for b in range(m):
                rows[t] = who[a]
                cols[t] = who[b]
                vals[t] = alpha[i] * weight[a] * weight[b]
                t += 1
    return rows, cols, vals
