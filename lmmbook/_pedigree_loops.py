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
def sire_families(sire, dam, depth):
    """The animals with both parents known, grouped by (depth, sire), by two stable counting
    sorts (linear time). Returns (members, group_start, level_group_start, by_depth,
    level_animal_start): family g is ``members[group_start[g]:group_start[g + 1]]``, the families
    of depth L are ``level_group_start[L]:level_group_start[L + 1]``, and ``by_depth`` lists all
    animals by depth, those of depth L from ``level_animal_start[L]``."""
    n = len(sire)
    max_depth = 0
    for i in range(n):
        max_depth = max(max_depth, depth[i])
    # all animals by depth
    level_animal_start = np.zeros(max_depth + 2, np.int64)
    for i in range(n):
        level_animal_start[depth[i] + 1] += 1
    level_animal_start = np.cumsum(level_animal_start)
    fill = level_animal_start.copy()
    by_depth = np.empty(n, np.int64)
    for i in range(n):
        by_depth[fill[depth[i]]] = i
        fill[depth[i]] += 1
    # animals with both parents known, by sire, then (stably) by depth
    n_sire = np.zeros(n + 1, np.int64)
    for i in range(n):
        if sire[i] >= 0 and dam[i] >= 0:
            n_sire[sire[i] + 1] += 1
    sire_start = np.cumsum(n_sire)
    by_sire = np.empty(sire_start[n], np.int64)
    for i in range(n):
        if sire[i] >= 0 and dam[i] >= 0:
            by_sire[sire_start[sire[i]]] = i
            sire_start[sire[i]] += 1
    level_member_start = np.zeros(max_depth + 2, np.int64)
    for i in by_sire:
        level_member_start[depth[i] + 1] += 1
    level_member_start = np.cumsum(level_member_start)
    fill = level_member_start.copy()
    members = np.empty(len(by_sire), np.int64)
    for i in by_sire:
        members[fill[depth[i]]] = i
        fill[depth[i]] += 1
    n_groups = 0
    for k in range(len(members)):
        if k == 0 or sire[members[k]] != sire[members[k - 1]] or \
                depth[members[k]] != depth[members[k - 1]]:
            n_groups += 1
    group_start = np.empty(n_groups + 1, np.int64)
    g = 0
    for k in range(len(members)):
        if k == 0 or sire[members[k]] != sire[members[k - 1]] or \
                depth[members[k]] != depth[members[k - 1]]:
            group_start[g] = k
            g += 1
    group_start[n_groups] = len(members)
    level_group_start = np.searchsorted(group_start, level_member_start)
    return members, group_start, level_group_start, by_depth, level_animal_start


@njit(cache=True)
def _family(first, last, members, parents, D, F, mark, anc, tmp, count, local_parents, D_local,
            w, v, bits):
    """F of the members of one sire family from one column of A (see below).

    The ancestors of the sire and of the dams are gathered breadth-first (``mark`` -1 once
    reached, so each is listed once), then put in ID order, which puts parents before offspring,
    by a radix sort (11 bits a pass, ``bits`` in all). They get local numbers 1, 2, ... in that
    order (held in ``mark`` while the family is worked on, cleared at the end; 0 stands for an
    unknown parent), and the two passes run over small contiguous arrays instead of the whole
    pedigree.
    """
    s = parents[members[first], 0]
    n_anc = 0
    mark[s] = -1
    anc[n_anc] = s
    n_anc += 1
    for k in range(first, last):
        d = parents[members[k], 1]
        if mark[d] == 0:
            mark[d] = -1
            anc[n_anc] = d
            n_anc += 1
    head = 0
    while head < n_anc:
        j = anc[head]
        head += 1
        for p in (parents[j, 0], parents[j, 1]):
            if p >= 0 and mark[p] == 0:
                mark[p] = -1
                anc[n_anc] = p
                n_anc += 1
    src, dst = anc, tmp
    for shift in range(0, bits, 11):
        count[:] = 0
        for k in range(n_anc):
            count[((src[k] >> shift) & 2047) + 1] += 1
        for b in range(2048):
            count[b + 1] += count[b]
        for k in range(n_anc):
            key = (src[k] >> shift) & 2047
            dst[count[key]] = src[k]
            count[key] += 1
        src, dst = dst, src
    for k in range(n_anc):
        mark[src[k]] = k + 1
    for k in range(n_anc):
        j = src[k]
        ps, pd = parents[j, 0], parents[j, 1]
        local_parents[k + 1, 0] = mark[ps] if ps >= 0 else 0
        local_parents[k + 1, 1] = mark[pd] if pd >= 0 else 0
        D_local[k + 1] = D[j]
    n_local = n_anc + 1
    for k in range(n_local):
        w[k] = 0.0
    w[mark[s]] = 1.0
    for k in range(n_local - 1, 0, -1):  # w = T' e_s: offspring before parents
        if w[k] != 0.0:
            w[local_parents[k, 0]] += 0.5 * w[k]  # slot 0 collects what goes to unknown parents
            w[local_parents[k, 1]] += 0.5 * w[k]
    for k in range(1, n_local):  # v = T D w: parents before offspring
        vk = D_local[k] * w[k]
        if local_parents[k, 0] > 0:
            vk += 0.5 * v[local_parents[k, 0]]
        if local_parents[k, 1] > 0:
            vk += 0.5 * v[local_parents[k, 1]]
        v[k] = vk
    for k in range(first, last):
        i = members[k]
        F[i] = 0.5 * v[mark[parents[i, 1]]]
    for k in range(n_anc):
        mark[src[k]] = 0


@njit(parallel=True, cache=True)
def inbreeding_by_sire_families(parents, members, group_start, level_group_start, by_depth,
                                level_animal_start, threads):
    """Inbreeding coefficients by the indirect method of Colleau (2002), in sire families
    (Sargolzaei, Iwaisaki & Colleau 2005).

    A = T D T', so a column A e_s is two passes: w = T' e_s goes up from s to its ancestors (from
    the young to the old), then v = T D w comes back down to their descendants (from the old to
    the young). For the offspring of sire s and dam d, F = a_sd / 2 = v[d] / 2: one column serves
    the whole family of s, computed over the ancestors of s and of its dams (all others have
    w = 0 and do not reach v[d]). ``parents`` is (n, 2):
    sire and dam of each animal, -1 when unknown, IDs numbered so that parents come first; the
    families come from :func:`sire_families`. Families of one depth depend only on shallower
    animals, so they run in parallel, each thread with its own work arrays. Before the families
    of depth L, D is set for the animals of depth L - 1.
    """
    n = parents.shape[0]
    F = np.zeros(n)
    D = np.ones(n)
    max_depth = len(level_group_start) - 2
    bits = 1
    while (1 << bits) < n:
        bits += 1
    # int32 work arrays (IDs fit): the walks over ancestors are bound by memory traffic
    mark = np.zeros((threads, n), np.int32)
    anc = np.empty((threads, n + 1), np.int32)
    tmp = np.empty((threads, n + 1), np.int32)
    count = np.empty((threads, 2049), np.int64)
    local_parents = np.empty((threads, n + 1, 2), np.int32)
    D_local = np.empty((threads, n + 1))
    w = np.empty((threads, n + 1))
    v = np.empty((threads, n + 1))
    for level in range(1, max_depth + 1):
        for k in range(level_animal_start[level - 1], level_animal_start[level]):
            j = by_depth[k]
            fs = F[parents[j, 0]] if parents[j, 0] >= 0 else -1.0
            fd = F[parents[j, 1]] if parents[j, 1] >= 0 else -1.0
            D[j] = 0.5 - 0.25 * (fs + fd)
        g0, g1 = level_group_start[level], level_group_start[level + 1]
        for t in prange(threads):
            for g in range(g0 + t, g1, threads):
                _family(group_start[g], group_start[g + 1], members, parents, D, F, mark[t],
                        anc[t], tmp[t], count[t], local_parents[t], D_local[t], w[t], v[t],
                        bits)
    return F


@njit(cache=True)
def _sort_column(rows, values, lo, hi):
    """Sort rows[lo:hi] (distinct) and values[lo:hi] with them: insertion sort when short."""
    if hi - lo <= 32:
        for a in range(lo + 1, hi):
            r, x = rows[a], values[a]
            b = a - 1
            while b >= lo and rows[b] > r:
                rows[b + 1] = rows[b]
                values[b + 1] = values[b]
                b -= 1
            rows[b + 1] = r
            values[b + 1] = x
    else:
        order = np.argsort(rows[lo:hi])
        rows[lo:hi] = rows[lo:hi][order]
        values[lo:hi] = values[lo:hi][order]


@njit(cache=True)
def a_inverse_csc(sire, dam, alpha):
    """Henderson's rules assembled straight into CSC arrays (indptr, indices, data): sorted row
    indices, each entry once (chapter 3).

    Animal i adds w_a w_b / d_i at (a, b) for a, b in (i, sire, dam) with weights (1, -1/2,
    -1/2), known parents only. So column c collects the rule of c itself (rows c and its parents)
    and those of its offspring i (rows i and i's parents, c among them); an entry met twice (a
    mate with several offspring, a parent that is also a mate) is summed in place.
    """
    n = len(sire)
    n_child = np.zeros(n + 1, np.int64)
    for i in range(n):
        for p in (sire[i], dam[i]):
            if p >= 0:
                n_child[p + 1] += 1
    child_start = np.cumsum(n_child)
    children = np.empty(child_start[n], np.int64)
    fill = child_start[:n].copy()
    for i in range(n):
        for p in (sire[i], dam[i]):  # a selfed animal is listed twice under its one parent
            if p >= 0:
                children[fill[p]] = i
                fill[p] += 1
    bound = 3 * n + 3 * child_start[n]
    indices = np.empty(bound, np.int64)
    data = np.empty(bound)
    indptr = np.zeros(n + 1, np.int64)
    slot = np.full(n, -1, np.int64)  # where row r sits in the column being built, if it does
    nnz = 0
    for c in range(n):
        start = nnz
        slot[c] = nnz
        indices[nnz] = c
        data[nnz] = alpha[c]
        nnz += 1
        for r in (sire[c], dam[c]):
            if r >= 0:
                if slot[r] >= start:
                    data[slot[r]] += -0.5 * alpha[c]
                else:
                    slot[r] = nnz
                    indices[nnz] = r
                    data[nnz] = -0.5 * alpha[c]
                    nnz += 1
        for k in range(child_start[c], child_start[c + 1]):
            i = children[k]
            a = alpha[i]
            for r, x in ((i, -0.5 * a), (sire[i], 0.25 * a), (dam[i], 0.25 * a)):
                if r >= 0:
                    if slot[r] >= start:
                        data[slot[r]] += x
                    else:
                        slot[r] = nnz
                        indices[nnz] = r
                        data[nnz] = x
                        nnz += 1
        _sort_column(indices, data, start, nnz)
        indptr[c + 1] = nnz
    return indptr, indices[:nnz], data[:nnz]


@njit(cache=True)
def ancestry(sire, dam, rows):
    """Mark ``rows`` and all their ancestors: one pass from the youngest animal to the oldest."""
    n = len(sire)
    keep = np.zeros(n, np.bool_)
    for r in rows:
        keep[r] = True
    for i in range(n - 1, -1, -1):
        if keep[i]:
            if sire[i] >= 0:
                keep[sire[i]] = True
            if dam[i] >= 0:
                keep[dam[i]] = True
    return keep


@njit(parallel=True, cache=True)
def a_times(sire, dam, d, X):
    """A X in place, A = T D T' with T = (I - P)^-1 (Colleau 2002), never forming A.

    Backwards (offspring before parents) X becomes T' X: each animal passes half of its value to
    each parent; then forwards (parents first) each row becomes d_i times its value plus half of
    its parents' new values. Two passes over the pedigree per column, in blocks of 8 columns per
    thread (each thread owns its columns, so no two threads write one entry).
    """
    n, k = X.shape
    width = 8
    for b in prange((k + width - 1) // width):
        lo = b * width
        hi = min(k, lo + width)
        for i in range(n - 1, -1, -1):
            s, m = sire[i], dam[i]
            for j in range(lo, hi):
                half = 0.5 * X[i, j]
                if s >= 0:
                    X[s, j] += half
                if m >= 0:
                    X[m, j] += half
        for i in range(n):
            s, m = sire[i], dam[i]
            for j in range(lo, hi):
                value = d[i] * X[i, j]
                if s >= 0:
                    value += 0.5 * X[s, j]
                if m >= 0:
                    value += 0.5 * X[m, j]
                X[i, j] = value
    return X
