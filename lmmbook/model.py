"""One description of the mixed model, shared by the solvers (chapters 1 and 4).

The model of chapter 4 is chapter 1's with several random effects:

    y = X b + sum_r sum_j Z_rj u_rj + e,

where random effect r has k_r designs Z_r1..Z_rk over the same q_r levels (k_r = 1 for an
uncorrelated effect such as a permanent environment or a litter; k_r = 2 for the direct and
maternal genetic effects of an animal), and the stacked vector u_r = (u_r1', ..., u_rk')' has

    Var(u_r) = G0_r kron K_r,

G0_r the (k_r, k_r) covariance matrix of the effects and K_r the covariance structure of the
levels (A, G, or the identity). Effects of different entries are uncorrelated. Writing
Z_all = [Z_11 ... Z_1k | Z_21 ...] for all designs side by side and
Sigma_u^-1 = blockdiag(G0_r^-1 kron K_r^-1), Henderson's equations multiplied through by
sigma2_e are

    [ X'X       X'Z_all                            ] [b]   [X'y    ]
    [ Z_all'X   Z_all'Z_all + sigma2_e Sigma_u^-1  ] [u] = [Z_all'y],

which for one effect are chapter 1's with lambda = sigma2_e / sigma2_u. :func:`lmmbook.solve_mme`
solves them, :func:`lmmbook.reml` estimates every G0_r and sigma2_e, both from the description
built here once: :func:`random_effects` reads the designs and structures as the user gives them,
:func:`covariances` the G0_r, :func:`coefficient_matrix` assembles C (sparse when any input is),
and :func:`variance_parts` lists the matrices Z_a K Z_b' that make up V for REML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _checks
from .errors import InputError, NotPositiveDefiniteError, ShapeMismatchError, VarianceError

Matrix = np.ndarray | sp.sparray


@dataclass(frozen=True, eq=False)
class RandomEffect:
    """One entry of ``Z``: k designs over the same q levels with Var(u) = G0 kron K.

    Attributes
    ----------
    designs : tuple of (n, q) matrices
        The designs, rows in the order of y (all records, observed or not), in the order given.
    levels : (q,) ndarray
        Labels of the levels (Z's or the structure's labels, else 0..q-1).
    structure : (q, q) matrix or None
        K, or K^-1 when ``inverse`` (as the caller gave it); None for the identity.
    inverse : bool
        Whether ``structure`` holds K^-1 (solve_mme) or K (reml).
    identity_design : bool
        Z was None: one level per record (the records are K's levels).
    """

    designs: tuple[Matrix, ...]
    levels: np.ndarray
    structure: Matrix | None
    inverse: bool
    identity_design: bool = False

    @property
    def k(self) -> int:
        """Number of correlated effects (designs) in this entry."""
        return len(self.designs)

    @property
    def q(self) -> int:
        """Number of levels of each effect."""
        return len(self.levels)

    @property
    def size(self) -> int:
        """Equations of this entry in the MME: k q."""
        return self.k * self.q


@dataclass(frozen=True, eq=False)
class RandomEffects:
    """The entries of ``Z`` read once, and whether the caller gave a list (results are tuples)."""

    entries: tuple[RandomEffect, ...]
    multi: bool

    @property
    def n_designs(self) -> int:
        return sum(e.k for e in self.entries)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def sparse(self) -> bool:
        return any(sp.issparse(a) for e in self.entries
                   for a in (*e.designs, e.structure) if a is not None)


def _entries(value: Any) -> tuple[list, bool]:
    """A list/tuple argument as a list of entries; a tuple of designs is one correlated entry."""
    if isinstance(value, list):
        return list(value), True
    return [value], isinstance(value, tuple)


def random_effects(Z: Any, structure: Any, y_ids: pd.Index | None, n: int, *,
                   inverse: bool, structure_name: str | None = None,
                   broadcast: bool = False) -> RandomEffects:
    """Read ``Z`` and ``K`` (or ``K_inv``) into :class:`RandomEffect` entries.

    ``Z`` is one design, a tuple of designs of correlated effects, or a list whose entries are
    designs or tuples; ``structure`` is one matrix or a list with one entry per entry of ``Z``
    (None = identity). With ``broadcast`` (reml), one Z with several K, or one K with several Z,
    is repeated; a Z of None means the identity design (one level per record, labelled by K).
    """
    name = structure_name or ("K_inv" if inverse else "K")
    Zs, multi_z = _entries(Z)
    if isinstance(structure, list):
        Ks, multi_k = list(structure), True
    else:
        Ks, multi_k = [structure], False
    if multi_k and not multi_z and not broadcast and not isinstance(Z, tuple):
        raise ShapeMismatchError(
            f"{name} is a list of {len(Ks)} but Z is one design: give Z as a list too, one "
            f"design (or a tuple of correlated designs) per entry of {name}.")
    if broadcast and len(Zs) == 1 and len(Ks) > 1 and not isinstance(Z, tuple):
        Zs = Zs * len(Ks)
    if broadcast and len(Ks) == 1 and len(Zs) > 1 and not multi_k:
        Ks = Ks * len(Zs)
    if multi_z and not multi_k and len(Zs) > 1 and not broadcast:
        raise ShapeMismatchError(
            f"Z is a list of {len(Zs)} random effects but {name} is one matrix: give {name} as a "
            f"list with one entry per entry of Z (None for the identity), in the same order.")
    if len(Zs) != len(Ks):
        raise ShapeMismatchError(
            f"Z and {name} must have one entry each per random effect: Z has {len(Zs)}, {name} "
            f"has {len(Ks)}. Give {name} as a list in the order of Z (None for the identity).")
    if not Zs:
        raise InputError(f"at least one random effect is needed (Z and {name} are empty lists).")
    multi = multi_z or multi_k
    entries = []
    for r, (Zr, Kr) in enumerate(zip(Zs, Ks, strict=True)):
        where = f" (random effect {r + 1})" if len(Zs) > 1 else ""
        entries.append(_entry(Zr, Kr, y_ids, n, inverse, f"{name}{where}", where))
    return RandomEffects(tuple(entries), multi)


def _entry(Zr, Kr, y_ids, n, inverse, K_name, where) -> RandomEffect:
    designs = list(Zr) if isinstance(Zr, tuple) else [Zr]
    if not designs:
        raise InputError(f"Z{where} is an empty tuple; a tuple holds the designs of correlated "
                         "effects, at least one.")
    if any(d is None for d in designs) and len(designs) > 1:
        raise InputError(f"Z{where}: a tuple of correlated designs cannot hold None; give each "
                         "design as a matrix (an identity design is scipy.sparse.eye_array(n)).")
    if designs[0] is None:
        return _identity_entry(Kr, y_ids, n, inverse, K_name, where)
    labelled = []
    for j, d in enumerate(designs):
        which = f"Z{where}" + (f", design {j + 1}" if len(designs) > 1 else "")
        Dl = _checks.matrix(which, d)
        labelled.append((which, Dl, _checks.rows_like_y(Dl, which, y_ids, n)))
    first_name, first, first_values = labelled[0]
    q = first_values.shape[1]
    for which, _, values in labelled[1:]:
        if values.shape[1] != q:
            raise ShapeMismatchError(
                f"{which} has {values.shape[1]} columns but {first_name} has {q}: the designs of "
                "correlated effects share their levels (e.g. a calf's record links to its own "
                "column in Z_direct and to its dam's column in Z_maternal, both over all animals "
                "of the pedigree), so they must have the same columns.")
    if Kr is None:
        values, levels = None, (np.asarray(first.columns) if first.columns is not None
                                else np.arange(q))
    else:
        Kl = _checks.matrix(K_name, Kr)
        values, levels = _checks.square_like_z(Kl, first, K_name)
        if not inverse:
            values = _checks.dense(values)
    designs_out = [first_values]
    for which, Dl, values_j in labelled[1:]:
        if Dl.columns is not None and first.columns is not None:
            order = _checks.join(pd.Index(levels), f"the columns of {first_name}",
                                 Dl.columns, f"the columns of {which}")
            values_j = values_j[:, order]
        designs_out.append(values_j)
    return RandomEffect(tuple(designs_out), np.asarray(levels), values, inverse)


def _identity_entry(Kr, y_ids, n, inverse, K_name, where) -> RandomEffect:
    if Kr is None:
        raise InputError(
            f"Z and K are both None{where}: then V = (sigma2_u + sigma2_e) I and the two "
            "variances cannot be told apart. Give Z (which records share a level) or K (how "
            "records are related).")
    Kl = _checks.matrix(K_name, Kr)
    values, labels = _checks.square_like_z(Kl, None, K_name)
    if not inverse:
        values = _checks.dense(values)
    if y_ids is not None and Kl.rows is not None:
        # Z = I: the records are the levels, joined to K by ID
        order = _checks.join(y_ids, "y's index", pd.Index(labels), f"{K_name}'s index")
        values = (values[order][:, order] if sp.issparse(values)
                  else values[np.ix_(order, order)])
        labels = np.asarray(labels)[order]
    _checks.same_length(K_name, n, "y", values.shape[0], unit="rows")
    return RandomEffect((sp.eye_array(n, format="csr"),), np.asarray(labels), values, inverse,
                        identity_design=True)


def design_names(names: Sequence[str] | None, effects: RandomEffects) -> tuple[str, ...]:
    """A name per design (tuples flattened): the caller's, or "u" / "u1", "u2", ..."""
    m = effects.n_designs
    if names is None:
        return ("u",) if m == 1 else tuple(f"u{j + 1}" for j in range(m))
    names = tuple(str(v) for v in names)
    if len(names) != m or len(set(names)) != m or any("," in v for v in names):
        raise ShapeMismatchError(
            f"names must give {m} distinct names without commas, one per design of Z (tuples "
            f"counted by their designs), got {list(names)}.")
    return names


def covariances(sigma2_u: Any, effects: RandomEffects, *, require_pd: bool = True,
                rows: str | None = None) -> tuple[np.ndarray, ...]:
    """The (k, k) covariance matrix G0 of each entry, from ``sigma2_u`` as the caller gave it.

    One entry: a float (k = 1) or a (k, k) matrix. Several: a list/tuple with one float or matrix
    per entry of Z.
    """
    entries = effects.entries
    if isinstance(sigma2_u, (list, tuple)) and not _is_matrix_like(sigma2_u, entries):
        values = list(sigma2_u)  # one per entry (REMLResult.sigma2_u is such a tuple)
    elif len(entries) == 1:
        values = [sigma2_u]
    else:
        raise ShapeMismatchError(
            f"sigma2_u must hold one entry per entry of Z ({len(entries)}): a float for a single "
            "effect, a (k, k) covariance matrix for a tuple of k correlated designs; got "
            f"{sigma2_u!r}.")
    if len(values) != len(entries):
        raise ShapeMismatchError(
            f"sigma2_u has {len(values)} entries but Z has {len(entries)} random effects; give one "
            "variance (or covariance matrix) per entry of Z, in the same order.")
    out = []
    for r, (value, entry) in enumerate(zip(values, entries, strict=True)):
        where = f" (random effect {r + 1})" if len(entries) > 1 else ""
        out.append(covariance_matrix(f"sigma2_u{where}", value, entry.k, require_pd=require_pd,
                                     rows=rows))
    return tuple(out)


def _is_matrix_like(value, entries) -> bool:
    """A nested list given as the one covariance matrix of a single tuple entry."""
    return (len(entries) == 1 and entries[0].k > 1 and len(value) == entries[0].k
            and all(isinstance(row, (list, tuple, np.ndarray)) for row in value))


def covariance_matrix(name: str, value: Any, k: int, *, require_pd: bool = True,
                      rows: str | None = None, semidefinite: bool = False) -> np.ndarray:
    """A (k, k) symmetric positive definite covariance matrix (a positive float when k = 1).

    ``rows`` says what a row stands for in the message of a wrong shape. With ``semidefinite``
    a singular matrix (an REML estimate on the edge of the cone) is accepted: for the V form,
    which never inverts it.
    """
    if k == 1 and np.ndim(value) == 0:
        return np.array([[_checks.positive_variance(name, value)]])
    try:
        G0 = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise VarianceError(f"{name} must be a number or a (k, k) matrix, got {value!r}.") from None
    if G0.shape != (k, k):
        raise ShapeMismatchError(
            f"{name} must be a ({k}, {k}) covariance matrix "
            f"({rows or 'one row per correlated design of its entry of Z'}), got shape "
            f"{G0.shape}.")
    if not np.isfinite(G0).all():
        raise VarianceError(f"{name} holds a value that is not finite: {G0.tolist()}.")
    if not np.allclose(G0, G0.T, rtol=1e-12, atol=0.0):
        raise NotPositiveDefiniteError(
            f"{name} is not symmetric: {G0.tolist()}. A covariance matrix has G0[i, j] = G0[j, i].")
    if require_pd:
        smallest = float(np.linalg.eigvalsh(G0)[0])
        scale = max(float(np.abs(G0).max()), 1e-300)
        if semidefinite and smallest >= -1e-9 * scale:
            return (G0 + G0.T) / 2
        if smallest <= 1e-12 * scale:
            corr = _correlation_text(G0, "traits" if rows and "trait" in rows else "effects")
            raise NotPositiveDefiniteError(
                f"{name} is not positive definite: its smallest eigenvalue is {smallest:.4g}"
                f"{corr}. A covariance matrix needs every variance positive, every correlation "
                "strictly between -1 and 1 and, with three or more rows, no combination of rows "
                "without variance: check the covariances, or estimate them (lmmbook.reml).")
    return (G0 + G0.T) / 2


def _correlation_text(G0: np.ndarray, noun: str = "effects") -> str:
    """Where a covariance matrix fails: the largest correlation when it reaches +-1, else that
    a combination of three or more rows has no variance."""
    d = np.sqrt(np.clip(np.diag(G0), 0, None))
    if len(G0) < 2 or np.any(d == 0):
        return ""
    R = G0 / np.outer(d, d)
    i, j = np.unravel_index(np.argmax(np.abs(R - np.eye(len(R)))), R.shape)
    if abs(R[i, j]) >= 1 - 1e-9 or len(G0) == 2:
        return f" (the correlation of {noun} {i + 1} and {j + 1} is {R[i, j]:.4g})"
    return (f" (no correlation reaches +-1, the largest is {R[i, j]:.4g} between {noun} {i + 1} "
            f"and {j + 1}: a combination of three or more {noun} has no variance)")


def structure_inverse(entry: RandomEffect) -> Matrix:
    """K^-1 of an entry as given to solve_mme (the identity when None)."""
    if entry.structure is None:
        return sp.eye_array(entry.q, format="csr")
    return entry.structure


def observed_design(effects: RandomEffects, observed: np.ndarray, sparse: bool) -> Matrix:
    """Z_all = [Z_11 ... Z_1k | Z_21 ...] on the observed records, effect by effect."""
    blocks = [d[observed] for e in effects.entries for d in e.designs]
    if sparse:
        return sp.hstack([sp.csr_array(b) for b in blocks], format="csr")
    return np.hstack([_checks.dense(b) for b in blocks])


def coefficient_matrix(X_o: Matrix, Z_all_o: Matrix, effects: RandomEffects,
                       G0s: Sequence[np.ndarray], sigma2_e: float, sparse: bool,
                       R_inv: sp.sparray | None = None):
    """C = [X Z_all]'[X Z_all] + blockdiag(0, sigma2_e Sigma_u^-1), and [X Z_all] (chapter 4,
    ``(eq-general-mme)``); C is multiplied through by sigma2_e.

    With ``R_inv`` (several traits, chapter 11, ``(eq-mt-mme)``) C = [X Z_all]' R^-1 [X Z_all] +
    blockdiag(0, Sigma_u^-1) instead (pass sigma2_e = 1), and the second matrix returned is
    R^-1 [X Z_all], so that the right-hand side is always its transpose times y.

    Dense when every input is dense, else sparse CSC.
    """
    n_b = X_o.shape[1]
    if sparse:
        XZ = sp.hstack([sp.csr_array(X_o), sp.csr_array(Z_all_o)], format="csr")
        WXZ = XZ if R_inv is None else (R_inv @ XZ).tocsr()
        blocks = [sp.csc_array((n_b, n_b))]
        for entry, G0 in zip(effects.entries, G0s, strict=True):
            blocks.append(sp.kron(sigma2_e * np.linalg.inv(G0),
                                  sp.csc_array(structure_inverse(entry)), format="csc"))
        C = (XZ.T @ WXZ + sp.block_diag(blocks, format="csc")).tocsc()
        return C, WXZ
    XZ = np.hstack([_checks.dense(X_o), _checks.dense(Z_all_o)])
    WXZ = XZ if R_inv is None else np.asarray(R_inv @ XZ)
    C = XZ.T @ WXZ
    start = n_b
    for entry, G0 in zip(effects.entries, G0s, strict=True):
        K_inv = _checks.dense(structure_inverse(entry))
        C[start:start + entry.size, start:start + entry.size] += np.kron(
            sigma2_e * np.linalg.inv(G0), K_inv)
        start += entry.size
    return (C + C.T) / 2 if R_inv is not None else C, WXZ


def variance_parts(entry: RandomEffect, observed: np.ndarray) -> list[np.ndarray]:
    """The dense matrices V_s whose weighted sum is this entry's part of V (REML, V form).

    For k = 1 one matrix Z K Z'; for k correlated designs one per element of the lower triangle
    of G0, in the order (1,1), (2,1), (2,2), (3,1), ...: Z_a K Z_a' for a variance and
    Z_a K Z_b' + Z_b K Z_a' for a covariance, since V = sum_ab G0_ab Z_a K Z_b'.
    """
    ZK = [_z_k(d[observed], entry.structure) for d in entry.designs]
    Zo = [d[observed] for d in entry.designs]
    parts = []
    for a in range(entry.k):
        for b in range(a + 1):
            H = np.asarray(Zo[b] @ ZK[a].T).T  # Z_a K Z_b' (K symmetric)
            parts.append(H if a == b else H + H.T)
    return parts


def _z_k(Z_o: Matrix, K: np.ndarray | None) -> np.ndarray:
    """Z K on the observed records, dense (Z when K is the identity)."""
    if K is None:
        return _checks.dense(Z_o)
    return _checks.dense(Z_o @ K)


def lower_pairs(k: int) -> list[tuple[int, int]]:
    """(a, b) with a >= b in the order of :func:`variance_parts`."""
    return [(a, b) for a in range(k) for b in range(a + 1)]


def vech(G0: np.ndarray) -> np.ndarray:
    """The lower triangle of G0 in the order of :func:`lower_pairs`."""
    return np.array([G0[a, b] for a, b in lower_pairs(len(G0))])


def unvech(values: Sequence[float], k: int) -> np.ndarray:
    """The symmetric (k, k) matrix from its lower triangle (inverse of :func:`vech`)."""
    G0 = np.zeros((k, k))
    for (a, b), v in zip(lower_pairs(k), values, strict=True):
        G0[a, b] = G0[b, a] = v
    return G0


# ---- several traits (chapter 11) -----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Traits:
    """t traits recorded on n records, stacked into one vector (chapter 11).

    The stacked vector holds the observed (record, trait) pairs record by record, traits within,
    so that the residuals of one record, correlated across its traits, are neighbours and R^-1 is
    block diagonal. A trait's random effect of the single-trait model becomes t designs, one per
    trait (design a of stacked row (i, b) is row i of Z when a = b, else 0), so every entry of
    ``Z`` with k designs becomes an entry of k t correlated designs, effect by effect and traits
    within, with Var(u) = G0 kron K for a (k t, k t) G0.

    Attributes
    ----------
    names : tuple of str
        The traits.
    observed : (n, t) bool ndarray
        Which trait was recorded on which record.
    record, trait : (n_s,) int ndarray
        Record (row of Y) and trait of each stacked observation.
    """

    names: tuple[str, ...]
    observed: np.ndarray
    record: np.ndarray
    trait: np.ndarray

    @property
    def t(self) -> int:
        return len(self.names)

    @property
    def with_data(self) -> np.ndarray:
        """Records with at least one trait observed (the others leave the equations)."""
        return self.observed.any(axis=1)

    def selection(self, a: int) -> sp.csr_array:
        """S_a, (n_s, n): 1 where stacked row s is record i's value of trait a."""
        rows = np.flatnonzero(self.trait == a)
        n_s, n = len(self.record), len(self.observed)
        return sp.csr_array((np.ones(len(rows)), (rows, self.record[rows])), shape=(n_s, n))

    def stack(self, design: Matrix) -> list[Matrix]:
        """[S_1 D, ..., S_t D]: the stacked design of each trait from one (n, q) design D."""
        return [self.selection(a) @ design for a in range(self.t)]

    def fixed(self, designs: Sequence[Matrix], columns: Sequence[np.ndarray]
              ) -> tuple[Matrix, np.ndarray]:
        """The stacked fixed-effect design [S_1 X_1 | ... | S_t X_t] (each trait its own
        effects, trait by trait) and its column names "trait:column"."""
        blocks = [self.selection(a) @ X for a, X in enumerate(designs)]
        names = np.array([f"{self.names[a]}:{c}" for a, cols in enumerate(columns) for c in cols],
                         dtype=object)
        if any(sp.issparse(b) for b in blocks):
            return sp.hstack([sp.csr_array(b) for b in blocks], format="csr"), names
        return np.hstack([np.asarray(b) for b in blocks]), names

    def effects(self, effects: RandomEffects) -> RandomEffects:
        """Every entry with k designs as an entry of k t designs over the stacked rows."""
        entries = []
        for e in effects.entries:
            designs = tuple(d for design in e.designs for d in self.stack(design))
            entries.append(RandomEffect(designs, e.levels, e.structure, e.inverse))
        return RandomEffects(tuple(entries), effects.multi)

    def _blocks(self):
        """Per pattern of observed traits: the records with it and their stacked positions."""
        records = np.flatnonzero(self.with_data)
        counts = self.observed[records].sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        patterns, which = np.unique(self.observed[records], axis=0, return_inverse=True)
        for j, pattern in enumerate(patterns):
            mine = which.ravel() == j
            positions = offsets[mine][:, None] + np.arange(int(pattern.sum()))[None, :]
            yield pattern, positions

    def residual_inverse(self, R0: np.ndarray) -> sp.csr_array:
        """R^-1: block diagonal by record, each block the inverse of R0's sub-matrix for the
        traits observed on that record (chapter 11, ``(eq-mt-rinv)``)."""
        rows, cols, values = [], [], []
        for pattern, positions in self._blocks():
            block = np.linalg.inv(R0[np.ix_(pattern, pattern)])
            m = positions.shape[1]
            rows.append(np.repeat(positions, m, axis=1).ravel())
            cols.append(np.tile(positions, (1, m)).ravel())
            values.append(np.broadcast_to(block.ravel(), (len(positions), m * m)).ravel())
        n_s = len(self.record)
        return sp.csr_array((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n_s, n_s))

    def residual_parts(self) -> list[np.ndarray]:
        """The dense matrices whose weighted sum by the lower triangle of R0 is R (REML, V form):
        for (a, b) the indicator of two stacked values of one record, of traits a and b (both
        orders for a covariance)."""
        same = self.record[:, None] == self.record[None, :]
        parts = []
        for a, b in lower_pairs(self.t):
            H = same & (self.trait[:, None] == a) & (self.trait[None, :] == b)
            parts.append((H | H.T).astype(float))
        return parts


def traits(Y: np.ndarray, names: Sequence[str]) -> Traits:
    """The stacking of an (n, t) table of records (NaN = not observed)."""
    observed = np.isfinite(Y)
    record, trait = np.nonzero(observed)  # row-major: record by record, traits within
    return Traits(tuple(names), observed, record, trait)


def trait_design_names(names: Sequence[str], traits_: Traits) -> tuple[str, ...]:
    """A name per stacked design: "effect:trait", effect by effect, traits within."""
    return tuple(f"{v}:{t}" for v in names for t in traits_.names)


TRAIT_ROWS = ("one row per trait; for a tuple of k effects a (k t, k t) matrix, effect by "
              "effect, traits within")


@dataclass(frozen=True, eq=False)
class StackedProblem:
    """y, X and the random effects as the solvers see them: the records of one trait, or the
    observed (record, trait) pairs of several stacked by :class:`Traits` (chapter 11).

    ``single`` holds the entries of Z as given (one trait); ``effects`` those over the rows of
    ``y`` (the same for one trait). ``observed`` marks the rows of ``y`` that enter the fit.
    """

    y: np.ndarray
    X: Matrix
    observed: np.ndarray
    fixed_names: np.ndarray
    effects: RandomEffects
    single: RandomEffects
    traits: Traits | None
    n_obs: int
    unused_records: np.ndarray | None

    def levels(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """The labels of u, one read-only array per design of ``single`` (a tuple when Z was a
        list or a tuple, as the results give them)."""
        levels = tuple(_checks.frozen(e.levels) for e in self.single.entries for _ in range(e.k))
        return levels if self.single.multi else levels[0]

    def by_trait(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One array per design of ``single``: with several traits the t stacked designs of
        each, side by side as a (q, t) array."""
        if self.traits is None:
            return list(parts)
        t = self.traits.t
        return [np.column_stack(parts[j:j + t]) for j in range(0, len(parts), t)]


def stacked_problem(y: Any, X: Any, Z: Any, K: Any, data: Any, *, inverse: bool,
                    broadcast: bool = False, dense_X: bool = False) -> StackedProblem:
    """Read y (a vector, or an (n, t) table of traits), X (one design, a formula, or with several
    traits a dict of one per trait) and the entries of Z once, for solve_mme and reml.

    Refuses a y without any observed value and an X without full column rank on the observed
    records (per trait, with several: the stacked design's columns are "trait:column").
    """
    several = _checks.is_table(y)
    if several:
        Y, y_ids, names = _checks.table("y", y)
        n = len(Y)
    else:
        y_values, y_ids = _checks.vector("y", y)
        n = len(y_values)
    effects = random_effects(Z, K, y_ids, n, inverse=inverse, broadcast=broadcast)
    if not several:
        Xl = _checks.matrix("X", _checks.formula_or_matrix(X, data))
        X_values = _checks.rows_like_y(Xl, "X", y_ids, n)
        if dense_X:
            X_values = _checks.dense(X_values)
        observed = np.isfinite(y_values)
        if not observed.any():
            raise InputError("y has no observed record (all NaN); there is nothing to fit.")
        _checks.full_column_rank("X", X_values[observed], Xl.columns)
        p = X_values.shape[1]
        fixed_names = np.asarray(Xl.columns) if Xl.columns is not None else np.arange(p)
        return StackedProblem(y_values, X_values, observed, fixed_names, effects, effects, None,
                              int(observed.sum()), None)
    tr = traits(Y, names)
    designs, columns = [], []
    for trait in names:
        Xa = _trait_design(X, trait, names)
        Xl = _checks.matrix(f"X ({trait})" if isinstance(X, dict) else "X",
                            _checks.formula_or_matrix(Xa, data))
        values = _checks.rows_like_y(Xl, "X", y_ids, n)
        designs.append(_checks.dense(values) if dense_X else values)
        columns.append(list(Xl.columns) if Xl.columns is not None
                       else list(range(values.shape[1])))
    X_s, fixed_names = tr.fixed(designs, columns)
    _checks.full_column_rank("X", X_s, pd.Index(fixed_names))
    unused = np.flatnonzero(~tr.with_data)
    unused_ids = np.asarray(y_ids[unused]) if y_ids is not None else unused
    y_s = Y[tr.record, tr.trait]
    return StackedProblem(y_s, X_s, np.ones(len(y_s), dtype=bool), fixed_names,
                          tr.effects(effects), effects, tr, int(tr.with_data.sum()), unused_ids)


def _trait_design(X: Any, trait: str, names: Sequence[str]) -> Any:
    """X of one trait: the same X for every trait, or its entry of a dict keyed by trait."""
    if not isinstance(X, dict):
        return X
    unknown = [str(k) for k in X if str(k) not in names]
    if unknown or len(X) != len(names):
        raise ShapeMismatchError(
            f"X as a dict needs one design per trait, keyed by the trait names {list(names)}; got "
            f"keys {[str(k) for k in X]}.")
    return {str(k): v for k, v in X.items()}[trait]
