"""read_vcf on small hand-written VCF files: phased, unphased, missing and haploid calls, sites
that are not biallelic SNPs (skipped and reported, or refused), and every error."""

import gzip

import numpy as np
import pytest

import lmmbook
from lmmbook.errors import DuplicateIdError, FileFormatError, InputError

HEADER = ["##fileformat=VCFv4.2", "##contig=<ID=1>", "##contig=<ID=2>", "##contig=<ID=X>",
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
          '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">']


def vcf_text(samples, *records):
    """A VCF from space-separated records (CHROM POS ID REF ALT FORMAT calls...)."""
    lines = HEADER + ["\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                                 "FORMAT", *samples])]
    for record in records:
        chrom, pos, id_, ref, alt, fmt, *calls = record.split()
        lines.append("\t".join([chrom, pos, id_, ref, alt, ".", ".", ".", fmt, *calls]))
    return "\n".join(lines) + "\n"


def write_vcf(path, samples, *records):
    path.write_text(vcf_text(samples, *records))
    return path


def test_read_vcf_dosages_of_phased_unphased_and_missing_calls(tmp_path, capfd):
    path = write_vcf(tmp_path / "a.vcf", ["s1", "s2", "s3", "s4"],
                     "1 100 rs1 A G GT 0/0 0/1 1/1 ./.",   # unphased
                     "1 200 .   C T GT 0|1 1|0 1|1 0|0",   # phased, no ID
                     "2 50  rs3 G A GT ./1 0/. 1/0 .|.",   # half-missing calls are missing
                     "X 10  rs4 T C GT:DP 1:5 0:3 .:0 0/1:7")  # haploid calls (a male's X)
    data = lmmbook.read_vcf(path)
    nan = np.nan
    expected = np.array([[0, 1, nan, 2], [1, 1, nan, 0], [2, 2, 1, nan], [nan, 0, nan, 1]])
    np.testing.assert_array_equal(data.M, expected)
    assert data.ids.tolist() == ["s1", "s2", "s3", "s4"]
    assert data.snps.to_dict("list") == {
        "chromosome": ["1", "1", "2", "X"], "name": ["rs1", "1:200", "rs3", "rs4"],
        "cM": [0.0] * 4, "position": [100, 200, 50, 10], "A1": ["G", "T", "A", "C"],
        "A2": ["A", "C", "G", "T"]}
    assert data.families is None and data.sex is None and data.skipped.empty
    assert not data.M.flags.writeable
    assert capfd.readouterr().err == ""  # htslib's chatter does not reach the terminal


def test_read_vcf_skips_and_reports_what_is_not_a_biallelic_snp(tmp_path):
    path = write_vcf(tmp_path / "b.vcf", ["a", "b"],
                     "1 1 rs1 A G GT 0/1 1/1",
                     "1 2 ins C CT GT 0/1 0/0",      # indel
                     "1 3 del CA C GT 0/1 0/0",      # indel
                     "1 4 mono A . GT 0/0 0/0",      # no ALT allele
                     "1 5 tri A C,T GT 1/2 0/0",     # multi-allelic
                     "2 6 rs6 T A GT 1/1 0/1")
    with pytest.raises(FileFormatError, match=r"b\.vcf: the site at chromosome 1, position 5 "
                       r"\(tri\) is multi-allelic \(REF A, ALT C,T\).*multiallelic='skip'"):
        lmmbook.read_vcf(path)
    data = lmmbook.read_vcf(path, multiallelic="skip")
    np.testing.assert_array_equal(data.M, [[1, 2], [2, 1]])
    assert data.snps["name"].tolist() == ["rs1", "rs6"]
    assert data.skipped.to_dict("list") == {
        "chromosome": ["1", "1", "1", "1"], "position": [2, 3, 4, 5],
        "name": ["ins", "del", "mono", "tri"], "REF": ["C", "CA", "A", "A"],
        "ALT": ["CT", "C", "", "C,T"],
        "reason": ["not a SNP", "not a SNP", "no ALT allele", "multi-allelic"]}


def test_read_vcf_of_a_gzipped_file(tmp_path):
    text = vcf_text(["a", "b", "c"], "1 1 rs1 A G GT 0/1 1/1 0/0")
    path = tmp_path / "c.vcf.gz"
    path.write_bytes(gzip.compress(text.encode()))
    np.testing.assert_array_equal(lmmbook.read_vcf(path).M, [[1], [2], [0]])


def test_read_vcf_errors(tmp_path, capfd):
    with pytest.raises(InputError, match="multiallelic must be 'raise' or 'skip'"):
        lmmbook.read_vcf(tmp_path / "x.vcf", multiallelic="keep")
    with pytest.raises(FileNotFoundError, match=r"x\.vcf does not exist"):
        lmmbook.read_vcf(tmp_path / "x.vcf")
    junk = tmp_path / "junk.vcf"
    junk.write_text("hello\nworld\n")
    with pytest.raises(FileFormatError, match=r"junk\.vcf cannot be read as VCF or BCF"):
        lmmbook.read_vcf(junk)
    dup = write_vcf(tmp_path / "dup.vcf", ["a", "b", "a"], "1 1 rs1 A G GT 0/1 1/1 0/0")
    with pytest.raises(DuplicateIdError, match=r"dup\.vcf: sample 'a' occurs more than once"):
        lmmbook.read_vcf(dup)
    bad_pos = write_vcf(tmp_path / "pos.vcf", ["a"], "1 1 rs1 A G GT 0/1", "1 abc rs2 A G GT 1/1")
    with pytest.raises(FileFormatError, match=r"pos\.vcf: htslib cannot parse the record after "
                       r"1:1 \(rs1\).*Could not parse the position 'abc'"):
        lmmbook.read_vcf(bad_pos)
    no_gt = write_vcf(tmp_path / "nogt.vcf", ["a", "b"], "1 1 rs1 A G DP 3 4")
    with pytest.raises(FileFormatError, match=r"nogt\.vcf: the site 1:1 \(rs1\) has no GT"):
        lmmbook.read_vcf(no_gt)
    triploid = write_vcf(tmp_path / "tri.vcf", ["a", "b"], "1 7 rs1 A G GT 0/1 0/1/1")
    with pytest.raises(FileFormatError, match=r"tri\.vcf: the call of sample 2 at 1:7 \(rs1\) "
                       r"has 3 alleles"):
        lmmbook.read_vcf(triploid)
    wrong_allele = write_vcf(tmp_path / "allele.vcf", ["a", "b"], "1 7 rs1 A G GT 0/1 0/2")
    with pytest.raises(FileFormatError, match=r"allele\.vcf: a call at 1:7 \(rs1\) names "
                       r"allele 2, but the site has one ALT allele"):
        lmmbook.read_vcf(wrong_allele)
    sites_only = tmp_path / "sites.vcf"
    sites_only.write_text("\n".join(HEADER) + "\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                          "1\t1\trs1\tA\tG\t.\t.\t.\n")
    with pytest.raises(FileFormatError, match=r"sites\.vcf has no samples"):
        lmmbook.read_vcf(sites_only)
    assert capfd.readouterr().err == ""


def test_duplicated_marker_names_are_refused_when_used(tmp_path):
    path = tmp_path / "d.vcf"
    write_vcf(path, ["a", "b", "c"], "1 1 rs1 A G GT 0/1 1/1 0/0", "1 2 rs1 C T GT 0/0 0/1 1/1")
    data = lmmbook.read_vcf(path)  # reading works: the names are only a label ...
    assert data.M.shape == (3, 2)
    with pytest.raises(DuplicateIdError, match=r"marker names of .*d\.vcf holds 'rs1'"):
        lmmbook.genomic_relationship(data)  # ... until a model needs them to be unique
