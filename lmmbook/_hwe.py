"""The exact test of Hardy-Weinberg equilibrium (private, compiled): Wigginton, Cutler & Abecasis
(2005).

Given a marker's n individuals and its n_r copies of the rarer allele, the number of
heterozygotes n_AB has the distribution (their equation 1, after Levene 1949)

    P(n_AB | n, n_r) = n! / (n_AA! n_AB! n_BB!) 2^n_AB n_r! (2n - n_r)! / (2n)!,

and n_AB has the parity of n_r. The probabilities are built by the recurrences of the paper
outwards from the mode (so nothing overflows), normalised, and the p-value is the total
probability of the het counts no more likely than the observed one.
"""

import numpy as np
from numba import njit

#: Relative tolerance below which two probabilities of the null distribution count as tied (the
#: recurrences make a tie differ in its last bits); PLINK 1.9 does the same.
TIE_TOLERANCE = 1e-7


@njit(cache=True)
def _one(het, hom1, hom2, buffer):
    rare_hom = min(hom1, hom2)
    common_hom = max(hom1, hom2)
    n = het + rare_hom + common_hom
    rare = 2 * rare_hom + het  # copies of the rarer allele
    if n == 0 or rare == 0:
        return 1.0
    probs = buffer[:rare + 1]
    probs[:] = 0.0
    mid = (rare * (2 * n - rare)) // (2 * n)  # the mode, near the expected count
    if mid % 2 != rare % 2:
        mid += 1
    probs[mid] = 1.0
    total = 1.0
    h = mid
    r = (rare - mid) // 2
    c = n - mid - r
    while h > 1:  # fewer heterozygotes: one more of each homozygote
        probs[h - 2] = probs[h] * h * (h - 1) / (4.0 * (r + 1.0) * (c + 1.0))
        total += probs[h - 2]
        h -= 2
        r += 1
        c += 1
    h = mid
    r = (rare - mid) // 2
    c = n - mid - r
    while h <= rare - 2:  # more heterozygotes: one fewer of each homozygote
        probs[h + 2] = probs[h] * 4.0 * r * c / ((h + 2.0) * (h + 1.0))
        total += probs[h + 2]
        h += 2
        r -= 1
        c -= 1
    limit = probs[het] * (1.0 + TIE_TOLERANCE)
    p = 0.0
    for k in range(rare % 2, rare + 1, 2):
        if probs[k] <= limit:
            p += probs[k]
    return min(1.0, p / total)


@njit(cache=True)
def hwe_exact(het, hom1, hom2):
    """Exact two-sided p-values of Hardy-Weinberg equilibrium, one per marker, from the integer
    counts of heterozygotes and of the two homozygotes (arrays of one length)."""
    m = het.shape[0]
    out = np.empty(m)
    largest = 0
    for j in range(m):
        largest = max(largest, 2 * (het[j] + hom1[j] + hom2[j]) + 1)
    buffer = np.empty(largest + 1)
    for j in range(m):
        out[j] = _one(het[j], hom1[j], hom2[j], buffer)
    return out
