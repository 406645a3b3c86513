"""Reading VCF and BCF files: ALT-allele dosages of biallelic SNPs, through cyvcf2 (htslib).

The result is a :class:`lmmbook.readers.GenotypeData`, as from the other readers, which the model
functions take directly (IDs and marker names included).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DuplicateIdError, FileFormatError, InputError
from .readers import SNP_COLUMNS, GenotypeData, _frozen_result, _skipped, _unique_samples

__all__ = ["read_vcf"]

logger = logging.getLogger(__name__)


@contextmanager
def _htslib_messages():
    """Collect what htslib writes to the process's standard error (file descriptor 2) while
    reading, so that its reason can go into lmmbook's message instead of the terminal (or a
    notebook's stored output)."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2: nothing to redirect
            yield lambda: ""
            return

        def text() -> str:
            sink.flush()
            sink.seek(0)
            return sink.read().decode(errors="replace").strip()

        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            said = text()
            if said:
                logger.info("htslib: %s", said)


def _vcf_dosages(alleles: np.ndarray, where: str, path: Path) -> np.ndarray:
    """ALT dosage per sample from cyvcf2's allele codes (-1 missing, -2 no such chromosome)."""
    present = alleles != -2
    ploidy = present.sum(axis=1)
    if ploidy.max(initial=0) > 2 or ploidy.min(initial=2) < 1:
        i = int(np.flatnonzero((ploidy > 2) | (ploidy < 1))[0])
        raise FileFormatError(f"{path}: the call of sample {i + 1} at {where} has "
                              f"{int(ploidy[i])} alleles; lmmbook reads haploid and diploid "
                              "calls only.")
    if (alleles > 1).any():
        raise FileFormatError(f"{path}: a call at {where} names allele "
                              f"{int(alleles.max())}, but the site has one ALT allele.")
    dose = (alleles == 1).sum(axis=1).astype(float)
    dose[ploidy == 1] *= 2.0  # a haploid call as a homozygote, as PLINK 1.9 imports it
    dose[(alleles == -1).any(axis=1)] = np.nan
    return dose


def read_vcf(path: str | os.PathLike, *, multiallelic: str = "raise") -> GenotypeData:
    """Read ALT-allele dosages of the biallelic SNPs of a VCF or BCF file (plain or bgzipped).

    Parameters
    ----------
    path : str or path
    multiallelic : {"raise", "skip"}
        What to do with a site that has more than one ALT allele: refuse the file, naming the
        site ("raise"), or leave the site out and list it in ``skipped`` ("skip").

    Returns
    -------
    GenotypeData
        ``M`` (n, m) float64: the number of ALT alleles in each sample's GT (0, 1, 2), NaN when
        any allele of the call is missing (``./.``, ``./1``, ``.``); ``ids`` the sample names;
        ``snps`` with ``chromosome``, ``name`` (the ID column, or chromosome:position where it is
        "."), ``cM`` 0 (a VCF has no genetic map), ``position``, ``A1`` = ALT (the counted
        allele) and ``A2`` = REF; ``skipped`` lists every site left out and why; ``families``
        and ``sex`` are None.

    Raises
    ------
    FileNotFoundError
        No such file.
    FileFormatError
        A multi-allelic site with ``multiallelic="raise"`` (its chromosome and position named);
        a site without GT; a call with more than two alleles or an allele the site does not
        have; a file or record that htslib cannot parse (htslib's reason quoted).
    DuplicateIdError
        A sample name occurs twice in the header.
    InputError
        ``multiallelic`` is neither "raise" nor "skip".

    Notes
    -----
    Only biallelic SNPs (one-base REF and ALT) become columns of ``M``. Indels, other
    variants and sites with no ALT allele (``.``) are always skipped and reported, whatever
    ``multiallelic`` says. Phased (``0|1``) and unphased (``0/1``) calls are read alike. A
    haploid call (``0``, ``1``, as on a male's X) counts as a homozygote, 0 or 2, as PLINK 1.9
    imports it. cyvcf2 (Pedersen & Quinlan 2017) parses the file with htslib; what htslib says
    goes into the error message, or to the ``lmmbook.vcf`` logger (level INFO) when it
    only warns. The sites are read one by one in Python (about 10,000 sites of 2,000 samples a
    second); for millions of sites convert the file to PLINK 1 first (``plink --vcf``).

    Examples
    --------
    >>> import tempfile, pathlib, lmmbook
    >>> rows = ["#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT a b c",
    ...         "1 10 rs1 A G . . . GT 0/0 0|1 1/1",
    ...         "1 20 . C T . . . GT ./. 1|0 0/1",
    ...         "1 30 rs3 CA C . . . GT 0/0 0/1 0/1"]
    >>> text = "##fileformat=VCFv4.2\\n##contig=<ID=1>\\n" + "".join(
    ...     "\\t".join(row.split()) + "\\n" for row in rows)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.vcf"
    >>> _ = path.write_text(text)
    >>> data = lmmbook.read_vcf(path)
    >>> data.ids.tolist(), data.M.tolist()
    (['a', 'b', 'c'], [[0.0, nan], [1.0, 1.0], [2.0, 1.0]])
    >>> data.snps["name"].tolist(), data.skipped["reason"].tolist()
    (['rs1', '1:20'], ['not a SNP'])
    """
    from cyvcf2 import VCF

    if multiallelic not in ("raise", "skip"):
        raise InputError(f"multiallelic must be 'raise' or 'skip', got {multiallelic!r}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    columns, snps, skipped = [], [], []
    last = "the header"
    with _htslib_messages() as htslib:
        try:
            vcf = VCF(str(path))
        except Exception as exc:  # cyvcf2 raises bare Exception (and OSError) for bad headers
            said = htslib()
            dup = re.search(r"Duplicated sample name '([^']*)'", said)
            if dup:
                raise DuplicateIdError(
                    f"{path}: sample {dup.group(1)!r} occurs more than once in the header; "
                    "each sample needs its own name (rename it, e.g. with bcftools reheader)."
                ) from None
            raise FileFormatError(f"{path} cannot be read as VCF or BCF: {exc}"
                                  + (f" (htslib: {said})" if said else "")) from None
        try:
            ids = np.asarray(vcf.samples, dtype=str)
            _unique_samples(path, ids)
            if len(ids) == 0:
                raise FileFormatError(f"{path} has no samples (a sites-only VCF): there are no "
                                      "genotypes to read.")
            records = iter(vcf)
            while True:
                try:
                    v = next(records)
                except StopIteration:
                    break
                except Exception as exc:
                    said = htslib()
                    raise FileFormatError(
                        f"{path}: htslib cannot parse the record after {last}: {exc}"
                        + (f" (htslib: {said})" if said else "")) from None
                chrom, pos, name = v.CHROM, int(v.POS), v.ID or f"{v.CHROM}:{v.POS}"
                last = where = f"{chrom}:{pos} ({name})"
                alt = list(v.ALT)
                reason = None
                if len(alt) > 1:
                    if multiallelic == "raise":
                        raise FileFormatError(
                            f"{path}: the site at chromosome {chrom}, position {pos} ({name}) "
                            f"is multi-allelic (REF {v.REF}, ALT {','.join(alt)}); its dosage "
                            "of one ALT allele is not a 0/1/2 count. Pass "
                            "multiallelic='skip' to leave such sites out (they are listed in "
                            "the result's skipped), or split them first (bcftools norm -m-).")
                    reason = "multi-allelic"
                elif not alt:
                    reason = "no ALT allele"
                elif not v.is_snp:
                    reason = "not a SNP"
                if reason is not None:
                    skipped.append([chrom, pos, name, v.REF, ",".join(alt), reason])
                    continue
                if "GT" not in v.FORMAT:
                    raise FileFormatError(f"{path}: the site {where} has no GT field; "
                                          "lmmbook reads genotype calls (GT) only.")
                columns.append(_vcf_dosages(v.genotype.array()[:, :-1], where, path))
                snps.append([chrom, name, 0.0, pos, alt[0], v.REF])
        finally:
            vcf.close()
    M = np.column_stack(columns) if columns else np.empty((len(ids), 0))
    return _frozen_result(M, ids, pd.DataFrame(snps, columns=SNP_COLUMNS),
                          skipped=_skipped(skipped), source=str(path))
