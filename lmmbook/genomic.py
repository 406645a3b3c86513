"""The genomic relationship matrix G and GBLUP (chapter 5)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import _checks, _rotation, _spectral, markers, model, reml
from .errors import (
    InputError,
    LmmbookWarning,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    UnknownIdError,
    format_ids,
)
from .markers import (
    _frequencies,
    as_genotypes,
    centred_cross_product,
    centred_polymorphic,
    cross_product,
)

__all__ = ["genomic_relationship", "gblup", "GBLUPResult", "INDEFINITE_TOL"]

#: gblup refuses G whose smallest eigenvalue is below -INDEFINITE_TOL times the mean of diag(G).
INDEFINITE_TOL = 0.05


def genomic_relationship(
    M: Any,
    *,
    method: Literal["vanraden1", "vanraden2", "yang"] = "vanraden1",
    allele_freq: Any = None,
    weights: Any = None,
) -> np.ndarray:
    """Genomic relationship matrix from 0/1/2 genotypes.

    Parameters
    ----------
    M : (n, m) array_like or pandas.DataFrame
        Counts of one allele (0, 1, 2), NaN for a missing call.
    method : {"vanraden1", "vanraden2", "yang"}
        "vanraden1": G = W W' / (2 sum p(1-p)), W = M - 2p (chapter 5, eq-vanraden1);
        "vanraden2": each marker standardised, G = sum_k w_k w_k' / (2 p_k (1 - p_k)) / m;
        "yang": as "vanraden2" off the diagonal, with Yang et al.'s (2010) diagonal
        1 + (1/m_i) sum_k [x_ik^2 - (1 + 2 p_k) x_ik + 2 p_k^2] / (2 p_k (1 - p_k)) over the m_i
        polymorphic markers called for i (1 when m_i = 0).
    allele_freq : (m,) array_like, optional
        Frequencies to centre and scale with (a base or training population); by default those of M.
    weights : (m,) array_like, optional
        Marker weights d_k >= 0 (weighted GBLUP, Wang et al. 2012). Both VanRaden methods are
        G = W D_alpha W' / c, with D_alpha = I and c = 2 sum p(1-p) for "vanraden1",
        D_alpha = diag(1 / (2 p_k (1 - p_k))) and c = m for "vanraden2"; weights multiply D_alpha,
        diag(d_k) D_alpha, and leave c as it is. They are used as given, not normalised: rescale
        them if G should keep its scale (Wang et al. rescale so that the genomic variance stays
        the same). Not for "yang". :func:`lmmbook.backsolve_snp_effects` with the same
        ``method``, ``allele_freq`` and ``weights`` back-solves a GBLUP fit made with this G.

    Returns
    -------
    (n, n) ndarray
        Symmetric to the last bit.

    Notes
    -----
    Chapter 5; VanRaden (2008), Yang et al. (2010). Missing calls are mean-imputed: their centred
    value is 0. Markers that are monomorphic under the frequencies used (p = 0 or 1) carry no
    information: they are left out, so they neither divide by zero nor count in m.
    "vanraden1" equals rrBLUP's ``A.mat(M - 1)`` on complete data (the same W W' / (2 sum p(1-p))
    over the markers that A.mat's default minor-allele-frequency filter keeps).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> M = np.array([[0, 1, 2], [1, 1, 0], [2, 1, 1]])
    >>> G = lmmbook.genomic_relationship(M)
    >>> np.round(G, 3)
    array([[ 1.333, -0.667, -0.667],
           [-0.667,  0.667,  0.   ],
           [-0.667,  0.   ,  0.667]])
    >>> np.allclose(G.sum(axis=1), 0)  # sample frequencies: G 1 = 0
    True
    """
    if method not in ("vanraden1", "vanraden2", "yang"):
        raise InputError(f"method must be 'vanraden1', 'vanraden2' or 'yang', got {method!r}.")
    geno = as_genotypes(M)
    p = geno.allele_freq if allele_freq is None else _frequencies(allele_freq, geno.M.shape[1])
    if weights is not None:
        return _weighted(geno, p, method, weights)
    if method == "vanraden1":
        return centred_cross_product(geno, p)[0]
    het = p * (1.0 - p)
    scale = 1.0 / np.sqrt(2.0 * np.maximum(het, 1e-300))  # used on polymorphic markers only
    W, poly, _ = centred_polymorphic(geno, p, scale=scale)
    p, het = p[poly], het[poly]
    G = cross_product(W, 1.0 / len(poly))
    if method == "yang":
        X = geno.M[:, poly]
        with np.errstate(invalid="ignore"):
            term = (X**2 - (1.0 + 2.0 * p) * X + 2.0 * p**2) / (2.0 * het)
        called = (~np.isnan(X)).sum(axis=1)
        # an individual with no call at a polymorphic marker gets the expectation, 1
        G[np.diag_indices_from(G)] = 1.0 + np.nansum(term, axis=1) / np.maximum(called, 1)
    return G


def _weighted(geno, p: np.ndarray, method: str, weights: Any) -> np.ndarray:
    """G = W diag(d) D_alpha W' / c: each column of W times the root of its weight."""
    if method == "yang":
        raise InputError("weights apply to method='vanraden1' or 'vanraden2' (G = W D_alpha W' / "
                         "c); Yang's G has a diagonal of its own and takes no weights.")
    m = geno.M.shape[1]
    poly, root, c = markers.marker_scaling(p, method, markers._weights(weights, m))
    scale = np.zeros(m)
    scale[poly] = root
    W, _, _ = markers.centred_polymorphic(geno, p, scale=scale)
    return markers.cross_product(W, 1.0 / c)


@dataclass(frozen=True, eq=False)
class GBLUPResult:
    """GBLUP: variance components, BLUE and genomic breeding values.

    Attributes
    ----------
    b : (p,) ndarray
    u : (n,) ndarray
        GEBV of every row of G, phenotyped or not.
    ids : (n,) ndarray
        The IDs of the rows of G (0..n-1 when none were given), aligned with ``u``.
    sigma2_u, sigma2_e, h2 : float
        Genomic variance (per unit of G), residual variance, sigma2_u / (sigma2_u + sigma2_e).
    loglik : float
        REML log-likelihood at the variances (lme4's convention, chapter 2).
    pev, reliability : (n,) ndarray
        Var(u_i - u_hat_i) and 1 - PEV_i / (sigma2_u G_ii).
    fixed_names : (p,) ndarray
    n_obs : int
        Individuals with a phenotype.
    boundary : str or None
        Set when the REML estimate of a variance is 0.
    estimated : bool
        Whether the variances were estimated (REML) or given.
    v_inv_residual : (n,) ndarray
        V^-1 (y - X b_hat) on the phenotyped rows, NaN on the others: what
        :func:`lmmbook.backsolve_snp_effects` needs (``u_hat = sigma2_u G[:, o] @ v[o]``).
    X : (n, p) ndarray
        The fixed-effect design as used, one row per row of G (only the phenotyped rows enter the
        fit): what :func:`lmmbook.gwas` needs for the projection matrix P.
    traits : tuple of str or None
        With several traits (y a table, chapter 11): their names. Then ``u``, ``pev``,
        ``reliability`` and ``v_inv_residual`` are (n, t) arrays, ``b`` holds each trait's fixed
        effects trait by trait (``fixed_names`` "trait:column"), ``sigma2_u`` and ``sigma2_e``
        are the (t, t) matrices G0 and R0, ``h2`` is (t,), and ``n_obs`` counts individuals with
        at least one trait recorded. None for one trait.
    component_table : pandas.DataFrame or None
        With several traits and estimated variances: what ``components()`` returns.
    rotated : bool
        With several traits: whether one rotation by the eigenvectors of G made the records
        independent (every phenotyped individual has every trait), else the general V form of
        :func:`lmmbook.reml` served.
    converged : bool
        Whether REML converged (always True when the variances were given; one trait: the
        spectral search always ends at its optimum).
    n_iter : int
        REML iterations with several traits (0 when the variances were given or for one trait).
    rotation : object or None
        One trait: the eigendecomposition G_oo = U diag(lambda) U' over the phenotyped rows that
        the fit used (with the rotated X), kept so that :func:`lmmbook.gwas` needs no second
        one; n_o^2 floats (200 MB at n_o = 5000). None with ``gblup(..., keep_rotation=False)``
        and with several traits. Private in form (not compared, not shown).
    """

    b: np.ndarray
    u: np.ndarray
    ids: np.ndarray
    sigma2_u: float
    sigma2_e: float
    h2: float
    loglik: float
    pev: np.ndarray
    reliability: np.ndarray
    fixed_names: np.ndarray
    n_obs: int
    boundary: str | None
    estimated: bool
    v_inv_residual: np.ndarray
    X: np.ndarray
    traits: tuple[str, ...] | None = None
    component_table: pd.DataFrame | None = None
    rotated: bool = False
    converged: bool = True
    n_iter: int = 0
    rotation: _spectral.Rotated | None = field(default=None, repr=False, compare=False)

    def components(self) -> pd.DataFrame:
        """With several traits and REML: every (co)variance with its standard error, then h2 of
        each trait and the genetic and residual correlations (delta method), as
        :meth:`lmmbook.REMLResult.components`."""
        if self.component_table is None:
            raise InputError(
                "components() lists estimates with standard errors of a GBLUP of several traits "
                "whose variances were estimated; this fit " + (
                    "has one trait: use lmmbook.reml(y, X, None, G) for standard errors."
                    if self.traits is None else "was given its variances."))
        return self.component_table

    def to_frame(self) -> pd.DataFrame:
        """GEBV, PEV and reliability indexed by ID (with several traits, columns (quantity,
        trait))."""
        index = pd.Index(self.ids, name="id")
        columns = {"gebv": self.u, "pev": self.pev, "reliability": self.reliability}
        if self.traits is None:
            return pd.DataFrame(columns, index=index)
        frame = pd.DataFrame({(what, trait): values[:, a] for what, values in columns.items()
                              for a, trait in enumerate(self.traits)}, index=index)
        frame.columns.names = ["quantity", "trait"]
        return frame


def gblup(
    y: Any,
    X: Any,
    G: Any,
    *,
    sigma2_u: float | None = None,
    sigma2_e: float | None = None,
    ids: Any = None,
    keep_rotation: bool = True,
) -> GBLUPResult:
    """Genomic BLUP: the animal model with G in place of A, in its V form (chapter 5).

    Parameters
    ----------
    y : (n,) array_like or pandas.Series, or an (n, t) array or DataFrame of t traits
        Phenotypes; NaN means "predict, do not fit". A Series indexed by ID is joined to ``ids``;
        it may hold fewer individuals than G (the others are predicted), but an ID with a phenotype
        and no row in G is refused by name. A table holds one trait per column (chapter 11), NaN
        for a trait not recorded; a DataFrame is joined by ID like a Series.
    X : (n, p) array_like, pandas.DataFrame or Incidence
        Fixed effects, one row per row of G (rows of individuals without phenotype are not used).
        A DataFrame indexed by ID is joined to ``ids`` like y.
    G : (n, n) array_like or pandas.DataFrame
        Genomic relationships. Singular is fine; small negative eigenvalues (Yang's GRM) are fine as
        long as V stays positive definite, which the search over the variances respects. A
        DataFrame's index gives ``ids``.
    sigma2_u, sigma2_e : float or (t, t) array_like, optional
        Both, or neither: then they are estimated by REML (the spectral method of chapter 2; with
        several traits AI-REML). With t traits the genetic and residual covariance matrices G0
        and R0.
    ids : (n,) array_like, optional
        IDs of the rows of G.
    keep_rotation : bool, optional
        One trait: keep the eigendecomposition of G_oo in the result (``rotation``, n_o^2
        floats), which :func:`lmmbook.gwas` reuses (default). False drops it, for loops that
        keep many fits; gwas then computes it again.

    Returns
    -------
    GBLUPResult

    Raises
    ------
    NotPositiveDefiniteError
        G is clearly indefinite (smallest eigenvalue below ``-INDEFINITE_TOL`` times the mean
        diagonal, among the phenotyped individuals): the message gives the eigenvalue and remedies.
    UnknownIdError, DuplicateIdError, ShapeMismatchError, NonFiniteError, VarianceError, InputError

    Notes
    -----
    u_hat = sigma2_u G V^-1 (y - X b_hat) with V = sigma2_u G_oo + sigma2_e I over the phenotyped
    rows o (chapter 5, eq-gblup-v). One eigendecomposition of G_oo serves REML, b, u and the
    prediction error variances, PEV = sigma2_u G_ii - sigma2_u^2 [G_io P G_oi]_ii; the fit keeps
    it (``rotation``) for the marker tests of :func:`lmmbook.gwas`, which need P again. It does
    not depend on the variances, so it serves a fit at given variances as well.

    With several traits, Var(vec Y) = G0 kron G_oo + R0 kron I (chapter 11, ``(eq-mt-var)``). When
    every phenotyped individual has every trait, G_oo = U diag(s) U' turns the records U'Y into
    independent rows with covariances s_i G0 + R0 (one rotation, as in MTG2, Lee & van der Werf
    2016; not Meyer's canonical transformation, which depends on G0 and R0): REML then costs one
    eigendecomposition plus O(n t^3) per iteration, and ``rotated`` is True. Otherwise the
    stacked V form of :func:`lmmbook.reml` serves (O((n t)^3) per iteration). Both give the same
    estimates, standard errors and predictions. A REML that did not converge is flagged
    (``converged``) and warned about (:class:`lmmbook.errors.LmmbookWarning`).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> G = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> fit = lmmbook.gblup([1.0, np.nan, -1.0], np.ones((3, 1)), G, sigma2_u=1.0, sigma2_e=1.0)
    >>> np.round(fit.u, 4).tolist()  # the unphenotyped middle animal gets half of its relative's
    [0.5, 0.25, -0.5]
    """
    Gl = _checks.matrix("G", G)
    G_values = _checks.dense(Gl.values)
    n = G_values.shape[0]
    if G_values.shape[1] != n:
        raise ShapeMismatchError(f"G must be square, got shape {G_values.shape}.")
    _checks.symmetric("G", G_values)
    ids = _checks.row_ids(ids, Gl.rows, n, "G")
    if _checks.is_table(y):
        return _gblup_traits(y, X, G_values, ids, sigma2_u, sigma2_e)
    y_values = _checks.align_to_ids(y, ids, n)
    X_values, fixed_names = _checks.design_to_ids(X, ids, n, y_values)

    observed = np.isfinite(y_values)
    n_obs, p = int(observed.sum()), X_values.shape[1]
    if n_obs <= p:
        raise InputError(f"GBLUP needs more phenotyped individuals than fixed effects: {n_obs} "
                         f"and {p}.")
    y_o, X_o = y_values[observed], X_values[observed]
    _checks.full_column_rank("X", X_o, None)
    if (sigma2_u is None) != (sigma2_e is None):
        raise InputError("give both sigma2_u and sigma2_e, or neither (then REML estimates them).")

    all_observed = bool(observed.all())
    G_oo = G_values if all_observed else G_values[np.ix_(observed, observed)]
    rot = _spectral.rotate_eigh(y_o, X_o, np.array(G_oo, copy=True), clip=False)
    scale = float(np.mean(np.diag(G_values)))
    if rot.min_eigenvalue < -INDEFINITE_TOL * scale:
        raise NotPositiveDefiniteError(
            f"G is indefinite: its smallest eigenvalue (phenotyped rows) is "
            f"{rot.min_eigenvalue:.4g}, mean diagonal {scale:.4g}. A covariance matrix cannot be "
            "negative: use method='vanraden1' or 'vanraden2' (positive semi-definite by "
            f"construction), or add more than {-rot.min_eigenvalue:.3g} to the diagonal "
            "(G + c I), which also changes the model."
        )
    if sigma2_u is None:
        res = _spectral.fit(rot)
        s2u, s2e, boundary = res.sigma2_u, res.sigma2_e, res.boundary
    else:
        s2u = _checks.positive_variance("sigma2_u", sigma2_u)
        s2e = _checks.positive_variance("sigma2_e", sigma2_e)
        boundary = None
    b, loglik = _spectral.gls_at(rot, s2u, s2e)
    v_inv_r = _spectral.v_inverse_residual(rot, s2u, s2e, b)
    G_ao = G_values if all_observed else G_values[:, observed]
    u = s2u * (G_ao @ v_inv_r)
    pev = _pev(rot, G_ao, G_values, s2u, s2e, all_observed)
    diag = np.diag(G_values)
    reliability = np.zeros(n)  # at sigma2_u = 0 nothing is known beyond the mean
    if s2u > 0:
        positive = diag > 0
        reliability[positive] = 1.0 - pev[positive] / (s2u * diag[positive])
    frozen = _checks.frozen
    return GBLUPResult(
        b=frozen(b), u=frozen(u), ids=frozen(np.asarray(ids) if ids is not None else np.arange(n)),
        sigma2_u=float(s2u), sigma2_e=float(s2e), h2=float(s2u / (s2u + s2e)),
        loglik=float(loglik), pev=frozen(pev), reliability=frozen(reliability),
        fixed_names=frozen(fixed_names), n_obs=n_obs, boundary=boundary,
        estimated=sigma2_u is None, v_inv_residual=frozen(_scatter(v_inv_r, observed)),
        X=frozen(X_values), rotation=_read_only(rot) if keep_rotation else None,
    )


def _read_only(rot: _spectral.Rotated) -> _spectral.Rotated:
    """The rotation as the result keeps it: its arrays made read-only (no copy)."""
    for a in (rot.lam, rot.U, rot.yt, rot.Xt, rot.y, rot.X):
        a.setflags(write=False)
    return rot


def _scatter(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    out[rows] = values
    return out



def _pev(rot, G_ao, G, s2u, s2e, all_observed) -> np.ndarray:
    """diag(sigma2_u G - sigma2_u^2 G_ao P G_oa) from the eigendecomposition of G_oo.

    With B = G_ao U (= U Lambda when every row has a phenotype, at no cost), the quadratic form
    diag(B' P B) in the rotated space is left to the spectral core, which also handles its limit
    at sigma2_e = 0.
    """
    B = rot.U * rot.lam if all_observed else G_ao @ rot.U
    return s2u * np.diag(G) - s2u**2 * _spectral.p_quadratic(rot, s2u, s2e, B)


#: Several traits with a trait missing on some phenotyped individual are fitted in the dense V form
#: (:func:`lmmbook.reml`), which holds a few (n_values x n_values) matrices: refused above this
#: many stacked values.
GENERAL_MAX_VALUES = 5000


def _gblup_traits(Y, X, G, ids, sigma2_u, sigma2_e) -> GBLUPResult:
    """GBLUP of several traits (chapter 11): one rotation by the eigenvectors of G when every
    phenotyped row has every trait, else the general V form; REML by AI on either."""
    n = len(G)
    values, Y_ids, names = _checks.table("y", Y)
    frame = pd.DataFrame(values, index=Y_ids, columns=list(names))
    if Y_ids is not None and ids is not None:
        unknown = Y_ids.difference(ids, sort=False)
        if len(unknown):
            raise UnknownIdError(
                f"{format_ids(unknown)} of y {'has' if len(unknown) == 1 else 'have'} records but "
                "no genotype (not among the rows of G). Genotype the individual or drop its row.")
        frame = frame.reindex(ids)
    else:
        _checks.same_length("y", n, "G", len(frame), unit="entries")
    Y_values = frame.to_numpy(dtype=float)
    any_trait = np.where(np.isfinite(Y_values).any(axis=1), 0.0, np.nan)
    X_values, columns = _checks.design_to_ids(X, ids, n, any_trait)
    if (sigma2_u is None) != (sigma2_e is None):
        raise InputError("give both sigma2_u (G0) and sigma2_e (R0), or neither (then REML "
                         "estimates them).")
    stacked = model.stacked_problem(pd.DataFrame(Y_values, columns=list(names)),
                                    pd.DataFrame(X_values, columns=list(columns)), None, G,
                                    None, inverse=False, broadcast=True, dense_X=True)
    traits = stacked.traits
    t, rows = traits.t, traits.with_data
    design_names = model.trait_design_names(("u",), traits)
    rotated = bool(traits.observed[rows].all())
    residual = reml._residual(stacked, parts=not rotated)
    layout = reml._Layout((t, t), (int(rows.sum()),) * 2, tuple(range(t)) * 2)
    given = sigma2_u is not None
    if given:
        G0 = model.covariance_matrix("sigma2_u", sigma2_u, t, rows="one row per trait: G0",
                                     semidefinite=True)  # the V form never inverts G0
        R0 = model.covariance_matrix("sigma2_e", sigma2_e, t, rows="one row per trait: R0")
        theta = np.concatenate([model.vech(G0), model.vech(R0)])
    else:
        theta = reml._initial(stacked.y, stacked.X, layout, None, residual.row_traits)
    G_oo = G[np.ix_(rows, rows)]
    if rotated:
        rot = _rotation.rotate(Y_values[rows], X_values[rows], G_oo)
        scale = float(np.mean(np.diag(G)))
        if rot.s[0] < -INDEFINITE_TOL * scale:
            raise NotPositiveDefiniteError(
                f"G is indefinite: its smallest eigenvalue (phenotyped rows) is {rot.s[0]:.4g}, "
                f"mean diagonal {scale:.4g}. A covariance matrix cannot be negative: use "
                "method='vanraden1' or 'vanraden2' (positive semi-definite by construction), or "
                f"add more than {-rot.s[0]:.3g} to the diagonal (G + c I), which also changes "
                "the model.")
        state = _rotation.State(rot, theta)
    else:
        if len(stacked.y) > GENERAL_MAX_VALUES:
            raise InputError(
                f"{int((~traits.observed[rows]).sum())} of the {int(rows.sum())} phenotyped "
                f"individuals' trait values are missing, so the rotation by G's eigenvectors does "
                f"not apply, and the general V form over {len(stacked.y)} values (more than "
                f"lmmbook.genomic.GENERAL_MAX_VALUES = {GENERAL_MAX_VALUES}) would need several "
                "dense matrices of that order squared. Fit the individuals with every trait "
                "recorded (the others are still predicted when their records are set to NaN on "
                "every trait), or fewer individuals.")
        _checks.positive_semidefinite("G (phenotyped rows)", G_oo)
        state = reml._VState(stacked.y, stacked.X, [
            *model.variance_parts(stacked.effects.entries[0], stacked.observed),
            *residual.parts], theta)
    converged, n_iter, trace = True, 0, None
    if not given:
        state, converged, n_iter, trace = reml._iterate(state, layout, "ai", 1e-10,
                                                        reml._MAX_ITER["ai"])
        if not converged:
            warnings.warn(
                f"REML of G0 and R0 did not converge in {n_iter} AI iterations (GBLUPResult."
                "converged is False): the estimates may be short of the maximum. Compare with "
                "lmmbook.reml(y, X, None, G, method='em').", LmmbookWarning, stacklevel=3)
    G_ao = G[:, rows]
    if rotated:
        B = rot.U * rot.s if rows.all() else G_ao @ rot.U  # Cov(u, rotated records) / G0
        u, pev = state.blup(B), state.pev(B, np.diag(G))
        PY = rot.U @ state.PY
    else:
        u, pev, PY = _general_blup(state, G, rows, traits)
    info = None if given else state.information()
    blocks = layout.blocks(state.theta)
    G0, R0 = blocks
    components = None
    if not given:
        out = {"G0": [G0], "R0": R0, "loglik": state.loglik, "b": state.b,
               "b_se": np.sqrt(np.diag(state.XtVinvX_inv)), "u": [u[:, a] for a in range(t)],
               "info": info, "converged": converged, "n_iter": n_iter, "trace": trace,
               "boundary": reml._boundary(state.theta, layout, design_names + residual.names)}
        fit = reml._result(out, stacked, "ai", ("u",), design_names, list(range(t)), residual)
        components = fit.components()
        h2 = np.asarray(fit.h2)
        boundary, loglik = fit.boundary, fit.loglik
    else:
        h2 = np.diag(G0) / (np.diag(G0) + np.diag(R0))
        boundary, loglik = None, state.loglik
    diag = np.diag(G)
    reliability = np.zeros((n, t))
    positive = diag > 0
    reliability[positive] = 1.0 - pev[positive] / np.outer(diag[positive], np.diag(G0))
    v_inv = np.full((n, t), np.nan)
    v_inv[rows] = PY
    frozen = _checks.frozen
    return GBLUPResult(
        b=frozen(state.b), u=frozen(u), ids=frozen(np.asarray(ids) if ids is not None
                                                   else np.arange(n)),
        sigma2_u=frozen(G0), sigma2_e=frozen(R0), h2=frozen(h2), loglik=float(loglik),
        pev=frozen(pev), reliability=frozen(reliability), fixed_names=frozen(stacked.fixed_names),
        n_obs=stacked.n_obs, boundary=boundary, estimated=not given,
        v_inv_residual=frozen(v_inv), X=frozen(X_values), traits=traits.names,
        component_table=components, rotated=rotated, converged=converged, n_iter=n_iter,
    )


def _general_blup(state, G: np.ndarray, rows: np.ndarray, traits) -> tuple:
    """u, PEV and P y by trait in the dense V form over the stacked observed (record, trait)
    pairs: u = (G0 kron G) Z' P y, PEV = diag(G0 kron G - (G0 kron G) Z' P Z (G0 kron G))."""
    t = traits.t
    G0 = model.unvech(state.theta[:t * (t + 1) // 2], t)
    n = len(G)
    # C = Cov(u, y_stacked): for animal j, trait a and stacked value s (record i, trait b):
    # G0[a, b] G[j, i]
    C = np.concatenate([G0[a][traits.trait][None, :] * G[:, traits.record] for a in range(t)])
    u = (C @ state.Py).reshape(t, n).T
    prior = np.repeat(np.diag(G0), n) * np.tile(np.diag(G), t)
    pev = (prior - np.einsum("ij,ij->i", C @ state.P, C)).reshape(t, n).T
    PY = np.full((n, t), np.nan)
    PY[traits.record, traits.trait] = state.Py
    return u, pev, PY[rows]
