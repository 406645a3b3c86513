"""Several traits on one relationship matrix: the rotation by the eigenvectors of G that makes
records independent (chapter 11, private).

With the same X for every trait and every trait recorded on every record, the records of t traits
have Var(vec Y) = G0 kron G + R0 kron I. One eigendecomposition G = U diag(s) U' rotates the
records, Y* = U'Y and X* = U'X, into n independent rows: row i has covariance

    V_i = s_i G0 + R0      (t x t).

Every quantity REML needs is then a sum over i of t x t terms (as in MTG2),
so an iteration costs O(n t^3 + n t^2 p^2) after the one O(n^3) eigendecomposition. Unlike
Meyer's canonical transformation (one matrix Q with Q R0 Q' = I and Q G0 Q' diagonal, which
turns t correlated traits into t uncorrelated ones but depends on G0 and R0), this rotation does
not depend on the variances, so it is done once for all REML iterations. The records are
stacked record by record (row i's t values together); b holds the fixed effects trait by trait.

:class:`State` has the interface of the dense :class:`lmmbook.reml._VState`, so the AI and EM
iterations of :mod:`lmmbook.reml` run on it unchanged: H_s = dV/d theta_s is c_is E_s on row i,
with c_is = s_i for an element of G0 and 1 for one of R0, and E_s the symmetric unit matrix of the
element's pair of traits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la

from . import _spectral, model

__all__ = ["Rotated", "State", "rotate"]


@dataclass(frozen=True, eq=False)
class Rotated:
    """Records, design and eigenpairs of G after the rotation by U' (rows independent)."""

    U: np.ndarray
    s: np.ndarray
    Y: np.ndarray
    X: np.ndarray

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    @property
    def t(self) -> int:
        return self.Y.shape[1]

    @property
    def p(self) -> int:
        return self.X.shape[1]


def rotate(Y: np.ndarray, X: np.ndarray, G: np.ndarray) -> Rotated:
    """Eigendecomposition of G (records with data, every trait observed) and the rotated data."""
    s, U = la.eigh(G, check_finite=False)
    return Rotated(U, s, U.T @ Y, U.T @ X)


def _units(t: int) -> np.ndarray:
    """E_s for each element (a, b) of a (t, t) covariance matrix, in vech order."""
    pairs = model.lower_pairs(t)
    E = np.zeros((len(pairs), t, t))
    for j, (a, b) in enumerate(pairs):
        E[j, a, b] = E[j, b, a] = 1.0
    return E


class State:
    """V, P y and the REML log-likelihood of the rotated records at theta = (vech G0, vech R0)."""

    def __init__(self, rot: Rotated, theta: np.ndarray):
        self.rot, self.theta = rot, np.asarray(theta, dtype=float)
        n, t, p = rot.n, rot.t, rot.p
        m = t * (t + 1) // 2
        self.G0 = model.unvech(self.theta[:m], t)
        self.R0 = model.unvech(self.theta[m:], t)
        V = rot.s[:, None, None] * self.G0 + self.R0
        L = np.linalg.cholesky(V)  # LinAlgError when V is not positive definite, as for _VState
        logdet_V = 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)))
        self.W = np.linalg.inv(V)
        self.W = (self.W + np.swapaxes(self.W, 1, 2)) / 2
        X, Y = rot.X, rot.Y
        XtWX = np.einsum("iab,ij,il->ajbl", self.W, X, X, optimize=True).reshape(t * p, t * p)
        XtWy = np.einsum("iab,ib,ij->aj", self.W, Y, X, optimize=True).reshape(t * p)
        if p:
            c = la.cho_factor(XtWX, lower=True, check_finite=False)
            self.XtVinvX_inv = la.cho_solve(c, np.eye(t * p), check_finite=False)
            logdet_M = 2.0 * np.sum(np.log(np.diag(c[0])))
        else:
            self.XtVinvX_inv, logdet_M = np.zeros((0, 0)), 0.0
        self.b = self.XtVinvX_inv @ XtWy  # trait by trait
        R = Y - X @ self.b.reshape(t, p).T
        self.PY = np.einsum("iab,ib->ia", self.W, R)  # P y, row by row
        self.Py = self.PY.ravel()
        self.loglik = -0.5 * ((n * t - t * p) * _spectral.LOG_2PI + logdet_V + logdet_M
                              + float(np.sum(R * self.PY)))
        self._E = _units(t)
        self._c = np.concatenate([np.repeat(rot.s[:, None], m, axis=1), np.ones((n, m))],
                                 axis=1)  # c_is: s_i for G0's elements, 1 for R0's

    def at(self, theta) -> State:
        return State(self.rot, theta)

    @property
    def _E_all(self) -> np.ndarray:
        return np.concatenate([self._E, self._E])

    def _Q_parts(self):
        """F_is = W_i E_s W_i and A_s = X' W H_s W X (t p x t p) for every parameter."""
        X = self.rot.X
        F = np.einsum("iac,scd,idb->isab", self.W, self._E_all, self.W, optimize=True)
        t, p = self.rot.t, self.rot.p
        A = np.einsum("is,isab,ij,il->sajbl", self._c, F, X, X, optimize=True)
        A = A.reshape(len(self._c[0]), t * p, t * p)
        return F, A

    def score_parts(self):
        """tr(P H_s), y'P H_s P y and H_s P y for each parameter, as :class:`_VState`'s."""
        E = self._E_all
        F, A = self._Q_parts()
        traces = (np.einsum("is,iab,sba->s", self._c, self.W, E)
                  - np.einsum("xy,syx->s", self.XtVinvX_inv, A))
        quads = np.einsum("is,ia,sab,ib->s", self._c, self.PY, E, self.PY, optimize=True)
        HPy = np.einsum("is,sab,ib->ias", self._c, E, self.PY).reshape(-1, len(E))
        return traces, quads, [HPy[:, j] for j in range(len(E))]

    def p_times(self, M: np.ndarray) -> np.ndarray:
        """P M for a (n t, k) matrix in the stacked rotated order."""
        n, t, p = self.rot.n, self.rot.t, self.rot.p
        X = self.rot.X
        M3 = M.reshape(n, t, -1)
        WM = np.einsum("iab,ibk->iak", self.W, M3)
        if p:
            XtWM = np.einsum("ij,iak->ajk", X, WM).reshape(t * p, -1)
            C = (self.XtVinvX_inv @ XtWM).reshape(t, p, -1)
            WM = WM - np.einsum("iab,ij,bjk->iak", self.W, X, C, optimize=True)
        return WM.reshape(n * t, -1)

    def information(self) -> np.ndarray:
        """The expected information 1/2 tr(P H_s P H_t) without forming P (n t x n t): with
        Q = W X M X' W, tr(P H_s P H_t) = tr(W H_s W H_t) - 2 tr(Q H_s W H_t) + tr(M A_s M A_t),
        and only Q's diagonal blocks D_i = W_i B_i W_i, B_i = X_i M X_i', enter the middle term."""
        E, c, X = self._E_all, self._c, self.rot.X
        t, p = self.rot.t, self.rot.p
        F, A = self._Q_parts()
        T1 = np.einsum("is,it,isab,tba->st", c, c, F, E, optimize=True)
        if p:
            M4 = self.XtVinvX_inv.reshape(t, p, t, p)
            B = np.einsum("ij,ajbl,il->iab", X, M4, X, optimize=True)
            D = np.einsum("iac,icd,idb->iab", self.W, B, self.W)
            DE = np.einsum("iac,scb->isab", D, E)
            WE = np.einsum("iac,scb->isab", self.W, E)
            T2 = np.einsum("is,it,isab,itba->st", c, c, DE, WE, optimize=True)
            MA = np.einsum("xy,syz->sxz", self.XtVinvX_inv, A)
            T3 = np.einsum("sxz,tzx->st", MA, MA)
        else:
            T2 = T3 = 0.0
        return 0.5 * (T1 - 2 * T2 + T3)

    def blup(self, G_ao_U: np.ndarray) -> np.ndarray:
        """u = (G0 kron G_ao) P y as an (n_all, t) array, from B = G_ao U (= U diag(s) when every
        row of G has records)."""
        return G_ao_U @ self.PY @ self.G0

    def pev(self, G_ao_U: np.ndarray, G_diag: np.ndarray) -> np.ndarray:
        """diag(G0 kron G - (G0 kron G_ao) P (G0 kron G_oa)) as an (n_all, t) array: with
        g_ja the row of animal j, trait a, in the rotated coordinates (B_ji G0[a, :] on row i),
        g'Wg = sum_i B_ji^2 (G0 W_i G0)_aa and g'Qg = h' M h with h = X'W g."""
        B, X, G0 = G_ao_U, self.rot.X, self.G0
        t, p = self.rot.t, self.rot.p
        GWG = np.einsum("ab,ibc,cd->iad", G0, self.W, G0)
        quad = (B**2) @ np.diagonal(GWG, axis1=1, axis2=2)
        if p:
            WG = np.einsum("iab,bc->iac", self.W, G0)  # (W_i G0)[b, a]
            T = np.einsum("il,iba->iabl", X, WG)  # row i's part of h_ja, indexed (a, b, l)
            h = (B @ T.reshape(len(T), -1)).reshape(len(B), t, t * p)
            quad = quad - np.einsum("jax,xy,jay->ja", h, self.XtVinvX_inv, h, optimize=True)
        return np.outer(G_diag, np.diag(G0)) - quad
