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


def vanraden_G(M, p=None):
    """G = (M - 2p)(M - 2p)' / (2 sum p (1 - p)), VanRaden's (2008) first method (chapter 5), with
    the allele frequencies p of M's rows unless given; complete 0/1/2 genotypes."""
    M = np.asarray(M, dtype=float)
    p = M.mean(axis=0) / 2 if p is None else np.asarray(p, dtype=float)
    W = M - 2 * p
    return W @ W.T / (2 * np.sum(p * (1 - p)))


def tuned_G(G, A22, blend=0.0, tune=True):
    """G_t = a + b G_b with G_b = (1 - blend) G + blend A22 and (a, b) solving the two defining
    equations mean diag(G_t) = mean diag(A22) and mean(G_t) = mean(A22) (Chen et al. 2011);
    a = 0, b = 1 without tuning. Returns G_t, a, b."""
    G_b = (1 - blend) * np.asarray(G, dtype=float) + blend * np.asarray(A22, dtype=float)
    if not tune:
        return G_b, 0.0, 1.0
    lhs = np.array([[1.0, np.mean(np.diag(G_b))], [1.0, np.mean(G_b)]])
    a, b = np.linalg.solve(lhs, [np.mean(np.diag(A22)), np.mean(A22)])
    return a + b * G_b, a, b


def single_step_H(A, g, G):
    """H of Legarra et al. (2009) over all animals, in A's order: g the rows of the genotyped
    animals, G their genomic relationships (in the order of g), 1 the others:
    H11 = A11 + A12 A22^-1 (G - A22) A22^-1 A21, H12 = A12 A22^-1 G, H22 = G."""
    A = np.asarray(A, dtype=float)
    g = np.asarray(g)
    o = np.setdiff1d(np.arange(len(A)), g)
    A11, A12, A22 = A[np.ix_(o, o)], A[np.ix_(o, g)], A[np.ix_(g, g)]
    A22_inv = np.linalg.inv(A22)
    H = np.empty_like(A)
    H[np.ix_(o, o)] = A11 + A12 @ A22_inv @ (G - A22) @ A22_inv @ A12.T
    H[np.ix_(o, g)] = A12 @ A22_inv @ G
    H[np.ix_(g, o)] = G @ A22_inv @ A12.T
    H[np.ix_(g, g)] = G
    return H


def apy_inverse_dense(G, core):
    """The APY inverse of Misztal et al. (2014) from its block formula, in G's order: with c the
    core rows and n the others, M_nn = diag(g_ii - g_ic G_cc^-1 g_ci),
    G_APY^-1 = [[G_cc^-1 + G_cc^-1 G_cn M_nn^-1 G_nc G_cc^-1, -G_cc^-1 G_cn M_nn^-1],
                [-M_nn^-1 G_nc G_cc^-1, M_nn^-1]].
    Returns the inverse and diag(M_nn) (non-core animals in G's order)."""
    G = np.asarray(G, dtype=float)
    c = np.asarray(core)
    n = np.setdiff1d(np.arange(len(G)), c)
    G_cc_inv = np.linalg.inv(G[np.ix_(c, c)])
    G_cn = G[np.ix_(c, n)]
    m = np.diag(G)[n] - np.diag(G_cn.T @ G_cc_inv @ G_cn)
    M_inv = np.diag(1 / m)
    out = np.empty_like(G)
    out[np.ix_(c, c)] = G_cc_inv + G_cc_inv @ G_cn @ M_inv @ G_cn.T @ G_cc_inv
    out[np.ix_(c, n)] = -G_cc_inv @ G_cn @ M_inv
    out[np.ix_(n, c)] = out[np.ix_(c, n)].T
    out[np.ix_(n, n)] = M_inv
    return out, m
