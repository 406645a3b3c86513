import numpy as np
import pandas as pd
import pytest

import lmmbook
from lmmbook.errors import DuplicateIdError, InputError
from lmmbook.markers import allele_frequencies, as_genotypes, center, filter_markers


def test_values_other_than_012_are_named():
    M = pd.DataFrame([[0, 1], [3, 2]], index=["a", "b"], columns=["s1", "s2"])
    with pytest.raises(InputError, match=r"3\.0 at row 1 \(ID 'b'\), column 0 \(marker 's1'\)"):
        as_genotypes(M)
    with pytest.raises(InputError, match=r"-1\.0 at row 0, column 1"):
        as_genotypes(np.array([[0, -1], [1, 1]]))


def test_all_missing_marker_or_individual():
    with pytest.raises(InputError, match=r"marker\(s\) 1 .*no genotype call"):
        as_genotypes(np.array([[0, np.nan], [1, np.nan]]))
    with pytest.raises(InputError, match=r"individual\(s\) 'b' .*no genotype call"):
        as_genotypes(pd.DataFrame([[0, 1], [np.nan, np.nan]], index=["a", "b"]))


def test_duplicated_ids_and_markers():
    with pytest.raises(DuplicateIdError, match="'a' more than once"):
        as_genotypes(pd.DataFrame([[0], [1]], index=["a", "a"]))
    with pytest.raises(DuplicateIdError, match="'s' more than once"):
        as_genotypes(pd.DataFrame([[0, 1]], columns=["s", "s"]))


def test_frequencies_and_centring_with_missing_calls():
    M = np.array([[0, 2, np.nan], [2, 1, 1], [2, 0, 1]])
    np.testing.assert_allclose(allele_frequencies(M), [2 / 3, 0.5, 0.5])
    W = center(M)
    assert W[0, 2] == 0  # a missing call is imputed at the mean: centred value 0
    np.testing.assert_allclose(W[:, 0], [-4 / 3, 2 / 3, 2 / 3])
    W_base = center(M, allele_freq=[0.5, 0.5, 0.5])
    np.testing.assert_allclose(W_base[:, 0], [-1, 1, 1])
    with pytest.raises(InputError, match="one frequency per marker"):
        center(M, allele_freq=[0.5])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        center(M, allele_freq=[0.5, 1.5, 0.5])


def test_filter_reports_what_it_removed():
    rng = np.random.default_rng(0)
    M = rng.binomial(2, 0.4, size=(100, 6)).astype(float)
    M[:, 1] = 0  # monomorphic
    M[:, 2] = 0
    M[:3, 2] = 1  # maf 0.015
    M[:20, 3] = np.nan  # call rate 0.8
    frame = pd.DataFrame(M, columns=[f"s{k}" for k in range(6)])
    res = filter_markers(frame, maf=0.05, call_rate=0.9)
    assert res.kept.tolist() == [True, False, False, False, True, True]
    assert res.removed["marker"].tolist() == ["s1", "s2", "s3"]
    assert res.removed["reason"].tolist() == ["monomorphic", "maf < 0.05", "call rate < 0.9"]
    assert res.M.shape == (100, 3) and res.snp_names.tolist() == ["s0", "s4", "s5"]
    assert lmmbook.filter_markers is filter_markers


def test_missing_individual_id_or_marker_name_refused():
    M = pd.DataFrame([[0, 1], [2, 1]], index=["a", None], columns=["s1", "s2"])
    with pytest.raises(InputError, match="the index of M has a missing ID at position 1"):
        as_genotypes(M)
    M = pd.DataFrame([[0, 1], [2, 1]], index=["a", "b"], columns=[np.nan, "s2"])
    with pytest.raises(InputError, match="the columns of M has a missing ID at position 0"):
        as_genotypes(M)


def test_the_first_bad_value_is_named_after_missing_calls_and_all_are_counted():
    M = np.array([[0, 1, 2], [np.nan, 0.5, 2], [1, 2, np.inf]])
    with pytest.raises(InputError,
                       match=r"0\.5 at row 1, column 1; .*\(2 such value\(s\) in all\)"):
        as_genotypes(M)
    geno = as_genotypes(np.array([[0, 1, np.nan], [2, np.nan, np.nan], [1, 1, 2]]))
    assert geno.col_calls.tolist() == [3, 2, 1] and geno.col_sum.tolist() == [3, 2, 2]


# --- Hardy-Weinberg exact test ----------------------------------------------------------------

def _brute_force_hwe(n):
    """Exact null distributions for n individuals by enumeration: every way of placing the rarer
    allele's copies on the 2n allele slots (slots 2i and 2i+1 belong to individual i) is equally
    likely given the allele counts; returns counts[rare copies, heterozygotes]."""
    masks = np.arange(2 ** (2 * n), dtype=np.int64)
    bits = (masks[:, None] >> np.arange(2 * n)) & 1
    first, second = bits[:, 0::2], bits[:, 1::2]
    rare = bits.sum(axis=1)
    het = (first != second).sum(axis=1)
    counts = np.zeros((2 * n + 1, n + 1), dtype=np.int64)
    np.add.at(counts, (rare, het), 1)
    return counts


def _p_value_from_distribution(counts_row, het):
    from fractions import Fraction
    total = int(counts_row.sum())
    probs = [Fraction(int(c), total) for c in counts_row]
    return float(sum(p for p in probs if p <= probs[het]))


def test_hwe_exact_against_enumeration_for_every_configuration_of_up_to_8_individuals():
    from lmmbook._hwe import hwe_exact
    checked = 0
    for n in range(1, 9):
        counts = _brute_force_hwe(n)
        for hom1 in range(n + 1):
            for het in range(n + 1 - hom1):
                hom2 = n - hom1 - het
                rare = min(2 * hom1 + het, 2 * hom2 + het)
                expected = _p_value_from_distribution(counts[rare], het)
                got = hwe_exact(np.array([het]), np.array([hom1]), np.array([hom2]))[0]
                assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), (n, het, hom1, hom2)
                checked += 1
    assert checked == sum((n + 1) * (n + 2) // 2 for n in range(1, 9))


def test_hwe_exact_against_levene_formula_in_exact_arithmetic():
    """Larger samples: the distribution of Wigginton et al.'s equation 1 in rational arithmetic,
    against the recurrences in floating point."""
    from fractions import Fraction
    from math import factorial

    from lmmbook._hwe import hwe_exact

    def levene_p(het, hom1, hom2):
        n = het + hom1 + hom2
        rare = min(2 * hom1 + het, 2 * hom2 + het)
        probs = {}
        for h in range(rare % 2, rare + 1, 2):
            r = (rare - h) // 2
            c = n - h - r
            probs[h] = Fraction(factorial(n) * 2 ** h * factorial(rare) * factorial(2 * n - rare),
                                factorial(r) * factorial(h) * factorial(c) * factorial(2 * n))
        assert sum(probs.values()) == 1
        return float(sum(p for p in probs.values() if p <= probs[het]))

    rng = np.random.default_rng(3)
    cases = [(0, 30, 30), (60, 0, 0), (1, 0, 59), (2, 1, 57)]
    for _ in range(40):
        n = int(rng.integers(20, 120))
        het = int(rng.integers(0, n + 1))
        hom1 = int(rng.integers(0, n - het + 1))
        cases.append((het, hom1, n - het - hom1))
    het, hom1, hom2 = (np.array(c, dtype=np.int64) for c in zip(*cases, strict=True))
    got = hwe_exact(het, hom1, hom2)
    expected = [levene_p(*c) for c in cases]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)


def test_hwe_exact_reproduces_the_reference_implementation():
    """Values printed by the authors' C code (snp_hwe.c), as asserted in the test suite of the
    snphwe package (jeremymcrae/snphwe, tests/test_hwe.py), which wraps it:
    snphwe(hets, hom1, hom2)."""
    from lmmbook._hwe import hwe_exact
    got = hwe_exact(np.array([500, 1000, 200000]), np.array([10, 20, 200000]),
                    np.array([5000, 5000, 200000]))
    assert got[0] == pytest.approx(0.65157189991, abs=1e-10)
    assert got[1] == pytest.approx(1.26598491e-5, rel=1e-7)
    assert got[2] == 0.0


def test_filter_markers_hwe_names_the_markers_out_of_equilibrium():
    rng = np.random.default_rng(1)
    n = 200
    M = rng.binomial(2, 0.5, size=(n, 5)).astype(float)
    M[:, 1] = 1.0  # every animal heterozygous: far out of equilibrium
    M[:, 2] = np.where(rng.random(n) < 0.5, 0.0, 2.0)  # no heterozygote
    M[:, 3] = 0.0  # monomorphic: keeps that reason (its HWE p-value is 1)
    M[:30, 4] = np.nan  # low call rate wins over HWE
    M[30:, 4] = M[30:, 1]
    frame = pd.DataFrame(M, columns=["a", "b", "c", "d", "e"])
    before = filter_markers(frame)
    assert before.hwe_p is None and "hwe_p" not in before.removed.columns
    res = filter_markers(frame, hwe=1e-6)
    assert res.kept.tolist() == [True, False, False, False, False]
    assert res.removed["marker"].tolist() == ["b", "c", "d", "e"]
    assert res.removed["reason"].tolist() == ["hwe p < 1e-06", "hwe p < 1e-06", "monomorphic",
                                              "call rate < 0.9"]
    assert res.hwe_p[3] == 1.0 and res.hwe_p[1] < 1e-50 and res.hwe_p[2] < 1e-50
    assert res.hwe_p[0] > 1e-6
    np.testing.assert_array_equal(res.removed["hwe_p"].to_numpy(), res.hwe_p[1:])
    from lmmbook.markers import hardy_weinberg
    np.testing.assert_array_equal(hardy_weinberg(frame), res.hwe_p)
    # the other markers as without the test
    assert filter_markers(frame[["a", "d"]], hwe=1e-6).kept.tolist() == [True, False]
    with pytest.raises(InputError, match=r"hwe is a p-value threshold in \[0, 1\]"):
        filter_markers(frame, hwe=2.0)


def test_hwe_p_values_are_roughly_uniform_in_equilibrium():
    """Under equilibrium the exact test is conservative (discrete), never anticonservative:
    the share of p-values below 0.05 stays at or under 0.05 up to sampling error."""
    from lmmbook.markers import hardy_weinberg
    rng = np.random.default_rng(7)
    p = rng.uniform(0.1, 0.9, size=4000)
    M = rng.binomial(2, p, size=(300, 4000)).astype(float)
    share = float(np.mean(hardy_weinberg(M) < 0.05))
    assert 0.02 < share < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)
