"""The spectral core: one rotation, then the profiled REML likelihood in one dimension (private).

For V = sigma2_u H + sigma2_e I with H = U diag(lam) U' (H positive semi-definite, n x n), the
rotation U' turns V into a diagonal matrix, so every quantity of the REML likelihood is a sum over
n terms (chapter 2, "the spectral trick"; Patterson & Thompson 1971, Kang et al. 2008).

Write V = s2 D(tau) with D = tau H + (1 - tau) I, tau in [0, 1], so that sigma2_u = tau s2 and
sigma2_e = (1 - tau) s2. For a fixed tau the REML estimate of s2 has a closed form, and what is left
is a function of tau alone, maximised on a grid (endpoints included) and then refined on a root of
its analytic derivative.

H may also be given by a thin factor L (n x k, k < n) with H = L L': then only k eigenvalues are
non-zero, and the other n - k directions (eigenvalue 0) enter through their cross-products, so
that no n x n matrix is formed. The same code serves GBLUP (H = G) and SNP-BLUP (L = W / scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
from scipy.optimize import brentq

LOG_2PI = np.log(2.0 * np.pi)
_GRID = 1.0 / (1.0 + np.exp(np.linspace(-12.0, 12.0, 97)))  # tau from ~1 down to ~0, log-spaced
_TAU_TOL = 1e-14


@dataclass(frozen=True, eq=False)
class Rotated:
    """y and X in the eigenbasis of H.

    ``lam`` (k,) are the eigenvalues of H in the rotated directions, ``yt`` (k,) and ``Xt`` (k, p)
    the rotated data. The n0 = n - k directions with eigenvalue 0 that a thin factor leaves out
    enter through ``yy0``, ``Xy0`` (p,) and ``XX0`` (p, p), their cross-products.
    ``U`` (n, k) is kept to map results back (BLUPs).
    """

    lam: np.ndarray
    min_eigenvalue: float  # before clipping round-off negatives to 0 (a check of H)
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
    """Eigendecompose H (n x n, symmetric; overwritten) and rotate y and X.

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
    """Thin SVD of the factor L (n x k) of H = L L', and the rotation of y and X."""
    U, s, _ = la.svd(L, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    # directions with a singular value at round-off level belong to the null space of H: they
    # join the zero-eigenvalue complement (exactly 0 there, not 1e-31 that would pass for data)
    keep = s > max(L.shape) * np.finfo(float).eps * (s[0] if len(s) else 0.0)
    U, s = U[:, keep], s[keep]
    yt, Xt = U.T @ y, U.T @ X
    y0, X0 = y - U @ yt, X - U @ Xt  # parts orthogonal to the columns of L
    return Rotated(lam=s**2, min_eigenvalue=0.0, yt=yt, Xt=Xt, U=U, n0=len(y) - U.shape[1],
                   yy0=float(y0 @ y0), Xy0=X0.T @ y0, XX0=X0.T @ X0, y=y, X=X)


@dataclass(frozen=True)
class _State:
    """Everything the likelihood needs at one tau."""

    tau: float
    d: np.ndarray
    d0: float
    M: np.ndarray  # X' D^-1 X
    b: np.ndarray  # GLS estimate
    rt: np.ndarray  # rotated residuals y~ - X~ b
    Q: float  # r' D^-1 r
    logdet_D: float
    logdet_M: float


def _state(rot: Rotated, tau: float) -> _State | None:
    d = tau * rot.lam + (1.0 - tau)
    d0 = 1.0 - tau
    if np.any(d <= 0) or (rot.n0 and d0 <= 0):
        return None  # V singular: the likelihood is -inf here
    w = 1.0 / d
    M = (rot.Xt * w[:, None]).T @ rot.Xt
    c = rot.Xt.T @ (w * rot.yt)
    if rot.n0:
        M = M + rot.XX0 / d0
        c = c + rot.Xy0 / d0
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
    Q = float(np.sum(w * rt**2))
    if rot.n0:
        # residual energy in the zero-eigenvalue directions: |y0 - X0 b|^2
        Q += (rot.yy0 - 2.0 * rot.Xy0 @ b + b @ rot.XX0 @ b) / d0
    logdet_D = float(np.sum(np.log(d))) + (rot.n0 * np.log(d0) if rot.n0 else 0.0)
    return _State(tau, d, d0, M, b, rt, Q, logdet_D, logdet_M)


def profile_loglik(rot: Rotated, tau: float) -> float:
    """REML log-likelihood at tau with s2 profiled out (lme4's convention, chapter 2).

    loglik = -1/2 [ (n-p) log 2pi + log|V| + log|X'V^-1 X| + r'V^-1 r ] at s2 = Q / (n - p).
    """
    st = _state(rot, tau)
    if st is None:
        return -np.inf
    dof = rot.n - rot.p
    if st.Q <= 0:
        return np.inf if dof > 0 else -np.inf
    return -0.5 * (dof * (LOG_2PI + 1.0 + np.log(st.Q / dof)) + st.logdet_D + st.logdet_M)


def profile_score(rot: Rotated, tau: float) -> float:
    """Derivative of :func:`profile_loglik` with respect to tau.

    With D' = dD/dtau = diag(lam - 1): d log|D| = tr(D^-1 D'), d log|M| = -tr(M^-1 X'D^-1 D'D^-1 X),
    and dQ = -r'D^-1 D'D^-1 r at the GLS b (b's own change does not count: Q is minimal in b).
    """
    st = _state(rot, tau)
    if st is None:
        return np.nan
    dof = rot.n - rot.p
    w = 1.0 / st.d
    dd = rot.lam - 1.0
    dlogdet = float(np.sum(dd * w))
    dQ = -float(np.sum(dd * (w * st.rt) ** 2))
    XwdwX = (rot.Xt * (dd * w * w)[:, None]).T @ rot.Xt
    if rot.n0:
        dlogdet -= rot.n0 / st.d0
        r0 = rot.yy0 - 2.0 * rot.Xy0 @ st.b + st.b @ rot.XX0 @ st.b
        dQ += r0 / st.d0**2
        XwdwX = XwdwX - rot.XX0 / st.d0**2
    dlogdetM = -float(np.trace(np.linalg.solve(st.M, XwdwX))) if rot.p else 0.0
    return -0.5 * (dof * dQ / st.Q + dlogdet + dlogdetM)


@dataclass(frozen=True)
class SpectralFit:
    """The REML estimates of the one-dimensional search."""

    sigma2_u: float
    sigma2_e: float
    tau: float
    loglik: float
    b: np.ndarray
    n_eval: int
    boundary: str | None  # "sigma2_u = 0", "sigma2_e = 0" or None


def fit(rot: Rotated) -> SpectralFit:
    """Maximise the profiled REML likelihood over tau in [0, 1], boundaries included.

    A grid of 97 values log-spaced in the variance ratio plus both endpoints finds every local
    maximum that is not narrower than a grid step; each interior one is refined by Brent's method
    on a sign change of the analytic score (to |dtau| < 1e-14), and the best is kept.
    """
    if rot.n - rot.p <= 0:
        raise ValueError("no degrees of freedom left for REML")
    # points ever closer to tau = 1 find a maximum that approaches sigma2_e = 0 where V itself
    # becomes singular at tau = 1 (a singular H with as many records as its rank)
    near_one = 1.0 - np.logspace(-7, -13, 4)
    grid = np.concatenate([[1.0], near_one, _GRID, [0.0]])
    ll = np.array([profile_loglik(rot, t) for t in grid])
    scores = np.array([profile_score(rot, t) for t in grid])  # NaN where V is singular
    n_eval = 2 * len(grid)
    candidates = [(ll[0], 1.0), (ll[-1], 0.0)]
    # The grid runs from tau = 1 down to 0: a maximum in between is where the score (d/dtau)
    # changes from negative (at the larger tau) to positive (at the smaller tau).
    for i in range(len(grid) - 1):
        hi, lo = grid[i], grid[i + 1]
        if scores[i] < 0 <= scores[i + 1]:
            counter = [0]

            def score(t, counter=counter):
                counter[0] += 1
                return profile_score(rot, t)

            tau = brentq(score, lo, hi, xtol=_TAU_TOL, rtol=4 * np.finfo(float).eps)
            n_eval += counter[0]
            candidates.append((profile_loglik(rot, tau), tau))
    loglik, tau = max(candidates, key=lambda c: c[0])
    st = _state(rot, tau)
    s2 = st.Q / (rot.n - rot.p)
    boundary = "sigma2_u = 0" if tau == 0.0 else ("sigma2_e = 0" if tau == 1.0 else None)
    return SpectralFit(sigma2_u=tau * s2, sigma2_e=(1.0 - tau) * s2, tau=tau, loglik=float(loglik),
                       b=st.b, n_eval=n_eval, boundary=boundary)


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
    Q = float(np.sum(rt**2 / v))
    logdet_V = float(np.sum(np.log(v)))
    if rot.n0:
        Q += (rot.yy0 - 2.0 * rot.Xy0 @ b + b @ rot.XX0 @ b) / sigma2_e
        logdet_V += rot.n0 * np.log(sigma2_e)
    dof = rot.n - rot.p
    return b, -0.5 * (dof * LOG_2PI + logdet_V + logdet_M + Q)


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
    """Expected (Fisher) information of REML for (sigma2_u, sigma2_e): I_kl = tr(P H_k P H_l) / 2.

    In the rotated basis H_u = diag(lam), H_e = I and V = diag(v), so with Delta = V^-1 and
    F = Delta X~, P = Delta - F M^-1 F' and, for diagonal A and B,
    tr(PAPB) = sum(a b / v^2) - 2 tr(M^-1 X~' diag(a b / v^3) X~)
               + tr(M^-1 X~' diag(a / v^2) X~ M^-1 X~' diag(b / v^2) X~).
    The n0 zero-eigenvalue directions (a_u = 0, a_e = 1, v = sigma2_e) add their share.
    """
    v = sigma2_u * rot.lam + sigma2_e
    ve = sigma2_e if rot.n0 else 1.0  # only the zero-eigenvalue directions divide by sigma2_e
    a_u, a_e = rot.lam, np.ones_like(rot.lam)
    parts = ((a_u, 0.0), (a_e, 1.0))  # (diagonal of H in the rotated basis, its value off it)

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
