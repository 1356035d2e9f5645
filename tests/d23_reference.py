"""An independent reference for Dang 2023's imbalanced deep linear geometry, sharing no code
with nc_repro/theory.py: per class, a direct numerical minimisation of the paper's objective

    (1/2N) ||W_M ... W_1 H - Y||_F^2 + (lambda_W/2) sum_l ||W_l||_F^2 + (lambda_H/2) ||H||_F^2

restricted to the theorem's structure (every layer has singular value s on class k's axis, every
feature of class k equals a e_k). Class k's share of the objective is then

    n_k (s^M a - 1)^2 / (2N) + lambda_W M s^2 / 2 + lambda_H n_k a^2 / 2,

written out below and minimised over s, a >= 0 on a grid and then locally (scipy), with the
collapsed point s = a = 0 as a candidate; the smallest value wins. No closed form (no b, no
root, no threshold) is used. That this structure holds at the global minimiser is checked
against a free minimisation over all of W_1..W_M, H in tests/test_d23_global_minimiser.py.

``class_geometry`` returns, per class, ||w_k||^2 = s^{2M} (diag of W W^T for W = W_M...W_1),
||h_k||^2 = a^2 (diag of the class-mean Gram) and w_k . h_k = s^M a (diag of W H)."""
import numpy as np
from scipy.optimize import minimize


def class_share(s, a, n_k, N, depth, lambda_W, lambda_H):
    """Class k's share of the objective on the structure (see the module docstring)."""
    return (n_k * (s ** depth * a - 1) ** 2 / (2 * N) + lambda_W * depth * s ** 2 / 2
            + lambda_H * n_k * a ** 2 / 2)


def minimise_class(n_k, N, depth, lambda_W, lambda_H, points=600):
    """(s, a) minimising class_share over s, a >= 0. Any point with a smaller share than the
    collapsed one (share n_k/(2N)) has lambda_W M s^2/2 and lambda_H n_k a^2/2 below n_k/(2N),
    which bounds the grid."""
    s_max = np.sqrt(n_k / (N * lambda_W * depth))
    a_max = np.sqrt(1 / (N * lambda_H))
    s_grid, a_grid = np.meshgrid(np.linspace(0, s_max, points), np.linspace(0, a_max, points), indexing='ij')
    values = class_share(s_grid, a_grid, n_k, N, depth, lambda_W, lambda_H)
    i, j = np.unravel_index(np.argmin(values), values.shape)

    def share(point):
        s, a = np.abs(point)                       # the share is minimised over s, a >= 0
        return class_share(s, a, n_k, N, depth, lambda_W, lambda_H)

    candidates = [np.zeros(2)]
    for start in ([s_grid[i, j], a_grid[i, j]], [s_max / 2, a_max / 2]):
        result = minimize(share, start, method='Nelder-Mead',
                          options={'xatol': 1e-14, 'fatol': 1e-18, 'maxiter': 20000, 'maxfev': 40000})
        candidates.append(np.abs(result.x))
    best = min(candidates, key=share)
    return float(best[0]), float(best[1])


def class_geometry(counts, depth, lambda_W, lambda_H):
    """{'WWT', 'HTH', 'WH'}: (K,) diagonals of W W^T, the class-mean Gram and W H at the
    minimiser, plus 's' and 'a' (K,), from minimise_class (one minimisation per distinct count)."""
    counts = np.asarray(counts, dtype=float)
    N = counts.sum()
    by_count = {n: minimise_class(n, N, depth, lambda_W, lambda_H) for n in np.unique(counts)}
    s = np.array([by_count[n][0] for n in counts])
    a = np.array([by_count[n][1] for n in counts])
    return {'s': s, 'a': a, 'WWT': s ** (2 * depth), 'HTH': a ** 2, 'WH': s ** depth * a}
