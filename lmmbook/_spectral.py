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

The directions with delta_i = 0 (n_null of them: zero eigenvalues, and the n - r that a thin
factor leaves out) have psi_i = 1 - eta, which vanishes as sigma2_e -> 0. Their share of
X'V^-1 X and of y'V^-1 y is of size 1 / sigma2_e, and added to the O(1) rest and cancelled again in
the log-determinants, the score and V^-1 (y - X b), it loses digits in proportion: at
sigma2_e / sigma2 = 1e-13 about four were left, and the search stopped where round-off put
the maximum. So that share is kept apart. X reaches those directions through X_0'X_0 (X_0: the
rotated X there; n_b x n_b), of rank n_seen <= min(n_null, n_b). In its eigenbasis R = [R_1 R_2]
(beta: the n_seen positive eigenvalues) the combinations R_1'b are measured by the null directions,
with variance sigma2_e diag(beta)^-1, at b_0 = R_1 diag(beta)^-1 R_1'X_0'y_0, and R_2'b not at all.
With the rest of X'V^-1 X written A (in the basis R), X'V^-1 X = [[A_11 + diag(beta) / sigma2_e,
A_12], [A_21, A_22]], and everything is computed from E = sigma2_e A_11 + diag(beta) and its Schur
complement A_22 - sigma2_e A_21 E^-1 A_12, which have limits at sigma2_e = 0 and involve no
cancellation; |y_0 - X_0 b_0|^2 is 0 by construction when n_seen = n_null.

When n_seen = n_null (every null direction of ZKZ' meets the columns of X: the null vector 1 of a
G from centred genotypes lies in the span of an intercept) the REML likelihood is finite and
smooth up to eta = 1: it is the likelihood of the error contrasts N'y (N'X = 0, N'N = I), whose
covariance sigma2 N'(eta ZKZ' + (1 - eta) I) N stays positive definite at eta = 1 although V is
singular there. Its value at eta = 1 is computed in closed form, and b, V^-1 (y - X b) (then P y),
(X'V^-1 X)^-1, the information and the PEV quadratic there are the limits. When n_seen < n_null
(more null directions than X can reach, as for varieties with several plots each) a contrast has
no variance at eta = 1, and the likelihood tends to -inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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

    @cached_property
    def null(self) -> _Null:
        """The directions with delta_i = 0 and what X sees of them (computed once)."""
        return _null_block(self)


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


@dataclass(frozen=True, eq=False)
class _Null:
    """The n_null directions with delta_i = 0, kept apart (module docstring)."""

    nz: np.ndarray  # (r,) bool: the rotated directions with delta_i != 0
    lam: np.ndarray  # their delta_i
    n_null: int  # directions with delta_i = 0, the n0 outside U included
    n_seen: int  # rank of X_0'X_0
    R: np.ndarray  # (p, p) eigenvectors of X_0'X_0, the n_seen with a positive eigenvalue first
    beta: np.ndarray  # (n_seen,) those eigenvalues
    b0: np.ndarray  # (p,) R_1 diag(beta)^-1 R_1'X_0'y_0
    rss0: float  # |y_0 - X_0 b0|^2: 0 by construction when n_seen = n_null
    XR: np.ndarray  # X~ R in the directions with delta_i != 0
    y_b0: np.ndarray  # y~ - X~ b0 there


def _null_block(rot: Rotated) -> _Null:
    nz = rot.lam != 0.0
    zero = ~nz
    X0, y0 = rot.Xt[zero], rot.yt[zero]
    n_null, p = int(zero.sum()) + rot.n0, rot.p
    XX0, Xy0 = X0.T @ X0 + rot.XX0, X0.T @ y0 + rot.Xy0
    if p and n_null:
        beta, R = np.linalg.eigh(XX0)
        beta, R = beta[::-1], R[:, ::-1]
        # round-off in X_0'X_0 is of order eps |X|^2 (X minus its projection on U for a thin
        # factor, eigenvectors of a zero eigenvalue); above it, X_0 sees a combination of b
        tol = max(rot.n, p) * np.finfo(float).eps * float(np.sum(rot.X**2))
        n_seen = int(np.sum(beta > tol))
    else:
        beta, R, n_seen = np.zeros(p), np.eye(p), 0
    beta = beta[:n_seen].copy()
    g = (R[:, :n_seen].T @ Xy0) / beta
    b0 = R[:, :n_seen] @ g
    yy0 = float(y0 @ y0) + rot.yy0
    rss0 = 0.0 if n_seen == n_null else max(yy0 - float(g @ (beta * g)), 0.0)
    Xn = rot.Xt[nz]
    return _Null(nz=nz, lam=rot.lam[nz], n_null=n_null, n_seen=n_seen, R=R, beta=beta, b0=b0,
                 rss0=rss0, XR=Xn @ R, y_b0=rot.yt[nz] - Xn @ b0)


def _cholesky(A: np.ndarray) -> np.ndarray | None:
    if A.shape[0] == 0:
        return A
    try:
        return la.cholesky(A, lower=True, check_finite=False)
    except la.LinAlgError:
        return None


def _solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    if L.shape[0] == 0 or B.size == 0:
        return np.zeros((L.shape[0],) + B.shape[1:])
    return la.cho_solve((L, True), B, check_finite=False)


def _logdet(L: np.ndarray) -> float:
    return 2.0 * float(np.sum(np.log(np.diag(L))))


@dataclass(frozen=True, eq=False)
class _Core:
    """GLS at V = s_u ZKZ' + s_e I, for every s_e >= 0 where the REML likelihood is finite."""

    w: np.ndarray  # 1 / v, v = s_u delta_i + s_e, in the directions with delta_i != 0
    b: np.ndarray  # the GLS estimate
    res: np.ndarray  # y~ - X~ b in those directions
    tau: np.ndarray  # (n_seen,) R_1'(b - b0) / s_e: what the null directions leave of b, finite
    S: float  # (y - X b)' V^-1 (y - X b)
    logdet: float  # log|V| + log|X'V^-1 X|
    Omega: np.ndarray  # (X'V^-1 X)^-1 in the basis R (p, p); 0 in the block R_1 at s_e = 0
    Xi: np.ndarray  # (n_seen, n_seen) (diag(beta)^-1 - Omega_11 / s_e) / s_e
    Phi: np.ndarray  # (p, n_seen) Omega[:, :n_seen] / s_e


def _core(rot: Rotated, s_u: float, s_e: float) -> _Core | None:
    nb = rot.null
    k, p = nb.n_seen, rot.p  # the first k coordinates of the basis R are those X_0 sees
    v = s_u * nb.lam + s_e
    if np.any(v <= 0) or s_e < 0 or (nb.n_null > k and s_e <= 0):
        return None  # V (at s_e = 0: the contrasts' covariance) is singular here
    w = 1.0 / v
    XRw = nb.XR * w[:, None]
    A, a = XRw.T @ nb.XR, XRw.T @ nb.y_b0  # in the basis R, a = X~'diag(w)(y~ - X~ b0)
    A11, A12, A22 = A[:k, :k], A[:k, k:], A[k:, k:]
    LE = _cholesky(s_e * A11 + np.diag(nb.beta))
    if LE is None:
        return None
    EA, Ea = _solve(LE, A12), _solve(LE, a[:k])
    LS = _cholesky(A22 - s_e * (A12.T @ EA))
    if LS is None:
        return None
    d2 = _solve(LS, a[k:] - s_e * (A12.T @ Ea))
    tau = Ea - EA @ d2
    delta = np.concatenate([s_e * tau, d2])  # b - b0 in the basis R
    res = nb.y_b0 - nb.XR @ delta
    S = float(np.sum(w * res**2)) + s_e * float(tau @ (nb.beta * tau))
    logdet = float(np.sum(np.log(v))) + _logdet(LE) + _logdet(LS)
    if nb.n_null > k:
        S += nb.rss0 / s_e
        logdet += (nb.n_null - k) * np.log(s_e)
    E_inv, S_inv = _solve(LE, np.eye(k)), _solve(LS, np.eye(p - k))
    ESE = EA @ S_inv @ EA.T
    Omega = np.empty((p, p))
    Omega[:k, :k] = s_e * E_inv + s_e**2 * ESE
    Omega[:k, k:] = -s_e * (EA @ S_inv)
    Omega[k:, :k] = Omega[:k, k:].T
    Omega[k:, k:] = S_inv
    Xi = (A11 / nb.beta[:, None]) @ E_inv - ESE
    Phi = np.vstack([E_inv + s_e * ESE, -(S_inv @ EA.T)])
    return _Core(w=w, b=nb.b0 + nb.R @ delta, res=res, tau=tau, S=S, logdet=logdet, Omega=Omega,
                 Xi=Xi, Phi=Phi)


def profile_loglik(rot: Rotated, eta: float) -> float:
    """REML log-likelihood at eta with sigma2 profiled out (lme4's convention, chapter 2).

    loglik = -1/2 [ (n-n_b) log 2pi + log|V| + log|X'V^-1 X| + y_c'V^-1 y_c ]
    at sigma2 = S / (n - n_b); at eta = 1 the limit, finite when n_seen = n_null (module docstring).
    """
    st = _core(rot, eta, 1.0 - eta)
    if st is None:
        return -np.inf
    dof = rot.n - rot.p
    if st.S <= 0:
        return np.inf if dof > 0 else -np.inf
    return -0.5 * (dof * (LOG_2PI + 1.0 + np.log(st.S / dof)) + st.logdet)


def profile_score(rot: Rotated, eta: float) -> float:
    """Derivative of :func:`profile_loglik` with respect to eta.

    With Psi' = dPsi/deta = diag(delta - 1): d log|Psi| = tr(Psi^-1 Psi'),
    d log|X'Psi^-1 X| = -tr((X'Psi^-1 X)^-1 X'Psi^-1 Psi'Psi^-1 X), and
    dS = -y_c'Psi^-1 Psi'Psi^-1 y_c at the GLS b (b's own change does not count: S is minimal in
    b). The null directions (psi = 1 - eta) add -(n_null - n_seen) / (1 - eta) - tr(Xi diag(beta))
    to the log-determinants and tau'diag(beta) tau + |y_0 - X_0 b0|^2 / (1 - eta)^2 to dS, all
    finite at eta = 1 when n_seen = n_null.
    """
    st = _core(rot, eta, 1.0 - eta)
    if st is None:
        return np.nan
    nb, dof, s_e = rot.null, rot.n - rot.p, 1.0 - eta
    dd = nb.lam - 1.0
    wd = dd * st.w
    dA = -(nb.XR * (wd * st.w)[:, None]).T @ nb.XR  # dA/deta in the basis R
    dlogdet = float(np.sum(wd)) + float(np.sum(st.Omega * dA)) - float(np.diag(st.Xi) @ nb.beta)
    dS = -float(np.sum(dd * (st.w * st.res) ** 2)) + float(st.tau @ (nb.beta * st.tau))
    if nb.n_null > nb.n_seen:
        dlogdet -= (nb.n_null - nb.n_seen) / s_e
        dS += nb.rss0 / s_e**2
    return -0.5 * (dof * dS / st.S + dlogdet)


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

    A grid of 97 values log-spaced in the variance ratio, four more ever closer to eta = 1 and
    both endpoints finds every local maximum that is not narrower than a grid step; each interior
    one is refined by Brent's method on a sign change of the analytic score (to |deta| < 1e-14),
    and the best is kept.

    The end eta = 1 (sigma2_e = 0) is a candidate like eta = 0 wherever the likelihood is finite
    there, also with a singular ZKZ' (n_seen = n_null, module docstring). When it wins, the
    estimate is sigma2_e = 0 exactly, ``boundary`` says so, and ``loglik`` is the likelihood at
    eta = 1, i.e. the limit. That value, and not one at a point short of 1, is the right one to
    report: it is the maximum over the closed parameter space, which a likelihood-ratio test or
    an information criterion compares; it is an ordinary value of the error contrasts' likelihood
    (their covariance is positive definite there), not an extrapolation; and a point short of 1
    would lie below it by an amount set by where a search stopped - which is how two rotations of
    one model (eigendecomposition and thin SVD, or G formed in two ways) came to disagree.
    """
    if rot.n - rot.p <= 0:
        raise ValueError("no degrees of freedom left for REML")
    # points ever closer to eta = 1 bracket a maximum that approaches sigma2_e = 0
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
    st = _core(rot, eta, 1.0 - eta)
    sigma2 = st.S / (rot.n - rot.p)
    boundary = "sigma2_u = 0" if eta == 0.0 else ("sigma2_e = 0" if eta == 1.0 else None)
    return SpectralFit(sigma2_u=eta * sigma2, sigma2_e=(1.0 - eta) * sigma2, eta=eta,
                       loglik=float(loglik), b=st.b, n_eval=n_eval, boundary=boundary)


def _core_at(rot: Rotated, sigma2_u: float, sigma2_e: float) -> _Core:
    st = _core(rot, sigma2_u, sigma2_e)
    if st is None:
        raise ValueError("V is not positive definite at these variances")
    return st


def gls_at(rot: Rotated, sigma2_u: float, sigma2_e: float) -> tuple[np.ndarray, float]:
    """The GLS b and the REML log-likelihood (lme4's convention) at given variances.

    At sigma2_e = 0 with a singular ZKZ' (n_seen = n_null) both are the limits; b is then the BLUE
    under the singular V (the solution of the bordered system [[V, X], [X', 0]]).
    """
    st = _core_at(rot, sigma2_u, sigma2_e)
    return st.b, -0.5 * ((rot.n - rot.p) * LOG_2PI + st.logdet + st.S)


def v_inverse_residual(rot: Rotated, sigma2_u: float, sigma2_e: float, b: np.ndarray) -> np.ndarray:
    """V^-1 (y - X b) in the original (observed-record) coordinates, b the GLS estimate.

    This is P y, which has a limit at sigma2_e = 0 also where V is singular (n_seen = n_null). In
    the directions with delta_i != 0 it is formed from the given b; in the null directions the
    residual is of the order of sigma2_e and comes from the GLS solution (tau), never from
    y - X b divided by sigma2_e.
    """
    st = _core_at(rot, sigma2_u, sigma2_e)
    nb = rot.null
    r = rot.y - rot.X @ b
    rt = rot.U.T @ r
    zero = ~nb.nz
    R1tau = nb.R[:, :nb.n_seen] @ st.tau  # (b - b0) / sigma2_e in what the null directions see
    out_t = np.empty(len(rot.lam))
    out_t[nb.nz] = rt[nb.nz] * st.w
    out_t[zero] = -(rot.Xt[zero] @ R1tau)
    if nb.n_null > nb.n_seen:
        out_t[zero] += (rot.yt[zero] - rot.Xt[zero] @ nb.b0) / sigma2_e
    out = rot.U @ out_t
    if rot.n0:  # the directions outside U: y - X b0 and X minus their projections on U
        x0 = rot.X @ R1tau
        out -= x0 - rot.U @ (rot.U.T @ x0)
        if nb.n_null > nb.n_seen:
            r0 = rot.y - rot.X @ nb.b0
            out += (r0 - rot.U @ (rot.U.T @ r0)) / sigma2_e
    return out


def fixed_effect_covariance(rot: Rotated, sigma2_u: float, sigma2_e: float) -> np.ndarray:
    """(X'V^-1 X)^-1 (p, p), the sampling covariance of the GLS b.

    At sigma2_e = 0 with n_seen = n_null it is the limit, and singular: the combinations R_1'b that
    the null directions of ZKZ' determine exactly have variance 0.
    """
    st = _core_at(rot, sigma2_u, sigma2_e)
    R = rot.null.R
    return R @ st.Omega @ R.T


def p_quadratic(rot: Rotated, sigma2_u: float, sigma2_e: float, B: np.ndarray) -> np.ndarray:
    """diag(B U'PU B') for B (m, r) in the rotated basis, P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1.

    For PEVs: with B = G_ao U it is diag(G_ao P G_oa), and
    PEV = sigma2_u diag(G) - sigma2_u^2 diag(G_ao P G_oa). Finite at sigma2_e = 0 when
    n_seen = n_null. Needs every direction in U (an eigendecomposition, not a thin factor).
    """
    if rot.n0:
        raise ValueError("p_quadratic needs the full eigenbasis (no thin factor)")
    st = _core_at(rot, sigma2_u, sigma2_e)
    nb = rot.null
    Bn, B0 = B[:, nb.nz], B[:, ~nb.nz]
    F = (Bn * st.w) @ nb.XR
    quad = (Bn**2) @ st.w - np.einsum("ij,jk,ik->i", F, st.Omega, F)
    BXR = B0 @ (rot.Xt[~nb.nz] @ nb.R[:, :nb.n_seen])  # B_0 X_0 R_1
    quad += (np.einsum("ij,jk,ik->i", BXR, st.Xi, BXR)
             - 2.0 * np.einsum("ij,ij->i", F @ st.Phi, BXR))
    if nb.n_null > nb.n_seen:  # B_0 (I - X_0 R_1 diag(beta)^-1 R_1'X_0') B_0' / sigma2_e
        quad += (np.sum(B0**2, axis=1) - (BXR**2) @ (1.0 / nb.beta)) / sigma2_e
    return quad


def information(rot: Rotated, sigma2_u: float, sigma2_e: float) -> np.ndarray:
    """Expected (Fisher) information of REML for (sigma2_u, sigma2_e): I_st = tr(P V_s P V_t) / 2.

    In the rotated basis V_u = ZKZ' = diag(delta) and V_e = I. In the directions with
    delta_i != 0, V = diag(v) and, with w = 1 / v and T = X~ R there,
    P = diag(w) - diag(w) T Omega T'diag(w), so for diagonal A and B
    tr(PAPB) = sum(a b w^2) - 2 tr(Omega T'diag(a b w^3) T)
    + tr(Omega T'diag(a w^2) T Omega T'diag(b w^2) T). The null directions (a_u = 0, a_e = 1)
    add their blocks of P, -diag(w) T Phi R_1'X_0' and
    (I - X_0 R_1 diag(beta)^-1 R_1'X_0') / sigma2_e + X_0 R_1 Xi R_1'X_0', which need X_0 only
    through X_0'X_0; all of it is finite at sigma2_e = 0 when n_seen = n_null.
    """
    st = _core_at(rot, sigma2_u, sigma2_e)
    nb, w = rot.null, st.w
    parts = ((nb.lam, 0.0), (np.ones_like(nb.lam), 1.0))  # (V_s where delta_i != 0, in the null)

    def cross(weights):
        return (nb.XR * weights[:, None]).T @ nb.XR

    PbP = st.Phi @ (nb.beta[:, None] * st.Phi.T)
    half = [st.Omega @ cross(a * w**2) for a, _ in parts]
    Xib = st.Xi * nb.beta
    zz = float(np.sum(Xib * Xib.T))  # tr(Xi diag(beta) Xi diag(beta))
    if nb.n_null > nb.n_seen:
        zz += (nb.n_null - nb.n_seen) / sigma2_e**2
    info = np.empty((2, 2))
    for i, (a, a0) in enumerate(parts):
        for j, (b, b0) in enumerate(parts):
            term = float(np.sum(a * b * w**2)) - 2.0 * float(np.sum(st.Omega * cross(a * b * w**3)))
            term += float(np.sum(half[i] * half[j].T))
            term += a0 * float(np.sum(PbP * cross(b * w**2)))
            term += b0 * float(np.sum(PbP * cross(a * w**2)))
            info[i, j] = 0.5 * (term + a0 * b0 * zz)
    return info
