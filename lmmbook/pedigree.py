"""Pedigrees: the numerator relationship matrix A, inbreeding, and A^-1 by Henderson's rules
(chapter 3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from . import _marker_loops
from . import _pedigree_loops as loops
from .design import Incidence, incidence
from .errors import DuplicateIdError, InputError, PedigreeError, UnknownIdError, format_ids

__all__ = ["Pedigree", "DEFAULT_MISSING", "DENSE_A_MAX"]

#: Parent values that mean "unknown" unless the caller names others with ``missing=``.
DEFAULT_MISSING = (None, "", 0, "0")

#: ``Pedigree.A22`` computes its columns in blocks of about this many numbers (8 MB: the two
#: passes' scattered reads stay in cache), and at least 16 columns (8 per thread).
A22_BLOCK_ENTRIES = 2**20

#: ``Pedigree.A()`` refuses pedigrees larger than this (A needs n^2 * 8 bytes: 3.2 GB at 20,000).
DENSE_A_MAX = 20_000


class Pedigree:
    """A pedigree: animals with their sire and dam, ordered so that parents precede offspring.

    Parameters
    ----------
    animal, sire, dam : (n,) array_like
        IDs (strings or integers). An unknown parent is NaN, None, "", 0 or "0" by default.
    missing : iterable, optional
        The values that mean "unknown parent", replacing the default. An integer ID 0 is read as
        "unknown" by default: pass, for example, ``missing=[None, -1]`` if 0 is a real animal.
    allow_selfing : bool, optional
        Accept an animal whose sire and dam are the same individual (legal in plants), and IDs that
        appear both as sire and as dam. Default False: both are refused as errors in the data.

    Attributes
    ----------
    ids : (n,) ndarray
        The animals in the order used by every vector and matrix of this object: parents precede
        offspring; animals at the same depth keep their input order; founders that appear only as
        parents are added first.
    sire, dam : (n,) ndarray of int
        Row of each animal's sire and dam in ``ids``, -1 when unknown.
    depth : (n,) ndarray of int
        0 for founders, else 1 + the larger depth of the parents.

    Raises
    ------
    PedigreeError
        An animal is listed more than once with parents that differ in any way, a known parent
        against an unknown one included (the message names the animal, its parent pairs and the
        rows); repeats with identical parents, however "unknown" is spelled, are merged into one
        row. An animal is its own parent or its own ancestor (the message prints the loop); sire
        and dam are the same animal, or one ID is used both as a sire and as a dam, without
        ``allow_selfing``.

    Notes
    -----
    Chapter 3. ``inbreeding()`` uses the indirect method of Colleau (2002) organised in sire
    families as by Sargolzaei, Iwaisaki & Colleau (2005); ``A_inverse()`` Henderson's (1976) rules
    with inbreeding (Quaas 1976).

    Examples
    --------
    >>> import lmmbook
    >>> ped = lmmbook.Pedigree(animal=[3, 1, 2], sire=[1, 0, 0], dam=[2, 0, 0])
    >>> ped.ids.tolist(), ped.sire.tolist()
    ([1, 2, 3], [-1, -1, 0])
    >>> ped.A()
    array([[1. , 0. , 0.5],
           [0. , 1. , 0.5],
           [0.5, 0.5, 1. ]])
    """

    def __init__(self, animal: ArrayLike, sire: ArrayLike, dam: ArrayLike, *,
                 missing: Iterable[Any] | None = None, allow_selfing: bool = False) -> None:
        self.allow_selfing = bool(allow_selfing)
        fast = _integer_index(animal, sire, dam, missing, self.allow_selfing)
        if fast is not None:
            all_ids, s_idx, d_idx = fast
        else:
            all_ids, s_idx, d_idx = _general_index(animal, sire, dam, missing,
                                                   self.allow_selfing)

        order, depth, n_done = loops.topological_order(s_idx, d_idx)
        if n_done < len(all_ids):
            raise PedigreeError(_describe_loop(all_ids, s_idx, d_idx, order[:n_done]))
        # stable: by depth, then input order
        order = np.argsort(depth, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        self.ids = np.asarray(all_ids[order], dtype=object if all_ids.dtype == object else None)
        self.sire = np.where(s_idx[order] >= 0, position[s_idx[order]], -1)
        self.dam = np.where(d_idx[order] >= 0, position[d_idx[order]], -1)
        self.depth = depth[order]
        self._index = pd.Index(self.ids)
        self._F: np.ndarray | None = None
        for a in (self.ids, self.sire, self.dam, self.depth):
            a.setflags(write=False)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, animal: str = "animal", sire: str = "sire",
                   dam: str = "dam", **kwargs: Any) -> Pedigree:
        """Build from a DataFrame's columns (or its index for ``animal`` when no such column)."""
        ids = df[animal] if animal in df.columns else df.index.to_series()
        return cls(ids.to_numpy(), df[sire].to_numpy(), df[dam].to_numpy(), **kwargs)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        founders = int(np.sum((self.sire < 0) & (self.dam < 0)))
        return (f"Pedigree({len(self)} animals, {founders} founders, "
                f"{int(self.depth.max()) + 1 if len(self) else 0} generations deep)")

    def index(self, ids: ArrayLike) -> np.ndarray:
        """Rows of ``ids`` in this pedigree's order; an unknown ID is refused by name."""
        ids = pd.Index(np.atleast_1d(np.asarray(ids, dtype=object)))
        rows = self._index.get_indexer(ids)
        if (rows < 0).any():
            raise UnknownIdError(
                f"{format_ids(ids[rows < 0])} {'is' if (rows < 0).sum() == 1 else 'are'} not in "
                f"the pedigree ({len(self)} animals). Add the animal to the pedigree (with unknown "
                "parents if need be) or correct the ID."
            )
        return rows

    def incidence(self, animal_of_record: ArrayLike) -> Incidence:
        """Z for records of these animals: one column per animal of the pedigree, in ``ids`` order.

        A record of an animal that is not in the pedigree is refused by name.
        """
        try:
            return incidence(animal_of_record, levels=self.ids, name="the animal of a record")
        except UnknownIdError as exc:
            raise UnknownIdError(
                f"{exc} Every animal with a record must be in the pedigree."
            ) from None

    def inbreeding(self) -> np.ndarray:
        """Inbreeding coefficient F of every animal (``ids`` order), exact, without forming A.

        Colleau's indirect method in sire families (Sargolzaei et al. 2005): a column of A for
        each sire family, computed over the ancestors only.
        """
        if self._F is None:
            families = loops.sire_families(np.ascontiguousarray(self.sire, np.int64),
                                           np.ascontiguousarray(self.dam, np.int64),
                                           np.ascontiguousarray(self.depth, np.int64))
            # sire and dam side by side (one cache line per animal on the ancestor walks), int32
            parents = np.empty((len(self), 2), np.int32)
            parents[:, 0], parents[:, 1] = self.sire, self.dam
            F = loops.inbreeding_by_sire_families(parents, *families, numba.get_num_threads())
            F.setflags(write=False)
            self._F = F
        return self._F

    def A(self) -> np.ndarray:
        """The numerator relationship matrix, dense, by the tabular method (``ids`` order).

        For teaching and small pedigrees: it refuses more than ``DENSE_A_MAX`` animals.
        """
        if len(self) > DENSE_A_MAX:
            raise InputError(
                f"A of {len(self)} animals would take {len(self) ** 2 * 8 / 2**30:.1f} GiB; it is "
                f"formed only up to {DENSE_A_MAX} animals. The animal model needs A^-1, which is "
                "sparse: use Pedigree.A_inverse() (and Pedigree.inbreeding() for diag(A) = 1 + F)."
            )
        return loops.dense_a(np.ascontiguousarray(self.sire, np.int64),
                             np.ascontiguousarray(self.dam, np.int64))

    def mendelian_variance(self) -> np.ndarray:
        """d_i = Var(m_i) / sigma2_a: 1, 3/4 - F_parent/4 or 1/2 - (F_sire(i) + F_dam(i))/4."""
        F = self.inbreeding()
        Fs = np.where(self.sire >= 0, F[np.maximum(self.sire, 0)], -1.0)
        Fd = np.where(self.dam >= 0, F[np.maximum(self.dam, 0)], -1.0)
        return 0.5 - 0.25 * (Fs + Fd)

    def A22(self, ids: ArrayLike) -> np.ndarray:
        """The block of A among the animals ``ids`` (the genotyped, in single-step), dense, in the
        order of ``ids``, without forming A.

        Colleau's (2002) indirect method: A x = T D T' x by two passes over the pedigree, for the
        columns of ``ids`` in blocks, over ``ids`` and their ancestors only (no other animal
        changes A22). Costs O(n_anc n_g) for n_anc ancestors, memory n_g^2 plus one reused block
        of ``A22_BLOCK_ENTRIES`` numbers (8 MB).

        Raises
        ------
        UnknownIdError
            An ID is not in the pedigree (named).
        DuplicateIdError
            An ID is listed twice (named).

        Examples
        --------
        >>> import lmmbook
        >>> ped = lmmbook.Pedigree(animal=[3, 4, 5], sire=[1, 1, 3], dam=[2, 2, 4])
        >>> ped.A22([5, 3]).tolist()  # 5 is the offspring of full sibs 3 and 4: F = 0.25
        [[1.25, 0.75], [0.75, 1.0]]
        """
        return self._ancestry_of(ids).A22()

    def _ancestry_of(self, ids: ArrayLike) -> _Ancestry:
        """The sub-pedigree of ``ids`` and their ancestors (A22 and A22^-1 depend on no other
        animal), with the rows of ``ids`` in it."""
        ids = np.atleast_1d(np.asarray(ids, dtype=object))
        _unique(ids)
        rows = self.index(ids)
        keep = np.flatnonzero(loops.ancestry(np.ascontiguousarray(self.sire, np.int64),
                                             np.ascontiguousarray(self.dam, np.int64),
                                             np.asarray(rows, np.int64)))
        new = np.full(len(self), -1, np.int64)
        new[keep] = np.arange(len(keep))
        sire = np.where(self.sire[keep] >= 0, new[np.maximum(self.sire[keep], 0)], -1)
        dam = np.where(self.dam[keep] >= 0, new[np.maximum(self.dam[keep], 0)], -1)
        return _Ancestry(keep, new[rows], np.ascontiguousarray(sire, np.int64),
                         np.ascontiguousarray(dam, np.int64),
                         np.ascontiguousarray(self.mendelian_variance()[keep]))

    def A_inverse(self) -> sp.csc_array:
        """A^-1 by Henderson's rules with inbreeding (Quaas 1976), sparse CSC (``ids`` order).

        Each animal i adds 1/d_i at (i, i), -1/(2 d_i) between i and each known parent, and
        1/(4 d_i) between every pair of its known parents (chapter 3, eq-ainv-rules; d_i is the
        Mendelian-sampling variance of :meth:`mendelian_variance`).
        """
        n = len(self)
        indptr, indices, data = loops.a_inverse_csc(
            np.ascontiguousarray(self.sire, np.int64), np.ascontiguousarray(self.dam, np.int64),
            1.0 / self.mendelian_variance())
        return sp.csc_array((data, indices, indptr), shape=(n, n))


@dataclass(frozen=True, eq=False)
class _Ancestry:
    """Some animals and all their ancestors, as a pedigree of its own (parents first).

    ``keep``: their rows in the whole pedigree; ``rows``: the rows of the animals asked for, in
    this sub-pedigree; ``sire``, ``dam``: parents' rows here (-1 unknown); ``d``: Mendelian
    sampling variances (those of the whole pedigree: an animal's inbreeding depends only on its
    ancestors)."""

    keep: np.ndarray
    rows: np.ndarray
    sire: np.ndarray
    dam: np.ndarray
    d: np.ndarray

    def times(self, X: np.ndarray) -> np.ndarray:
        """A X over this sub-pedigree (X is overwritten)."""
        return loops.a_times(self.sire, self.dam, self.d, np.ascontiguousarray(X, dtype=float))

    def A22(self) -> np.ndarray:
        """A among ``rows``, exactly symmetric (the upper triangle mirrored: the two passes round
        the two triangles differently)."""
        return _marker_loops.mirror_upper(self.columns(np.arange(len(self.rows))))

    def columns(self, cols: np.ndarray) -> np.ndarray:
        """A22[:, cols], (len(rows), len(cols)): Colleau's products for blocks of columns (of
        about ``A22_BLOCK_ENTRIES`` numbers, at least 16 columns) in one reused buffer."""
        rows, n_a = self.rows, len(self.sire)
        out = np.empty((len(rows), len(cols)))
        width = max(1, min(len(cols), max(16, A22_BLOCK_ENTRIES // max(n_a, 1) // 16 * 16)))
        X = np.empty((n_a, width))
        for first in range(0, len(cols), width):
            w = min(width, len(cols) - first)
            if w < X.shape[1]:
                X = np.empty((n_a, w))
            X.fill(0.0)
            X[rows[cols[first:first + w]], np.arange(w)] = 1.0
            out[:, first:first + w] = self.times(X)[rows]  # times works in place on X
        return out

    def A_inverse(self) -> sp.csc_array:
        """A^-1 of this sub-pedigree by Henderson's rules."""
        n = len(self.sire)
        indptr, indices, data = loops.a_inverse_csc(self.sire, self.dam, 1.0 / self.d)
        return sp.csc_array((data, indices, indptr), shape=(n, n))


def _unique(ids: np.ndarray) -> None:
    index = pd.Index(ids)
    if index.has_duplicates:
        raise DuplicateIdError(
            f"{format_ids(index[index.duplicated()].unique())} "
            f"{'is' if index.duplicated().sum() == 1 else 'are'} listed more than once among the "
            "genotyped animals; each animal has one genotype (remove the repeats, or keep the "
            "better call rate of each)."
        )


def _general_index(animal, sire, dam, missing, allow_selfing):
    """IDs of any type: (all IDs, sire rows, dam rows), founders that appear only as parents
    first, unknown parents as -1."""
    animal, sire, dam = (_as_series(v) for v in (animal, sire, dam))
    _same_lengths(animal, sire, dam)
    unknown = _unknown_mask(missing)
    if unknown(animal).any():
        row = int(np.flatnonzero(unknown(animal))[0])
        raise InputError(f"animal at row {row} is missing or reads as 'unknown'; every row "
                         "needs an animal ID (an ID 0 needs missing=...).")
    sire = sire.where(~unknown(sire), None)
    dam = dam.where(~unknown(dam), None)
    table = _merge_repeats(pd.DataFrame({"animal": animal, "sire": sire, "dam": dam}))
    _check_roles(table, allow_selfing)
    # founders that appear only as parents come first, in order of appearance
    parents = pd.unique(pd.concat([table["sire"], table["dam"]]).dropna())
    extra = pd.Index(parents).difference(pd.Index(table["animal"]), sort=False)
    no_parent = np.full(len(extra), None, dtype=object)
    all_ids = pd.Index(np.concatenate([np.asarray(extra, dtype=object),
                                       table["animal"].to_numpy(dtype=object)]))
    # None (unknown) is not an ID, so it maps to -1
    s_idx = all_ids.get_indexer(np.concatenate([no_parent, table["sire"].to_numpy(object)]))
    d_idx = all_ids.get_indexer(np.concatenate([no_parent, table["dam"].to_numpy(object)]))
    return all_ids, s_idx.astype(np.int64), d_idx.astype(np.int64)


def _integer_index(animal, sire, dam, missing, allow_selfing):
    """The same for integer IDs, with numpy alone (a million animals in a fraction of a second).
    Returns None when the general path is needed (other types, repeated rows)."""
    arrays = [np.asarray(v) for v in (animal, sire, dam)]
    missing_values = [0] if missing is None else list(missing)
    if not all(a.dtype.kind in "iu" for a in arrays) or not all(
            isinstance(m, (int, np.integer)) for m in missing_values):
        return None
    animal, sire, dam = (a.astype(np.int64) for a in arrays)
    _same_lengths(animal, sire, dam)
    ids = pd.Index(animal)
    if ids.has_duplicates:
        return None  # identical repeats are merged, conflicting ones reported: general path
    gone = np.asarray(missing_values, dtype=np.int64)
    if np.isin(animal, gone).any():
        row = int(np.flatnonzero(np.isin(animal, gone))[0])
        raise InputError(f"animal at row {row} reads as 'unknown' ({animal[row]}); every row "
                         "needs an animal ID (an ID 0 needs missing=...).")
    s_known, d_known = ~np.isin(sire, gone), ~np.isin(dam, gone)
    own = (s_known & (sire == animal)) | (d_known & (dam == animal))
    if own.any():
        raise PedigreeError(f"animal {int(animal[own][0])!r} is listed as its own parent. "
                            "Correct its sire or dam.")
    if not allow_selfing:
        selfed = s_known & d_known & (sire == dam)
        if selfed.any():
            i = int(np.flatnonzero(selfed)[0])
            raise PedigreeError(
                f"animal {int(animal[i])!r} has the same sire and dam ({int(sire[i])!r}). That is "
                "selfing: pass allow_selfing=True for plants, else correct the parents.")
        both = np.intersect1d(sire[s_known], dam[d_known])
        if len(both):
            raise PedigreeError(
                f"{format_ids(both)} {'is' if len(both) == 1 else 'are'} used both as a sire and "
                "as a dam. In animals that is an error in the data; for plants (a parent used as "
                "seed and as pollen parent) pass allow_selfing=True.")
    parents = pd.unique(np.concatenate([sire[s_known], dam[d_known]]))
    extra = parents[ids.get_indexer(parents) < 0]
    all_ids = pd.Index(np.concatenate([extra, animal]))
    s_idx = np.where(np.r_[np.zeros(len(extra), bool), s_known],
                     all_ids.get_indexer(np.r_[extra, sire]), -1)
    d_idx = np.where(np.r_[np.zeros(len(extra), bool), d_known],
                     all_ids.get_indexer(np.r_[extra, dam]), -1)
    return all_ids, s_idx.astype(np.int64), d_idx.astype(np.int64)


def _same_lengths(animal, sire, dam) -> None:
    if not len(animal) == len(sire) == len(dam):
        raise InputError(
            f"animal, sire and dam must have the same length, got {len(animal)}, {len(sire)} "
            f"and {len(dam)}."
        )


# ---- checks ----------------------------------------------------------------------------------

def _as_series(values: ArrayLike) -> pd.Series:
    """IDs as an object Series with None for missing; whole floats (from a column with NaN) become
    integers, so that sire 1.0 and animal 1 are the same ID."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    s = s.reset_index(drop=True)
    if s.dtype.kind == "f":
        finite = s.dropna()
        if len(finite) and (finite == np.round(finite)).all():
            s = s.astype("Int64")
    s = s.astype(object)
    return s.where(s.notna(), None)


def _unknown_mask(missing: Iterable[Any] | None):
    """A function telling, for a Series, which values mean 'unknown parent'."""
    values = list(DEFAULT_MISSING if missing is None else missing)
    hashable = [v for v in values if v is not None]

    def mask(s: pd.Series) -> np.ndarray:
        out = s.isin(hashable).to_numpy().copy() if hashable else np.zeros(len(s), bool)
        if missing is None or any(v is None for v in values) or any(
                isinstance(v, float) and np.isnan(v) for v in values):
            out |= pd.isna(s).to_numpy()
        return out

    return mask


def _merge_repeats(table: pd.DataFrame) -> pd.DataFrame:
    """Merge rows that repeat an animal with the same parents; refuse a repeat that disagrees in
    any parent, a known parent against an unknown one included.

    Rows are compared by the codes of their IDs, never by text: an unknown parent is None here and
    keeps a code of its own (-1), so a sire 'b' and an unknown sire differ. (Counting distinct
    texts would skip it: under pandas 3, ``astype(str)`` leaves a missing value missing.)
    """
    repeated = table["animal"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return table
    codes = pd.DataFrame({c: pd.factorize(table[c].to_numpy(object), use_na_sentinel=True)[0]
                          for c in ("animal", "sire", "dam")})
    distinct = codes[~codes.duplicated()]
    n_pairs = distinct["animal"].value_counts(sort=False)
    bad = n_pairs.index[n_pairs.to_numpy() > 1]
    if len(bad):
        first = distinct["animal"][distinct["animal"].isin(bad)].iloc[0]  # in input order
        rows = np.flatnonzero(codes["animal"].to_numpy() == first)
        pairs = table.loc[distinct.index[distinct["animal"] == first], ["sire", "dam"]]
        # the pair with more known parents first: what a merge would lose
        known = pairs.notna().sum(axis=1).to_numpy()
        listed = [f"(sire {_shown(s)}, dam {_shown(d)})"
                  for s, d in pairs.iloc[np.argsort(-known, kind="stable")].itertuples(index=False)]
        times = "twice" if len(rows) == 2 else f"{len(rows)} times"
        how = ("different parents" if len(listed) == 2 else
               f"{len(listed)} different parent pairs")
        affected = f"; {len(bad)} animals affected" if len(bad) > 1 else ""
        raise PedigreeError(
            f"animal {_shown(table['animal'].iloc[rows[0]])} appears {times} with {how}: "
            f"{_and(listed)}; keep one row per animal, with its correct parents (input rows "
            f"{_and([str(r) for r in rows])}{affected})."
        )
    return table[~codes.duplicated("animal").to_numpy()].reset_index(drop=True)


def _shown(value: Any) -> str:
    """An ID as a message shows it: 'a', 7 (not np.int64(7)), or unknown."""
    if value is None:
        return "unknown"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _check_roles(table: pd.DataFrame, allow_selfing: bool) -> None:
    a, s, d = (table[c].astype(object) for c in ("animal", "sire", "dam"))
    own = (a == s) | (a == d)
    if own.any():
        bad = a[own].iloc[0]
        raise PedigreeError(f"animal {bad!r} is listed as its own parent. Correct its sire or dam.")
    if allow_selfing:
        return
    selfed = s.notna() & (s == d)
    if selfed.any():
        raise PedigreeError(
            f"animal {a[selfed].iloc[0]!r} has the same sire and dam ({s[selfed].iloc[0]!r}). "
            "That is selfing: pass allow_selfing=True for plants, else correct the parents."
        )
    both = pd.Index(s.dropna().unique()).intersection(pd.Index(d.dropna().unique()))
    if len(both):
        raise PedigreeError(
            f"{format_ids(both)} {'is' if len(both) == 1 else 'are'} used both as a sire and as a "
            "dam. In animals that is an error in the data; for plants (a parent used as seed and "
            "as pollen parent) pass allow_selfing=True."
        )


def _describe_loop(ids: pd.Index, sire: np.ndarray, dam: np.ndarray, placed: np.ndarray) -> str:
    """Find one loop among the animals that could not be ordered, and print it."""
    stuck = np.ones(len(ids), bool)
    stuck[placed] = False
    start = int(np.flatnonzero(stuck)[0])
    path, seen = [start], {start: 0}
    j = start
    while True:
        nxt = next(p for p in (sire[j], dam[j]) if p >= 0 and stuck[p])
        if nxt in seen:
            loop = path[seen[nxt]:] + [nxt]
            break
        seen[nxt] = len(path)
        path.append(nxt)
        j = nxt
    chain = " -> ".join(repr(ids[k]) for k in loop)
    return (f"the pedigree has a loop: an animal is its own ancestor ({chain}, each followed by a "
            "parent). Correct the parents of one of these animals.")
