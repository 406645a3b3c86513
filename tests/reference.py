"""Slow, dense, textbook formulas used as references by the tests.

Written straight from the book's equations with explicit inverses, independently of lmmbook's
code paths, so that agreement means something.
"""

import numpy as np


def gls_blup(y, X, Z, K, sigma2_u, sigma2_e):
    """BLUE by GLS and BLUP from the V form (chapter 1, eq-gls and eq-blup); records with NaN y
    are dropped before V is formed.

    Returns b, u and the prediction error variance Var(u - u_hat) computed from its definition
    as Var(u) - Var(u_hat) with the correction for estimating b:
    PEV = sigma2_u K - sigma2_u^2 K Z' P Z K, with P = V^-1 - V^-1 X (X'V^-1 X)^-1 X' V^-1.
    """
    y, X, Z, K = (np.asarray(a, dtype=float) for a in (y, X, Z, K))
    obs = np.isfinite(y)
    y, X, Z = y[obs], X[obs], Z[obs]
    V = sigma2_u * Z @ K @ Z.T + sigma2_e * np.eye(len(y))
    V_inv = np.linalg.inv(V)
    XtVinvX_inv = np.linalg.inv(X.T @ V_inv @ X)
    b = XtVinvX_inv @ X.T @ V_inv @ y
    u = sigma2_u * K @ Z.T @ V_inv @ (y - X @ b)
    P = V_inv - V_inv @ X @ XtVinvX_inv @ X.T @ V_inv
    pev = np.diag(sigma2_u * K - sigma2_u**2 * K @ Z.T @ P @ Z @ K)
    return b, u, pev


def tabular_A(sire, dam):
    """Numerator relationship matrix by the tabular method; parents coded 1..n, 0 = unknown,
    parents listed before their offspring."""
    n = len(sire)
    A = np.zeros((n, n))
    for i in range(n):
        s, d = sire[i] - 1, dam[i] - 1
        for j in range(i):
            A[i, j] = A[j, i] = 0.5 * ((A[j, s] if s >= 0 else 0.0) + (A[j, d] if d >= 0 else 0.0))
        A[i, i] = 1.0 + (0.5 * A[s, d] if s >= 0 and d >= 0 else 0.0)
    return A


def reml_loglik(y, X, Hs, theta):
    """REML log-likelihood written out naively with inv(V) (lme4's convention, chapter 2):
    -1/2 [(n-p) log 2pi + log|V| + log|X'V^-1 X| + r'V^-1 r], r = y - X b_GLS.
    Hs are the n x n matrices H_k = Z_k K_k Z_k'; theta the variances, residual last."""
    n, p = X.shape
    V = sum(t * H for t, H in zip(theta[:-1], Hs, strict=True)) + theta[-1] * np.eye(n)
    V_inv = np.linalg.inv(V)
    XtVinvX = X.T @ V_inv @ X
    b = np.linalg.solve(XtVinvX, X.T @ V_inv @ y)
    r = y - X @ b
    return -0.5 * ((n - p) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1]
                   + np.linalg.slogdet(XtVinvX)[1] + r @ V_inv @ r)


def reml_score_and_information(y, X, Hs, theta):
    """Score -1/2 [tr(P H_k) - y'P H_k P y] and expected information 1/2 tr(P H_k P H_l), with the
    residual as the last component (H = I), all from explicit n x n matrices."""
    n = len(y)
    Hs = list(Hs) + [np.eye(n)]
    V = sum(t * H for t, H in zip(theta, Hs, strict=True))
    V_inv = np.linalg.inv(V)
    P = V_inv - V_inv @ X @ np.linalg.inv(X.T @ V_inv @ X) @ X.T @ V_inv
    score = np.array([-0.5 * (np.trace(P @ H) - y @ P @ H @ P @ y) for H in Hs])
    info = np.array([[0.5 * np.trace(P @ A @ P @ B) for B in Hs] for A in Hs])
    return score, info


def gls_blup_general(y, X, designs, G, sigma2_e):
    """BLUE and BLUP of a model with several (correlated) random effects, from the V form:
    W = [Z_1 ... Z_m] all designs side by side, G = Var(u) for the stacked u (a dense
    block matrix, G0 kron K per entry), V = W G W' + sigma2_e I.

    Returns b, u (stacked) and PEV = diag(G - G W' P W G)."""
    y, X = np.asarray(y, dtype=float), np.asarray(X, dtype=float)
    W = np.hstack([np.asarray(Z, dtype=float) for Z in designs])
    obs = np.isfinite(y)
    y, X, W = y[obs], X[obs], W[obs]
    V = W @ G @ W.T + sigma2_e * np.eye(len(y))
    V_inv = np.linalg.inv(V)
    XtVinvX_inv = np.linalg.inv(X.T @ V_inv @ X)
    b = XtVinvX_inv @ X.T @ V_inv @ y
    P = V_inv - V_inv @ X @ XtVinvX_inv @ X.T @ V_inv
    u = G @ W.T @ V_inv @ (y - X @ b)
    pev = np.diag(G - G @ W.T @ P @ W @ G)
    return b, u, pev
