"""Readers of genotype files: PLINK 1 against an independent writer and the shipped mice fileset,
0/1/2 text against hand-written files, every error, lazy blocks, and the models taking a reader's
result directly (VCF: tests/test_vcf.py)."""

import hashlib

import bed_reader
import numpy as np
import pandas as pd
import pytest

import lmmbook
from lmmbook import readers
from lmmbook.datasets import DATA
from lmmbook.errors import DuplicateIdError, FileFormatError, InputError

# ---------------------------------------------------------------- an independent PLINK 1 writer

# 2-bit codes of the PLINK 1 .bed (first animal in the lowest two bits of a byte), by count of A1
CODE = {2: 0b00, "missing": 0b01, 1: 0b10, 0: 0b11}


def write_plink(prefix, M, *, ids=None, families=None, sex=None, chromosomes=None,
                header=b"\x6c\x1b\x01"):
    """Write counts of A1 (NaN = missing) as .bed/.bim/.fam, without bed-reader."""
    n, m = M.shape
    ids = [f"i{k}" for k in range(n)] if ids is None else ids
    families = [f"f{k // 2}" for k in range(n)] if families is None else families
    sex = [1 + k % 2 for k in range(n)] if sex is None else sex
    chromosomes = ["1"] * m if chromosomes is None else chromosomes
    body = bytearray()
    for j in range(m):  # SNP-major, each SNP padded to whole bytes
        column = bytearray((n + 3) // 4)
        for i in range(n):
            code = CODE["missing"] if np.isnan(M[i, j]) else CODE[int(M[i, j])]
            column[i // 4] |= code << (2 * (i % 4))
        body += column
    prefix.with_suffix(".bed").write_bytes(header + bytes(body))
    prefix.with_suffix(".fam").write_text("".join(
        f"{f} {i} 0 0 {s} -9\n" for f, i, s in zip(families, ids, sex, strict=True)))
    prefix.with_suffix(".bim").write_text("".join(
        f"{c}\tsnp{j}\t{0.5 * j}\t{1000 * (j + 1)}\tA\tG\n" for j, c in enumerate(chromosomes)))
    return prefix


def random_counts(n, m, seed, missing=0.1):
    rng = np.random.default_rng(seed)
    M = rng.integers(0, 3, size=(n, m)).astype(float)
    M[rng.random((n, m)) < missing] = np.nan
    return M


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 9, 13])
def test_read_plink_equals_what_was_written(tmp_path, n):
    m = 6
    M = random_counts(n, m, seed=n, missing=0.2)
    chromosomes = ["1", "1", "2", "5", "X", "X"]
    sex = [[1, 2, 0][k % 3] for k in range(n)]
    write_plink(tmp_path / "g", M, sex=sex, chromosomes=chromosomes)
    data = lmmbook.read_plink(tmp_path / "g")
    np.testing.assert_array_equal(data.M, M)  # NaN where written missing, exactly
    assert data.M.dtype == np.float64 and data.M.shape == (n, m) and data.M.flags.c_contiguous
    assert not data.M.flags.writeable
    assert data.ids.tolist() == [f"i{k}" for k in range(n)]
    assert data.families.tolist() == [f"f{k // 2}" for k in range(n)]
    assert data.sex.tolist() == sex
    assert data.snps.columns.tolist() == ["chromosome", "name", "cM", "position", "A1", "A2"]
    assert data.snps["chromosome"].tolist() == chromosomes
    assert data.snps["name"].tolist() == [f"snp{j}" for j in range(m)]
    assert data.snps["cM"].tolist() == [0.5 * j for j in range(m)]
    assert data.snps["position"].tolist() == [1000 * (j + 1) for j in range(m)]
    assert set(data.snps["A1"]) == {"A"} and set(data.snps["A2"]) == {"G"}
    assert data.skipped.empty and data.source == str(tmp_path / "g.bed")


def test_read_plink_takes_a_file_name_as_prefix(tmp_path):
    M = random_counts(5, 3, seed=1)
    write_plink(tmp_path / "g", M)
    for name in ("g.bed", "g.bim", "g.fam"):
        np.testing.assert_array_equal(lmmbook.read_plink(tmp_path / name).M, M)


def test_shipped_mice_fileset_has_the_published_checksum():
    data = lmmbook.read_plink(DATA / "mice" / "mice")
    assert data.M.shape == (1814, 10346)
    assert not np.isnan(data.M).any()  # no missing calls in this fileset
    counts = np.ascontiguousarray(data.M.astype(np.int8))
    np.testing.assert_array_equal(counts, data.M)  # 0/1/2 exactly
    # typed once from the data's README (the provenance note of the converted files)
    expected = "ba7f6b465476e7abde13fd25abfb22cd0247fb3020e13485aa79085153e89c85"
    assert hashlib.sha256(counts.tobytes()).hexdigest() == expected


# ---------------------------------------------------------------- PLINK errors

def test_wrong_magic_bytes_are_named(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=2), header=b"\x00\x00\x01")
    with pytest.raises(FileFormatError, match=r"g\.bed does not start with the PLINK 1 magic "
                       r"bytes 0x6c 0x1b \(it starts with 0x00 0x00 0x01\)"):
        lmmbook.read_plink(tmp_path / "g")


def test_individual_major_bed_is_refused(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=2), header=b"\x6c\x1b\x00")
    with pytest.raises(FileFormatError, match=r"mode byte .* is 0x00 \(individual-major"):
        lmmbook.read_plink(tmp_path / "g")


def test_empty_bed_is_refused(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=2))
    (tmp_path / "g.bed").write_bytes(b"")
    with pytest.raises(FileFormatError, match="it starts with nothing"):
        lmmbook.read_plink(tmp_path / "g")


def test_truncated_bed_gives_expected_and_actual_size(tmp_path):
    write_plink(tmp_path / "g", random_counts(7, 5, seed=3))  # 3 + 5 x 2 = 13 bytes
    bed = tmp_path / "g.bed"
    bed.write_bytes(bed.read_bytes()[:-3])
    with pytest.raises(FileFormatError) as info:
        lmmbook.read_plink(tmp_path / "g")
    message = str(info.value)
    assert "g.bed has 10 bytes" in message
    assert "7 animals of g.fam and the 5 SNPs of g.bim need 3 + 5 x 2 = 13 bytes" in message
    assert "truncated" in message


def test_bim_with_a_row_too_few(tmp_path):
    write_plink(tmp_path / "g", random_counts(7, 5, seed=3))
    bim = tmp_path / "g.bim"
    bim.write_text("".join(bim.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(FileFormatError, match=r"g\.bed has 13 bytes, but the 7 animals of g\.fam "
                       r"and the 4 SNPs of g\.bim need 3 \+ 4 x 2 = 11 bytes; its genotype "
                       r"bytes would fit 5 SNPs of 7 animals"):
        lmmbook.read_plink(tmp_path / "g")


def test_fam_with_rows_too_many(tmp_path):
    write_plink(tmp_path / "g", random_counts(8, 5, seed=3))  # 2 bytes per SNP
    fam = tmp_path / "g.fam"
    fam.write_text(fam.read_text() + "f9 extra 0 0 1 -9\n")  # 9 animals need 3 bytes per SNP
    with pytest.raises(FileFormatError, match=r"the 9 animals of g\.fam .* need 3 \+ 5 x 3 = 18 "
                       r"bytes; its genotype bytes would fit 5 SNPs of 5 to 8 animals"):
        lmmbook.read_plink(tmp_path / "g")


def test_duplicated_iid_is_named(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=4), ids=["a", "b", "c", "b", "e"],
                families=["F1", "F1", "F2", "F3", "F3"])
    with pytest.raises(DuplicateIdError, match=r"g\.fam: sample ID\(s\) 'b' occur more than "
                       r"once \('b' at rows 2, 4, families 'F1', 'F3'\)"):
        lmmbook.read_plink(tmp_path / "g")


def test_unparsable_fam_names_the_file(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=4))
    fam = tmp_path / "g.fam"
    fam.write_text(fam.read_text().replace("f0 i0 0 0 1", "f0 i0 0 0 F"))
    with pytest.raises(FileFormatError, match=r"g\.fam cannot be read: .*'F'"):
        lmmbook.read_plink(tmp_path / "g")


def test_unparsable_bim_names_the_file(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=4))
    bim = tmp_path / "g.bim"
    bim.write_text(bim.read_text().replace("\t1000\t", "\tabc\t"))
    with pytest.raises(FileFormatError, match=r"g\.bim cannot be read: .*abc"):
        lmmbook.read_plink(tmp_path / "g")


def test_missing_file_of_the_fileset(tmp_path):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=4))
    (tmp_path / "g.bim").unlink()
    with pytest.raises(FileNotFoundError, match=r"g\.bim does not exist"):
        lmmbook.read_plink(tmp_path / "g")


@pytest.mark.parametrize("chunks", [0, -2, 1.5, True, "10"])
def test_chunks_must_be_a_positive_integer(tmp_path, chunks):
    write_plink(tmp_path / "g", random_counts(5, 3, seed=4))
    with pytest.raises(InputError, match="chunks must be a positive number"):
        lmmbook.read_plink(tmp_path / "g", chunks=chunks)


# ---------------------------------------------------------------- lazy blocks

@pytest.fixture
def read_calls(monkeypatch):
    """The shapes of the arrays bed-reader returns, call by call."""
    shapes = []
    original = bed_reader.open_bed.read

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(bed_reader.open_bed, "read", spy)
    return shapes


@pytest.mark.parametrize("n, chunk", [(13, 4), (13, 13), (13, 50), (12, 3), (1, 1)])
def test_chunks_give_exactly_the_dense_counts(tmp_path, n, chunk, read_calls):
    M = random_counts(n, 7, seed=n + chunk, missing=0.15)
    write_plink(tmp_path / "g", M, chromosomes=list("1122345"))
    lazy = lmmbook.read_plink(tmp_path / "g", chunks=chunk)
    assert isinstance(lazy, lmmbook.PlinkChunks)
    assert read_calls == []  # nothing decoded until a block is asked for
    assert lazy.shape == (n, 7) and len(lazy) == -(-n // chunk)
    blocks = list(lazy)
    assert read_calls == [b.shape for b in blocks]  # one read per block ...
    assert all(rows <= chunk for rows, _ in read_calls)  # ... never more than `chunk` animals
    np.testing.assert_array_equal(np.vstack(blocks), M)
    assert all(b.dtype == np.float64 for b in blocks)
    dense = lmmbook.read_plink(tmp_path / "g")
    assert lazy.ids.tolist() == dense.ids.tolist()
    assert lazy.families.tolist() == dense.families.tolist()
    assert lazy.sex.tolist() == dense.sex.tolist()
    pd.testing.assert_frame_equal(lazy.snps, dense.snps)
    for i in range(len(lazy)):  # rows(i) says which IDs block i holds
        np.testing.assert_array_equal(lazy.block(i), M[lazy.rows(i)])
    with pytest.raises(IndexError):
        lazy.block(len(lazy))


def test_chunks_check_the_fileset_like_a_full_read(tmp_path):
    write_plink(tmp_path / "g", random_counts(7, 5, seed=3))
    bed = tmp_path / "g.bed"
    bed.write_bytes(bed.read_bytes()[:-1])
    with pytest.raises(FileFormatError, match="need 3 \\+ 5 x 2 = 13 bytes"):
        lmmbook.read_plink(tmp_path / "g", chunks=2)


# ---------------------------------------------------------------- 0/1/2 text

def test_read_genotype_text_fixed_width_and_plain(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("bull13   2011005\nbull141  1000020\n\ncow7     5555555\nc        0122100\n")
    data = lmmbook.read_genotype_text(path)
    nan = np.nan
    np.testing.assert_array_equal(data.M, [[2, 0, 1, 1, 0, 0, nan], [1, 0, 0, 0, 0, 2, 0],
                                           [nan] * 7, [0, 1, 2, 2, 1, 0, 0]])
    assert data.ids.tolist() == ["bull13", "bull141", "cow7", "c"]
    assert data.snps["name"].tolist() == [f"snp{j}" for j in range(1, 8)]
    assert data.snps["chromosome"].unique().tolist() == ["0"] and data.families is None
    assert not data.M.flags.writeable


def test_read_genotype_text_errors(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a 012\nb 0x2\nc 01-\n")
    with pytest.raises(FileFormatError, match=r"g\.txt, line 2 \(ID 'b'\), marker 2: code 'x'; "
                       r"codes are 0, 1, 2 .* and 5 \(missing\) \(2 unreadable code\(s\) in all\)"):
        lmmbook.read_genotype_text(path)
    path.write_text("a 012\nb 01é\n")
    with pytest.raises(FileFormatError, match=r"line 2 \(ID 'b'\), marker 3: code 'é'"):
        lmmbook.read_genotype_text(path)
    path.write_text("a 012\nb 0122\n")
    with pytest.raises(FileFormatError, match=r"g\.txt, line 2: 4 genotype codes, but line 1 "
                       "has 3"):
        lmmbook.read_genotype_text(path)
    path.write_text("a 012\nb 0 1 2\n")
    with pytest.raises(FileFormatError, match=r"g\.txt, line 2: 4 field\(s\), expected 2"):
        lmmbook.read_genotype_text(path)
    path.write_text("\n\n")
    with pytest.raises(FileFormatError, match=r"g\.txt is empty"):
        lmmbook.read_genotype_text(path)
    path.write_text("a 012\nb 111\na 210\n")
    with pytest.raises(DuplicateIdError, match=r"g\.txt: sample ID\(s\) 'a' occur more than "
                       r"once \('a' at rows 1, 3\)"):
        lmmbook.read_genotype_text(path)


# ---------------------------------------------------------------- the models take the result

@pytest.fixture
def plink_data(tmp_path):
    n, m = 41, 30
    M = random_counts(n, m, seed=7, missing=0.05)
    chromosomes = [str(1 + j // 10) for j in range(m)]
    write_plink(tmp_path / "g", M, ids=[f"a{k}" for k in range(n)], chromosomes=chromosomes)
    return lmmbook.read_plink(tmp_path / "g")


def test_models_take_a_reader_result_with_its_ids(plink_data):
    data = plink_data
    frame = data.to_frame()
    assert frame.index.tolist() == data.ids.tolist()
    assert frame.columns.tolist() == data.snps["name"].tolist()
    np.testing.assert_array_equal(lmmbook.genomic_relationship(data),
                                  lmmbook.genomic_relationship(data.M))
    rng = np.random.default_rng(3)
    # phenotypes joined by ID: given in reverse order, with the last five animals unphenotyped
    y = pd.Series(rng.normal(size=36), index=data.ids[:36]).iloc[::-1]
    X = np.ones((41, 1))
    fit = lmmbook.snp_blup(y, X, data, sigma2_alpha=0.05, sigma2_e=1.0)
    ref = lmmbook.snp_blup(y, X, frame, sigma2_alpha=0.05, sigma2_e=1.0)
    assert fit.ids.tolist() == data.ids.tolist()
    assert fit.snp_names.tolist() == data.snps["name"].tolist()
    np.testing.assert_allclose(fit.gebv, ref.gebv, rtol=1e-12, atol=1e-12)
    folds = lmmbook.kfold(data.ids, 3, seed=1)
    cv = lmmbook.cross_validate(y, X, folds, M=data, sigma2_u=0.5, sigma2_e=1.0)
    cv_ref = lmmbook.cross_validate(y, X, folds, M=frame, sigma2_u=0.5, sigma2_e=1.0)
    pd.testing.assert_frame_equal(cv.predictions, cv_ref.predictions)
    kept = lmmbook.filter_markers(data, maf=0.3)
    assert kept.snp_names.tolist() == data.snps["name"][kept.kept].tolist()


def test_ssgblup_takes_the_ids_from_a_reader_result(plink_data):
    data = plink_data
    # founders f0..f9 and the 41 genotyped animals as their offspring
    founders = [f"f{k}" for k in range(10)]
    animals = founders + data.ids.tolist()
    sires = ["0"] * 10 + [founders[k % 5] for k in range(41)]
    dams = ["0"] * 10 + [founders[5 + k % 5] for k in range(41)]
    ped = lmmbook.Pedigree(animals, sires, dams)
    rng = np.random.default_rng(5)
    y = pd.Series(rng.normal(size=41), index=data.ids)
    X = pd.DataFrame({"mu": 1.0}, index=pd.Index(animals))
    fit = lmmbook.ssgblup(y, X, ped, data, sigma2_u=0.4, sigma2_e=1.0,
                         min_correlation=None)  # random genotypes: G does not follow A22
    ref = lmmbook.ssgblup(y, X, ped, data.M, ids=data.ids, sigma2_u=0.4, sigma2_e=1.0,
                         min_correlation=None)
    np.testing.assert_allclose(fit.u, ref.u, rtol=1e-12, atol=1e-12)
    assert fit.genotyped.sum() == 41


def test_to_genotypes_checks_the_counts_once(plink_data, monkeypatch):
    first = plink_data.to_genotypes()
    monkeypatch.setattr(readers.markers, "as_genotypes",
                        lambda *a, **k: pytest.fail("checked twice"))
    assert plink_data.to_genotypes() is first
    assert first.ids.tolist() == plink_data.ids.tolist()
