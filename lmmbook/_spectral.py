"""The spectral core: one rotation, then the profiled REML likelihood in one dimension (private).

For V = sigma2_u ZKZ' + sigma2_e I with ZKZ' = U diag(delta) U' (positive semi-definite, n x n), the
rotation U' turns V into a diagonal matrix, so every quantity of the REML likelihood is a sum over
n terms (chapter 2, "the spectral trick"; Patterson & Thompson 1971, Kang et al. 2008).

Write V = sigma2 U Psi U' with Psi = diag(psi), psi_i = eta delta_i + 1 - eta, eta in [0, 1],
so that sigma2_u = eta sigma2 and sigma2_e = (1 - eta) sigma2 (the book's notation). For a fixed
eta the REML estimate of sigma2 has a closed form, and what is left is a function of eta alone,
maximised on a grid (endpoints included) and then refined on a root of its analytic derivative.

ZKZ' may also be given by a thin factor L (n x r, r < n) with ZKZ' = L L': then only r eigenvalues
are non-zero, and the other n - r directions (eigenvalue 0) enter through their cross-products, so
that no n x n matrix is formed. The same code serves GBLUP (ZKZ' = G on the phenotyped rows) and
SNP-BLUP (L = W / sqrt(c)). In the code, ``lam`` holds the eigenvalues delta_i and ``p`` the number
of fixed effects n_b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
from scipy.optimize import brentq

LOG_2PI = np.log(2.0 * np.pi)
_GRID = 1.0 / (1.0 + np.exp(np.linspace(-12.0, 12.0, 97)))  # eta from ~1 down to ~0, log-spaced
_ETA_TOL = 1e-14


@dataclass(frozen=True, eq=False)
class Rotated:
    """y and X in the eigenbasis of ZKZ'.

    ``lam`` (r,) are the eigenvalues delta of ZKZ' in the rotated directions, ``yt`` (r,) and
    ``Xt`` (r, p) the rotated data. The n0 = n - r directions with eigenvalue 0 that a thin
    factor leaves out enter through ``yy0``, ``Xy0`` (p,) and ``XX0`` (p, p), their
    cross-products. ``U`` (n, r) is kept to map results back (BLUPs).
    """

    lam: np.ndarray
    min_eigenvalue: float  # before clipping round-off negatives to 0 (a check of ZKZ')
    yt: np.ndarray
    Xt: np.ndarray
    U: np.ndarray
    n0: int
    yy0: float
    Xy0: np.ndarray
    XX0: np.ndarray
    y: np.ndarray
    X: np.ndarray

    @property
    def n(self) -> int:
        return len(self.lam) + self.n0

    @property
    def p(self) -> int:
        return self.Xt.shape[1]


def rotate_eigh(y: np.ndarray, X: np.ndarray, H: np.ndarray, clip: bool = True) -> Rotated:
    """Eigendecompose H = ZKZ' (n x n, symmetric; overwritten) and rotate y and X.

    With ``clip`` (H known to be PSD), eigenvalues below zero are round-off and set to 0;
    without it they are kept, and the likelihood is -inf wherever V would not be positive
    definite.
    """
    lam, U = la.eigh(H, overwrite_a=True, check_finite=False, driver="evd")
    smallest = float(lam[0]) if len(lam) else 0.0
    if len(lam):  # eigenvalues at round-off level are exactly 0 (as for the thin SVD)
        lam[np.abs(lam) < len(lam) * np.finfo(float).eps * np.abs(lam).max()] = 0.0
    if clip:
        np.maximum(lam, 0.0, out=lam)
    p = X.shape[1]
    return Rotated(lam=lam, min_eigenvalue=smallest, yt=U.T @ y, Xt=U.T @ X, U=U, n0=0,
                   yy0=0.0, Xy0=np.zeros(p), XX0=np.zeros((p, p)), y=y, X=X)


def rotate_factor(y: np.ndarray, X: np.ndarray, L: np.ndarray) -> Rotated:
    """Thin SVD of the factor L (n x r) of ZKZ' = L L', and the rotation of y and X."""
    U, s, _ = la.svd(L, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    # directions with a singular value at round-off level belong to the null space of ZKZ': they
    # join the zero-eigenvalue complement (exactly 0 there, not 1e-31 that would pass for data)
    keep = s > max(L.shape) * np.finfo(float).eps * (s[0] if len(s) else 0.0)
    U, s = U[:, keep], s[keep]
    yt, Xt = U.T @ y, U.T @ X
    y0, X0 = y - U @ yt, X - U @ Xt  # parts orthogonal to the columns of L
    return Rotated(lam=s**2, min_eigenvalue=0.0, yt=yt, Xt=Xt, U=U, n0=len(y) - U.shape[1],
                   yy0=float(y0 @ y0), Xy0=X0.T @ y0, XX0=X0.T @ X0, y=y, X=X)


@dataclass(frozen=True)
class _State:
    """Everything the likelihood needs at one eta."""

    eta: float
    psi: np.ndarray
    psi0: float  # psi of the n0 zero-eigenvalue directions, 1 - eta
    M: np.ndarray  # X' Psi^-1 X
    b: np.ndarray  # GLS estimate
    rt: np.ndarray  # rotated residuals y~_c = y~ - X~ b
    S: float  # S(eta) = y~_c' Psi^-1 y~_c
    logdet_Psi: float
    logdet_M: float


def _state(rot: Rotated, eta: float) -> _State | None:
    psi = eta * rot.lam + (1.0 - eta)
    psi0 = 1.0 - eta
    if np.any(psi <= 0) or (rot.n0 and psi0 <= 0):
        return None  # V singular: the likelihood is -inf here
    w = 1.0 / psi
    M = (rot.Xt * w[:, None]).T @ rot.Xt
    c = rot.Xt.T @ (w * rot.yt)
    if rot.n0:
        M = M + rot.XX0 / psi0
        c = c + rot.Xy0 / psi0
    if rot.p:
        try:
            chol = la.cho_factor(M, lower=True, check_finite=False)
        except la.LinAlgError:
            return None
        b = la.cho_solve(chol, c, check_finite=False)
        logdet_M = 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
    else:
        b, logdet_M = np.zeros(0), 0.0
    rt = rot.yt - rot.Xt @ b
    S = float(np.sum(w * rt**2))
    if rot.n0:
        # residual energy in the zero-eigenvalue directions: |y0 - X0 b|^2
        S += (rot.yy0 - 2.0 * rot.Xy0 @ b + b @ rot.XX0 @ b) / psi0
    logdet_Psi = float(np.sum(np.log(psi))) + (rot.n0 * np.log(psi0) if rot.n0 else 0.0)
    return _State(eta, psi, psi0, M, b, rt, S, logdet_Psi, logdet_M)


def profile_loglik(rot: Rotated, eta: float) -> float:
    """REML log-likelihood at eta with sigma2 profiled out (lme4's convention, chapter 2).

    loglik = -1/2 [ (n-n_b) log 2pi + log|V| + log|X'V^-1 X| + y_c'V^-1 y_c ]
    at sigma2 = S / (n - n_b).
    """
    st = _state(rot, eta)
    if st is None:
        return -np.inf
    dof = rot.n - rot.p
    if st.S <= 0:
        return np.inf if dof > 0 else -np.inf
    return -0.5 * (dof * (LOG_2PI + 1.0 + np.log(st.S / dof)) + st.logdet_Psi + st.logdet_M)


def profile_score(rot: Rotated, eta: float) -> float:
    """Derivative of :func:`profile_loglik` with respect to eta.

    With Psi' = dPsi/deta = diag(delta - 1): d log|Psi| = tr(Psi^-1 Psi'),
    d log|M| = -tr(M^-1 X'Psi^-1 Psi'Psi^-1 X), and dS = -y_c'Psi^-1 Psi'Psi^-1 y_c at the GLS b
    (b's own change does not count: S is minimal in b).
    """
    st = _state(rot, eta)
    if st is None:
        return np.nan
    dof = rot.n - rot.p
    w = 1.0 / st.psi
    dd = rot.lam - 1.0
    dlogdet = float(np.sum(dd * w))
    dS = -float(np.sum(dd * (w * st.rt) ** 2))
    XwdwX = (rot.Xt * (dd * w * w)[:, None]).T @ rot.Xt
    if rot.n0:
        dlogdet -= rot.n0 / st.psi0
        r0 = rot.yy0 - 2.0 * rot.Xy0 @ st.b + st.b @ rot.XX0 @ st.b
        dS += r0 / st.psi0**2
        XwdwX = XwdwX - rot.XX0 / st.psi0**2
    dlogdetM = -float(np.trace(np.linalg.solve(st.M, XwdwX))) if rot.p else 0.0
    return -0.5 * (dof * dS / st.S + dlogdet + dlogdetM)


@dataclass(frozen=True)
class SpectralFit:
    """The REML estimates of the one-dimensional search."""

    sigma2_u: float
    sigma2_e: float
    eta: float
    loglik: float
    b: np.ndarray
    n_eval: int
    boundary: str | None  # "sigma2_u = 0", "sigma2_e = 0" or None


def fit(rot: Rotated) -> SpectralFit:
    """Maximise the profiled REML likelihood over eta in [0, 1], boundaries included.

    A grid of 97 values log-spaced in the variance ratio plus both endpoints finds every local
    maximum that is not narrower than a grid step; each interior one is refined by Brent's method
    on a sign change of the analytic score (to |deta| < 1e-14), and the best is kept.
    """
    if rot.n - rot.p <= 0:
        raise ValueError("no degrees of freedom left for REML")
    # points ever closer to eta = 1 find a maximum that approaches sigma2_e = 0 where V itself
    # becomes singular at eta = 1 (a singular ZKZ' with as many records as its rank)
    near_one = 1.0 - np.logspace(-7, -13, 4)
    grid = np.concatenate([[1.0], near_one, _GRID, [0.0]])
    ll = np.array([profile_loglik(rot, t) for t in grid])
    scores = np.array([profile_score(rot, t) for t in grid])  # NaN where V is singular
    n_eval = 2 * len(grid)
    candidates = [(ll[0], 1.0), (ll[-1], 0.0)]
    # The grid runs from eta = 1 down to 0: a maximum in between is where the score (d/deta)
    # changes from negative (at the larger eta) to positive (at the smaller eta).
    for i in range(len(grid) - 1):
        hi, lo = grid[i], grid[i + 1]
        if scores[i] < 0 <= scores[i + 1]:
            counter = [0]

            def score(t, counter=counter):
                counter[0] += 1
                return profile_score(rot, t)

            eta = brentq(score, lo, hi, xtol=_ETA_TOL, rtol=4 * np.finfo(float).eps)
            n_eval += counter[0]
            candidates.append((profile_loglik(rot, eta), eta))
    loglik, eta = max(candidates, key=lambda c: c[0])
    st = _state(rot, eta)
    sigma2 = st.S / (rot.n - rot.p)
    boundary = "sigma2_u = 0" if eta == 0.0 else ("sigma2_e = 0" if eta == 1.0 else None)
    return SpectralFit(sigma2_u=eta * sigma2, sigma2_e=(1.0 - eta) * sigma2, eta=eta,
                       loglik=float(loglik), b=st.b, n_eval=n_eval, boundary=boundary)


def gls_at(rot: Rotated, sigma2_u: float, sigma2_e: float) -> tuple[np.ndarray, float]:
    """The GLS b and the REML log-likelihood (lme4's convention) at given variances."""
    v = sigma2_u * rot.lam + sigma2_e
    if np.any(v <= 0) or (rot.n0 and sigma2_e <= 0):
        raise ValueError("V is not positive definite at these variances")
    M = (rot.Xt / v[:, None]).T @ rot.Xt
    c = rot.Xt.T @ (rot.yt / v)
    if rot.n0:
        M, c = M + rot.XX0 / sigma2_e, c + rot.Xy0 / sigma2_e
    if rot.p:
        chol = la.cho_factor(M, lower=True, check_finite=False)
        b = la.cho_solve(chol, c, check_finite=False)
        logdet_M = 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
    else:
        b, logdet_M = np.zeros(0), 0.0
    rt = rot.yt - rot.Xt @ b
    S = float(np.sum(rt**2 / v))
    logdet_V = float(np.sum(np.log(v)))
    if rot.n0:
        S += (rot.yy0 - 2.0 * rot.Xy0 @ b + b @ rot.XX0 @ b) / sigma2_e
        logdet_V += rot.n0 * np.log(sigma2_e)
    dof = rot.n - rot.p
    return b, -0.5 * (dof * LOG_2PI + logdet_V + logdet_M + S)


def v_inverse_residual(rot: Rotated, sigma2_u: float, sigma2_e: float, b: np.ndarray) -> np.ndarray:
    """V^-1 (y - X b) in the original (observed-record) coordinates."""
    r = rot.y - rot.X @ b
    rt = rot.U.T @ r
    v = sigma2_u * rot.lam + sigma2_e
    out = rot.U @ (rt / v)
    if rot.n0:
        out += (r - rot.U @ rt) / sigma2_e
    return out


def information(rot: Rotated, sigma2_u: float, sigma2_e: float) -> np.ndarray:
    """Expected (Fisher) information of REML for (sigma2_u, sigma2_e): I_st = tr(P V_s P V_t) / 2.

    In the rotated basis V_u = ZKZ' = diag(delta), V_e = I and V = diag(v), so with Delta = V^-1 and
    F = Delta X~, P = Delta - F M^-1 F' and, for diagonal A and B,
    tr(PAPB) = sum(a b / v^2) - 2 tr(M^-1 X~' diag(a b / v^3) X~)
               + tr(M^-1 X~' diag(a / v^2) X~ M^-1 X~' diag(b / v^2) X~).
    The n0 zero-eigenvalue directions (a_u = 0, a_e = 1, v = sigma2_e) add their share.
    """
    v = sigma2_u * rot.lam + sigma2_e
    ve = sigma2_e if rot.n0 else 1.0  # only the zero-eigenvalue directions divide by sigma2_e
    a_u, a_e = rot.lam, np.ones_like(rot.lam)
    parts = ((a_u, 0.0), (a_e, 1.0))  # (V_s in the rotated basis, its value off it)

    def cross(weights, w0):
        out = (rot.Xt * weights[:, None]).T @ rot.Xt
        return out + rot.XX0 * w0 if rot.n0 else out

    M = cross(1.0 / v, 1.0 / ve)
    half = [np.linalg.solve(M, cross(a / v**2, a0 / ve**2)) if rot.p else None
            for a, a0 in parts]
    info = np.empty((2, 2))
    for i, (a, a0) in enumerate(parts):
        for j, (b, b0) in enumerate(parts):
            term = float(np.sum(a * b / v**2)) + rot.n0 * a0 * b0 / ve**2
            if rot.p:
                term -= 2.0 * float(np.trace(np.linalg.solve(M, cross(a * b / v**3,
                                                                       a0 * b0 / ve**3))))
                term += float(np.trace(half[i] @ half[j]))
            info[i, j] = 0.5 * term
    return info
