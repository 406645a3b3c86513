"""Reading genotype files: PLINK 1 binary filesets and the plain 0/1/2 text of BLUPF90 (VCF/BCF:
:mod:`lmmbook.vcf`).

Every reader returns a :class:`GenotypeData`: the (n, m) counts ``M`` of the counted allele A1
(0, 1, 2; NaN for a missing call), the sample ``ids`` and a SNP table. It is what the rest of
lmmbook takes as genotypes: ``genomic_relationship``, ``snp_blup``, ``cross_validate(M=...)``,
``filter_markers`` and ``ssgblup(M=...)`` accept it directly and take the IDs (and the marker
names) from it. ``gblup`` receives G, an array: keep the IDs with ``gblup(y, X, G, ids=data.ids)``.

The binary and VCF formats are decoded by well-kept libraries, bed-reader (PLINK 1) and cyvcf2
(htslib); lmmbook checks what they leave unsaid (the magic bytes and the size of a .bed against
its .fam and .bim, duplicated IDs) and raises its own errors, which name the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import _checks, markers
from .errors import DuplicateIdError, FileFormatError, InputError, format_ids

__all__ = ["GenotypeData", "PlinkChunks", "read_plink", "read_genotype_text"]

SNP_COLUMNS = ["chromosome", "name", "cM", "position", "A1", "A2"]
SKIPPED_COLUMNS = ["chromosome", "position", "name", "REF", "ALT", "reason"]
BED_MAGIC = b"\x6c\x1b"  # then 0x01: SNP-major


def _skipped(rows: list | None = None) -> pd.DataFrame:
    return pd.DataFrame(rows or [], columns=SKIPPED_COLUMNS)


@dataclass(frozen=True, eq=False)
class GenotypeData:
    """Genotypes read from a file, with the sample IDs and the marker map.

    Attributes
    ----------
    M : (n, m) ndarray
        float64 counts of the counted allele A1 (0, 1, 2) per sample and marker, NaN for a
        missing call; read-only.
    ids : (n,) ndarray of str
        Sample IDs: the IID of a .fam, the sample names of a VCF, the first field of a text file.
    snps : pandas.DataFrame
        One row per column of ``M``: ``chromosome`` (str), ``name``, ``cM``, ``position`` (bp),
        ``A1`` (the counted allele) and ``A2``; 0 (and allele "0") where the file does not say.
    families : (n,) ndarray of str or None
        The FID of a .fam (None for the other formats).
    sex : (n,) ndarray of int or None
        The sex code of a .fam: 1 male, 2 female, 0 (or another code) unknown.
    skipped : pandas.DataFrame
        Sites of the file that are not in ``M``, and why (``chromosome``, ``position``, ``name``,
        ``REF``, ``ALT``, ``reason``); only a VCF has any.
    source : str
        The file read.
    """

    M: np.ndarray
    ids: np.ndarray
    snps: pd.DataFrame
    families: np.ndarray | None = None
    sex: np.ndarray | None = None
    skipped: pd.DataFrame = field(default_factory=_skipped)
    source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """(n, m): samples and markers."""
        return self.M.shape

    def to_genotypes(self) -> markers.Genotypes:
        """The checked genotypes (IDs and marker names included) that lmmbook's models take;
        checked once, then reused.

        Raises
        ------
        DuplicateIdError
            Two markers share a name (rename them, e.g. to chromosome:position).
        """
        checked = self.__dict__.get("_checked")
        if checked is None:
            names = pd.Index(self.snps["name"])
            _checks.unique_ids(f"the marker names of {self.source}", names)
            checked = replace(markers.as_genotypes(self.M, f"the genotypes of {self.source}"),
                              ids=self.ids, snp_names=names.to_numpy())
            object.__setattr__(self, "_checked", checked)  # a cache, not a field
        return checked

    def to_frame(self) -> pd.DataFrame:
        """``M`` as a DataFrame (a copy): IDs as index, marker names as columns."""
        return pd.DataFrame(self.M, index=pd.Index(self.ids, name="id"),
                            columns=self.snps["name"].to_numpy(), copy=True)


def _frozen_result(M, ids, snps, **rest) -> GenotypeData:
    M = np.ascontiguousarray(M, dtype=float)
    M.setflags(write=False)
    for key in ("families", "sex"):
        if rest.get(key) is not None:
            rest[key] = _checks.frozen(rest[key])
    return GenotypeData(M=M, ids=_checks.frozen(np.asarray(ids, dtype=str)),
                        snps=snps.reset_index(drop=True), **rest)


def _unique_samples(path: Path, ids: np.ndarray, families: np.ndarray | None = None) -> None:
    index = pd.Index(ids)
    repeated = pd.unique(index[index.duplicated()])
    if len(repeated):
        first = repeated[0]
        rows = np.flatnonzero(ids == first) + 1
        where = f"rows {', '.join(map(str, rows))}"
        if families is not None:
            where += f", families {format_ids(families[rows - 1])}"
        raise DuplicateIdError(
            f"{path}: sample ID(s) {format_ids(repeated)} occur more than once ({first!r} at "
            f"{where}); lmmbook joins by ID, so each sample needs its own. Rename the repeats "
            "(e.g. FID_IID) or remove the duplicated samples.")


# --------------------------------------------------------------------------- PLINK 1 binary

def _plink_files(prefix: str | os.PathLike) -> tuple[Path, Path, Path]:
    prefix = Path(prefix)
    if prefix.suffix in (".bed", ".bim", ".fam"):
        prefix = prefix.with_suffix("")
    files = tuple(prefix.with_name(prefix.name + ext) for ext in (".bed", ".bim", ".fam"))
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: a PLINK 1 fileset is {prefix}.bed, "
                                    ".bim and .fam, side by side.")
    return files


def _check_bed_header(bed: Path) -> None:
    with open(bed, "rb") as f:
        head = f.read(3)
    if head[:2] != BED_MAGIC:
        raise FileFormatError(
            f"{bed} does not start with the PLINK 1 magic bytes 0x6c 0x1b (it starts with "
            f"{' '.join(f'0x{b:02x}' for b in head) or 'nothing'}): it is not a PLINK 1 .bed "
            "file (a PLINK 2 .pgen or a text file renamed?).")
    if head[2:] != b"\x01":
        mode = f"0x{head[2]:02x}" if len(head) == 3 else "missing"
        what = " (individual-major, PLINK's oldest layout)" if head[2:] == b"\x00" else ""
        raise FileFormatError(
            f"{bed}: the mode byte after the magic bytes is {mode}{what}, not 0x01 (SNP-major). "
            "Rewrite it with `plink --bfile ... --make-bed`, which writes SNP-major.")


def _check_bed_size(bed: Path, fam: Path, bim: Path, n: int, m: int) -> None:
    per_snp = (n + 3) // 4  # 2 bits per animal, each SNP padded to whole bytes
    expected, actual = 3 + m * per_snp, bed.stat().st_size
    if actual == expected:
        return
    body = actual - 3
    fits = []
    if per_snp and body % per_snp == 0:
        fits.append(f"{body // per_snp} SNPs of {n} animals")
    if m and body % m == 0 and body // m != per_snp:
        k = body // m
        fits.append(f"{m} SNPs of {max(4 * k - 3, 1)} to {4 * k} animals")
    they = ("; its genotype bytes would fit " + " or ".join(fits)) if fits else (
        f"; its {body} genotype bytes are a whole number of SNPs neither of {n} animals nor "
        f"of {m} SNPs")
    raise FileFormatError(
        f"{bed} has {actual} bytes, but the {n} animals of {fam.name} and the {m} SNPs of "
        f"{bim.name} need 3 + {m} x {per_snp} = {expected} bytes{they}. The .bed is truncated "
        "(or longer than its .bim says), or the .fam or .bim belongs to another fileset.")


def _metadata(path: Path, read):
    try:
        return read()
    except ValueError as exc:  # bed-reader's parse errors do not name the file
        raise FileFormatError(f"{path} cannot be read: {exc}. A .fam has six columns (FID, IID, "
                              "father, mother, sex, phenotype); a .bim six (chromosome, name, "
                              "cM, position, A1, A2), separated by white space.") from None


@dataclass(frozen=True, eq=False)
class PlinkChunks:
    """A PLINK 1 fileset read lazily, ``chunk`` animals at a time (``read_plink(..., chunks=k)``).

    Only the .fam and .bim are held in memory. Each block is read from the .bed when it is asked
    for (bed-reader reads the k rows straight from the file), so the whole (n, m) matrix is never
    formed: iterating gives the blocks in the order of ``ids``, and stacking them gives exactly
    ``read_plink(prefix).M``. A block is an ordinary (<= k, m) float64 array, NaN for missing.

    Attributes
    ----------
    bed : str
        The .bed file.
    ids, families, sex, snps
        As in :class:`GenotypeData`.
    chunk : int
        Animals per block (the last block may be shorter).
    """

    bed: str
    ids: np.ndarray
    families: np.ndarray
    sex: np.ndarray
    snps: pd.DataFrame
    chunk: int

    @property
    def shape(self) -> tuple[int, int]:
        """(n, m) of the whole matrix (which is never read at once)."""
        return len(self.ids), len(self.snps)

    def __len__(self) -> int:
        """Number of blocks, ceil(n / chunk)."""
        return -(-len(self.ids) // self.chunk)

    def rows(self, i: int) -> slice:
        """The rows of the whole matrix (positions in ``ids``) that block i holds."""
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} of {len(self)}")
        return slice(i * self.chunk, min((i + 1) * self.chunk, len(self.ids)))

    def block(self, i: int) -> np.ndarray:
        """Read block i from the .bed: (rows, m) float64 counts of A1, NaN for missing."""
        from bed_reader import open_bed

        n, m = self.shape
        with open_bed(self.bed, iid_count=n, sid_count=m) as bed:
            return bed.read(index=np.s_[self.rows(i), :], dtype="float64", order="C")

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.block(i)


def read_plink(prefix: str | os.PathLike, *, chunks: int | None = None
               ) -> GenotypeData | PlinkChunks:
    """Read a PLINK 1 binary fileset (.bed, .bim, .fam): counts of A1, IDs and the SNP map.

    Parameters
    ----------
    prefix : str or path
        The fileset without extension (``data/mice`` for ``data/mice.bed`` ...); a path ending in
        .bed, .bim or .fam is taken as its prefix.
    chunks : int, optional
        Read lazily, this many animals per block: returns a :class:`PlinkChunks`, which holds the
        .fam and .bim and reads each block of rows from the .bed when it is iterated over, for
        data larger than memory. ``snp_blup`` (by PCG, ``lmmbook.chunked``) and
        ``SNPBLUPResult.predict`` take it; the other model functions need the whole matrix.
        Without ``chunks`` everything is read at once.

    Returns
    -------
    GenotypeData or PlinkChunks
        ``M`` (n, m) float64 with the count of A1 (column 5 of the .bim, PLINK's counted allele)
        and NaN for a missing call; ``ids`` the IID, ``families`` the FID, ``sex`` the .fam's code
        (1 male, 2 female, 0 unknown); ``snps`` with ``chromosome``, ``name``, ``cM``,
        ``position``, ``A1``, ``A2`` as in the .bim.

    Raises
    ------
    FileNotFoundError
        One of the three files is missing.
    FileFormatError
        The .bed does not start with the magic bytes 0x6c 0x1b 0x01 (SNP-major), or its size
        is not 3 + m ceil(n / 4) bytes for the n rows of the .fam and m rows of the .bim (the
        message gives both sizes); a .fam or .bim that bed-reader cannot parse.
    DuplicateIdError
        An IID occurs twice (also in different families: lmmbook joins by IID).
    InputError
        ``chunks`` is not a positive integer.

    Notes
    -----
    The .bed holds 2 bits per genotype, SNP by SNP, each SNP padded to whole bytes; bed-reader
    (Kadie & Heckerman) decodes it. Because of the padding, a .fam that is off by fewer animals
    than fill the last byte of a SNP cannot be told from the size; every other mismatch is
    caught before anything is decoded. Genotypes are counts of A1 as PLINK 1.9 counts them (its
    ``--recode A`` counts A1 too). The IDs stay with the data:
    ``genomic_relationship(data)`` returns G in the order of ``data.ids``; pass ``ids=data.ids``
    to ``gblup`` with that G.

    Examples
    --------
    >>> import lmmbook
    >>> from lmmbook.datasets import DATA  # the folder of the shipped data
    >>> data = lmmbook.read_plink(DATA / "mice" / "mice")
    >>> data.M.shape, data.ids[:2].tolist(), data.families[:2].tolist()
    ((1814, 10346), ['A048005080', 'A048006063'], ['F0001', 'F0002'])
    >>> data.snps.head(2)
      chromosome         name   cM  position A1 A2
    0          1  rs3683945_G  0.0         0  G  A
    1          1  rs3707673_G  0.0    100000  G  A
    >>> lazy = lmmbook.read_plink(DATA / "mice" / "mice", chunks=500)
    >>> len(lazy), [b.shape[0] for b in lazy]
    (4, [500, 500, 500, 314])
    """
    from bed_reader import open_bed

    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int | np.integer)
                               or chunks < 1):
        raise InputError(f"chunks must be a positive number of animals per block, got {chunks!r}.")
    bed, bim, fam = _plink_files(prefix)
    _check_bed_header(bed)
    with open_bed(bed, count_A1=True) as reader:
        ids = _metadata(fam, lambda: reader.iid)
        families = _metadata(fam, lambda: reader.fid)
        sex = _metadata(fam, lambda: reader.sex)
        snps = _metadata(bim, lambda: pd.DataFrame({
            "chromosome": reader.chromosome, "name": reader.sid,
            "cM": reader.cm_position.astype(float), "position": reader.bp_position.astype(np.int64),
            "A1": reader.allele_1, "A2": reader.allele_2}))
        n, m = len(ids), len(snps)
        _check_bed_size(bed, fam, bim, n, m)
        _unique_samples(fam, ids, families)
        if chunks is not None:
            return PlinkChunks(str(bed), _checks.frozen(ids), _checks.frozen(families),
                               _checks.frozen(sex), snps, int(chunks))
        M = reader.read(dtype="float64", order="C")
    return _frozen_result(M, ids, snps, families=families, sex=sex, source=str(bed))


# --------------------------------------------------------------------------- 0/1/2 text

def read_genotype_text(path: str | os.PathLike) -> GenotypeData:
    """Read the plain genotype text of BLUPF90 and many breeding programs: an ID, then one
    string of 0/1/2 codes (5 = missing) per line.

    Parameters
    ----------
    path : str or path
        A text file such as::

            bull13   2011000212
            bull141  1000020210
            cow7     5111002121

        The ID and the string are separated by white space; BLUPF90 pads the IDs so the strings
        start in the same column (fixed width), which is allowed but not required. Every string
        has the same length, one character per marker. Empty lines are ignored.

    Returns
    -------
    GenotypeData
        ``M`` (n, m) float64 (5 read as NaN); ``ids`` the first field; ``snps`` with names
        ``snp1`` ... ``snpm`` and the map unknown (chromosome "0", cM 0, position 0, alleles
        "0"): the file has no map, so join a map file by position if you have one.

    Raises
    ------
    FileFormatError
        A line that is not an ID and a string; strings of different lengths (the line named); a
        code other than 0, 1, 2 or 5 (line, marker and code named); an empty file.
    DuplicateIdError
        An ID occurs on two lines.

    Examples
    --------
    >>> import tempfile, pathlib, lmmbook
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "geno.txt"
    >>> _ = path.write_text("bull13   201\\nbull141  105\\n")
    >>> data = lmmbook.read_genotype_text(path)
    >>> data.ids.tolist(), data.M.tolist()
    (['bull13', 'bull141'], [[2.0, 0.0, 1.0], [1.0, 0.0, nan]])
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = [(k, line.split()) for k, line in enumerate(f, start=1) if line.strip()]
    if not lines:
        raise FileFormatError(f"{path} is empty: expected one line per animal, an ID and a "
                              "string of 0/1/2 codes (5 = missing).")
    for k, fields in lines:
        if len(fields) != 2:
            raise FileFormatError(
                f"{path}, line {k}: {len(fields)} field(s), expected 2 (an ID, then the "
                "genotype codes as one string without spaces, e.g. 'bull13 2011005').")
    first_line, (_, first) = lines[0][0], lines[0][1]
    m = len(first)
    for k, (_, codes) in lines:
        if len(codes) != m:
            raise FileFormatError(f"{path}, line {k}: {len(codes)} genotype codes, but line "
                                  f"{first_line} has {m}; every animal needs a code for every "
                                  "marker (5 = missing).")
    ids = np.asarray([fields[0] for _, fields in lines], dtype=str)
    _unique_samples(path, ids)
    joined = "".join(fields[1] for _, fields in lines)
    raw = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    if raw.size != len(joined):  # a character beyond ASCII: find it
        raw = np.array([min(ord(c), 255) for c in joined], dtype=np.uint8)
    codes = raw.reshape(len(lines), m) - np.uint8(ord("0"))
    bad = ~np.isin(codes, (0, 1, 2, 5))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise FileFormatError(
            f"{path}, line {lines[i][0]} (ID {str(ids[i])!r}), marker {j + 1}: code "
            f"{lines[i][1][1][j]!r}; codes are 0, 1, 2 (copies of the counted allele) and 5 "
            f"(missing) ({int(bad.sum())} unreadable code(s) in all).")
    M = codes.astype(float)
    M[codes == 5] = np.nan
    snps = pd.DataFrame({"chromosome": "0", "name": [f"snp{j}" for j in range(1, m + 1)],
                         "cM": 0.0, "position": 0, "A1": "0", "A2": "0"})
    return _frozen_result(M, ids, snps, source=str(path))
