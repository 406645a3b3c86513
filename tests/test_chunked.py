"""Streamed genotypes (lmmbook.chunked): blocks, frequencies, centring and the products W v, W'u
against the dense matrix, on PLINK filesets written by bed-reader's to_bed (odd sizes, missing
calls, several chunk sizes)."""

import numpy as np
import pytest
from bed_reader import to_bed

import lmmbook
from lmmbook import chunked
from lmmbook.errors import InputError
from lmmbook.markers import center


def random_genotypes(n, m, seed, missing=0.05):
    """Counts with varied frequencies (some markers rare), NaN for a missing call."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, m)
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    M[rng.random((n, m)) < missing] = np.nan
    M[0, :] = np.where(np.isnan(M[0, :]), 1.0, M[0, :])  # no marker without a call
    return M


def write_bed(path, M):
    """A PLINK 1 fileset of counts of A1 (NaN = missing), by bed-reader."""
    n, m = M.shape
    to_bed(path, M.astype(np.float32), properties={
        "iid": [f"a{i}" for i in range(n)], "sid": [f"s{j}" for j in range(m)]})
    return path


@pytest.fixture(params=[(37, 23, 5), (101, 57, 16), (64, 9, 64), (50, 31, 7)],
                ids=lambda s: "x".join(map(str, s)))
def fileset(request, tmp_path):
    n, m, chunk = request.param
    M = random_genotypes(n, m, seed=n * m + chunk)
    bed = write_bed(tmp_path / "g.bed", M)
    return M, lmmbook.read_plink(bed, chunks=chunk)


def test_blocks_of_a_fileset_stack_to_the_matrix(fileset):
    M, lazy = fileset
    rows, parts = zip(*chunked.blocks(lazy), strict=True)
    np.testing.assert_array_equal(np.vstack(parts), M)
    assert [r.start for r in rows] == list(range(0, M.shape[0], lazy.chunk))
    assert chunked.shape_of(lazy) == M.shape and chunked.is_chunked(lazy)


@pytest.mark.parametrize("chunk", [1, 4, 1000, None])
def test_blocks_of_a_dense_matrix(chunk):
    M = random_genotypes(13, 5, seed=1)
    parts = [b for _, b in chunked.blocks(M, chunk)]
    np.testing.assert_array_equal(np.vstack(parts), M)
    assert all(len(b) <= (chunk or 13) for b in parts)
    assert not chunked.is_chunked(M)


def test_frequencies_in_one_pass_equal_the_dense_ones(fileset):
    M, lazy = fileset
    expected = np.nanmean(M, axis=0) / 2
    np.testing.assert_allclose(chunked.frequencies(lazy), expected, rtol=1e-14)
    np.testing.assert_allclose(chunked.frequencies(M), expected, rtol=1e-14)
    np.testing.assert_allclose(chunked.frequencies(M), lmmbook.allele_frequencies(M), rtol=1e-14)


def test_centred_block_is_the_dense_centring():
    M = random_genotypes(20, 8, seed=2, missing=0.2)
    p = lmmbook.allele_frequencies(M)
    np.testing.assert_array_equal(chunked.centred_block(M, p), center(M))
    scale = np.arange(8.0)
    np.testing.assert_array_equal(chunked.centred_block(M[3:7], p, scale), center(M)[3:7] * scale)


def test_products_equal_the_dense_ones(fileset):
    M, lazy = fileset
    n, m = M.shape
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.9, m)  # frequencies from elsewhere (a base population)
    W = center(M, p)
    scale = rng.uniform(0.5, 2, m)
    v, V = rng.normal(size=m), rng.normal(size=(m, 3))
    u, U = rng.normal(size=n), rng.normal(size=(n, 2))
    for source in (lazy, M):
        np.testing.assert_allclose(chunked.matvec(source, v, p), W @ v, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(chunked.matvec(source, V, p, scale=scale), (W * scale) @ V,
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(chunked.rmatvec(source, u, p), W.T @ u, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(chunked.rmatvec(source, U, p, scale=scale),
                                   (W * scale).T @ U, rtol=1e-12, atol=1e-12)


def test_products_refuse_a_vector_of_the_wrong_length():
    M = random_genotypes(6, 4, seed=3)
    p = lmmbook.allele_frequencies(M)
    with pytest.raises(InputError, match="v has 3 rows but the genotypes have 4 markers"):
        chunked.matvec(M, np.ones(3), p)
    with pytest.raises(InputError, match="u has 5 rows but the genotypes have 6 animals"):
        chunked.rmatvec(M, np.ones(5), p)


def test_a_marker_without_calls_is_named(tmp_path):
    M = random_genotypes(9, 4, seed=4)
    M[:, 2] = np.nan
    lazy = lmmbook.read_plink(write_bed(tmp_path / "g.bed", M), chunks=4)
    with pytest.raises(InputError, match="marker 2 has no call"):
        chunked.frequencies(lazy)


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_chunk_must_be_a_positive_integer(chunk):
    with pytest.raises(InputError, match="chunk must be a positive number of rows"):
        list(chunked.blocks(np.zeros((3, 2)), chunk))
