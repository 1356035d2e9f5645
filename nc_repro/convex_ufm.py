"""The convex unconstrained-feature program of Hong & Ling 2023 and checks of its collapse structure.

Hong & Ling 2023, "Neural Collapse for Unconstrained Feature Model under Cross-entropy Loss with
Imbalanced Data" (arXiv 2309.09725); the original solves it in ``ana_utils.solve_cvx``:

    minimise_{Z, b}  (1/N) sum_k n_k [ logsumexp_j(Z[j,k] + b_j) - (Z[k,k] + b_k) ]
                     + l ||Z D||_*  +  l_2 ||b||_2^2,        D = diag(sqrt(n_1), ..., sqrt(n_K)),

where column k of Z (K x K) is the logit vector shared by every sample of class k, l the
nuclear-norm level (2 sqrt(lambda_W lambda_H) of the UFM) and l_2 the bias ridge.

The original ran ``prob.solve()`` with no options under cvxpy 1.3.2, which means SCS with
eps_abs = eps_rel = 1e-5 (the tolerances cvxpy 1.3.2 passes to SCS); that is our default. Any installed cvxpy solver that
handles exponential and PSD cones may be chosen instead (not in the reference).

Predicted structure (docs/papers.md, Hong & Ling 2023; formulas in theory.py): the columns of the classes sharing a
count n_c coincide iff l >= sqrt(n_c)/N, and Z = 0 iff l >= sigma_max(G_0), which theory.py gives
as sqrt(n_max)/N. ``total_collapse_level`` computes sigma_max(G_0) itself, so the two can be compared.
No torch here: opt_main.py needs numpy, scipy (through cvxpy) and cvxpy only.
"""
import warnings

import cvxpy as cp
import numpy as np

from nc_repro.fileio import atomic_write

FAITHFUL_SOLVER = 'SCS'
FAITHFUL_EPS = 1e-5          # eps_abs = eps_rel that cvxpy 1.3.2 (and 1.9) hands to SCS (Hong pins cvxpy 1.3.2)
STRUCTURE_TOL = 1e-3         # logits closer than this count as equal (solver error is ~1e-5 or less)
# The solver options that ``eps`` sets, for the solvers whose options we know.
TOLERANCE_OPTIONS = {
    'SCS': ('eps_abs', 'eps_rel'),
    'CLARABEL': ('tol_gap_abs', 'tol_gap_rel', 'tol_feas'),
}
OPTIMAL = ('optimal', 'optimal_inaccurate')


# ----------------------------------------------------------------------------------------
# Input checks

def check_counts(counts):
    """counts as a float64 array (K,), or a ValueError naming what is wrong."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError('counts must list at least 2 classes (got %s)' % (counts.tolist(),))
    if not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError('every class count must be positive (got %s)' % (counts.tolist(),))
    return counts


def class_counts(cluster_sizes, samples_per_class):
    """opt_main's n_list: entry i of samples_per_class repeated cluster_sizes[i] times, in order
    (as Hong's opt_main.py); e.g. [3,3,4] x [5000,4000,3000] -> [5000]*3 + [4000]*3 + [3000]*4."""
    if len(cluster_sizes) != len(samples_per_class):
        raise ValueError('--cluster_s and --sample_s must have the same length (got %d and %d)'
                         % (len(cluster_sizes), len(samples_per_class)))
    if any(size < 1 for size in cluster_sizes):
        raise ValueError('--cluster_s entries must be at least 1 (got %s)' % list(cluster_sizes))
    if any(n < 1 for n in samples_per_class):
        raise ValueError('--sample_s entries must be at least 1 (got %s)' % list(samples_per_class))
    if sum(cluster_sizes) < 2:
        raise ValueError('--cluster_s must add up to at least 2 classes (got %s)' % list(cluster_sizes))
    return [n for size, n in zip(cluster_sizes, samples_per_class) for _ in range(size)]


def conic_solvers():
    """Installed cvxpy solvers able to solve the program (exponential cone + PSD cone)."""
    installed = cp.installed_solvers()
    try:
        from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC
    except ImportError:                       # a cvxpy without this table: trust the names
        return [name for name in installed if name in TOLERANCE_OPTIONS]
    able = []
    for name in installed:
        solver = SOLVER_MAP_CONIC.get(name)
        if solver is None:
            continue
        supported = {c.__name__ for c in solver.SUPPORTED_CONSTRAINTS}
        if 'ExpCone' in supported and supported & {'PSD', 'SvecPSD'}:
            able.append(name)
    return able


def check_solver(solver):
    """The upper-case solver name, or a ValueError listing the usable installed solvers."""
    name = str(solver).upper()
    usable = conic_solvers()
    if name not in usable:
        reason = ('cannot solve this program (it needs exponential and PSD cones)'
                  if name in cp.installed_solvers() else 'is not an installed cvxpy solver')
        raise ValueError('solver %s %s; use one of: %s' % (solver, reason, ', '.join(usable)))
    return name


# ----------------------------------------------------------------------------------------
# The program

def build_ufm_program(counts, reg_z, reg_b):
    """(problem, Z, b) of the convex program (docs/papers.md, Hong & Ling 2023), built from the same pieces as the original:
    log_sum_exp over the columns of Z + b 1^T, the true-class logit picked by a product with I,
    norm(Z D, 'nuc') and square(norm(b, 2))."""
    counts = check_counts(counts)
    K, N = len(counts), counts.sum()
    Z = cp.Variable((K, K))                                      # Z[j, k] = logit j of class k
    b = cp.Variable((K, 1))
    logits = Z + b @ np.ones((1, K))                             # (K, K)
    log_partition = cp.log_sum_exp(logits, axis=0)               # (K,) one per class (column)
    true_logit = cp.sum(cp.multiply(logits, np.eye(K)), axis=0)  # (K,) Z[k,k] + b_k
    cross_entropy = (counts / N) @ (log_partition - true_logit)
    D = np.diag(np.sqrt(counts))                                 # (K, K)
    objective = cross_entropy + reg_z * cp.norm(Z @ D, 'nuc') + reg_b * cp.square(cp.norm(b, 2))
    return cp.Problem(cp.Minimize(objective)), Z, b


def _solve_once(problem, solver, eps, verbose):
    options = {}
    if eps is not None:
        options = {key: eps for key in TOLERANCE_OPTIONS.get(solver, ())}
    problem.solve(solver=solver, verbose=verbose, **options)
    return problem.status


def solve_ufm_program(counts, reg_z, reg_b, solver='SCS', eps=None, verbose=False):
    """Solve the convex UFM program of Hong & Ling 2023 (docs/papers.md, Hong & Ling 2023).

    counts (K,) samples per class; reg_z = l > 0 (nuclear-norm level); reg_b = l_2 >= 0.
    solver: any installed cvxpy solver handling exponential + PSD cones (SCS, the faithful
    default, or CLARABEL, ...). eps: convergence tolerance; None gives SCS the faithful 1e-5
    and other solvers their own defaults. If a solver other than SCS fails, SCS is tried (with a
    warning): Clarabel has been seen to raise SolverError on a case SCS solved.
    Returns dict(Z (K, K) float64 with column k = logits of class k, b (K,), objective, status,
    solver = the solver that produced the answer, eps = its tolerance, None for its default).
    """
    counts = check_counts(counts)
    if not np.isfinite(reg_z) or reg_z <= 0:
        raise ValueError('reg_z (l) must be positive: with l = 0 the cross-entropy has no minimiser '
                         '(got %s)' % reg_z)
    if not np.isfinite(reg_b) or reg_b < 0:
        raise ValueError('reg_b (l_2) must be zero or positive (got %s)' % reg_b)
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise ValueError('eps must be positive (got %s)' % eps)
    solver = check_solver(solver)
    if solver == 'SCS' and eps is None:
        eps = FAITHFUL_EPS
    problem, Z, b = build_ufm_program(counts, reg_z, reg_b)
    try:
        status = _solve_once(problem, solver, eps, verbose)
        failure = None if status in OPTIMAL else 'status %s' % status
    except cp.error.SolverError as error:
        failure = str(error).splitlines()[0] if str(error) else type(error).__name__
    if failure is not None and solver != 'SCS':
        warnings.warn('%s failed (%s); solving again with SCS at eps %g'
                      % (solver, failure, FAITHFUL_EPS))
        solver = 'SCS'
        problem, Z, b = build_ufm_program(counts, reg_z, reg_b)
        eps = FAITHFUL_EPS
        status = _solve_once(problem, solver, eps, verbose)
        failure = None if status in OPTIMAL else 'status %s' % status
    if failure is not None:
        raise RuntimeError('%s could not solve the program (%s)' % (solver, failure))
    return {'Z': np.asarray(Z.value, dtype=np.float64),
            'b': np.asarray(b.value, dtype=np.float64).reshape(-1),
            'objective': float(problem.value), 'status': status, 'solver': solver,
            'eps': eps}


def ufm_objective(Z, b, counts, reg_z, reg_b):
    """The convex program's objective (docs/papers.md, Hong & Ling 2023) evaluated in numpy at (Z (K, K), b (K,))."""
    counts = check_counts(counts)
    logits = Z + b[:, None]                                                  # (K, K)
    top = logits.max(axis=0)                                                 # (K,)
    log_partition = top + np.log(np.exp(logits - top).sum(axis=0))          # (K,)
    cross_entropy = counts @ (log_partition - np.diag(logits)) / counts.sum()
    nuclear = np.linalg.svd(Z * np.sqrt(counts)[None, :], compute_uv=False).sum()
    return float(cross_entropy + reg_z * nuclear + reg_b * b @ b)


# ----------------------------------------------------------------------------------------
# The structure of a solution

def optimal_bias_only(counts, reg_b, iterations=100):
    """b* (K,) minimising (1/N) sum_k n_k [logsumexp(b) - b_k] + l_2 ||b||^2, the bias of the
    all-collapsed solution Z = 0; Newton's method with step halving (strictly convex if l_2 > 0;
    for l_2 = 0, softmax(b*) = n/N and b* is taken with zero mean)."""
    counts = check_counts(counts)
    prior = counts / counts.sum()                                            # (K,)
    b = np.log(prior) - np.log(prior).mean()
    if reg_b == 0:
        return b

    def value(bias):
        top = bias.max()
        return top + np.log(np.exp(bias - top).sum()) - prior @ bias + reg_b * bias @ bias

    for _ in range(iterations):
        p = np.exp(b - b.max())
        p /= p.sum()                                                         # softmax(b), (K,)
        gradient = p - prior + 2 * reg_b * b
        if np.abs(gradient).max() < 1e-15:
            break
        hessian = np.diag(p) - np.outer(p, p) + 2 * reg_b * np.eye(len(b))  # (K, K)
        step = np.linalg.solve(hessian, gradient)
        size, current = 1.0, value(b)
        while value(b - size * step) > current and size > 1e-10:
            size /= 2
        b = b - size * step
    return b


def total_collapse_level(counts, reg_b):
    """sigma_max(G_0), G_0 = (1/N)(p* 1^T - I) D with p* = softmax(b*) (docs/papers.md, Hong & Ling 2023): Z = 0 is
    optimal iff l >= this level (the subgradient condition of the nuclear norm at Z = 0).
    It equals theory.py's sqrt(n_max)/N whenever the largest count is shared by two or more
    classes; when one class alone is the largest it is smaller [measured]."""
    counts = check_counts(counts)
    b = optimal_bias_only(counts, reg_b)
    p = np.exp(b - b.max())
    p /= p.sum()                                                             # (K,)
    K = len(counts)
    G0 = (np.outer(p, np.ones(K)) - np.eye(K)) * np.sqrt(counts)[None, :] / counts.sum()  # (K, K)
    return float(np.linalg.svd(G0, compute_uv=False)[0])


def equal_count_clusters(counts):
    """[(n_c, indices)] for every count shared by two or more classes, in order of appearance:
    the clusters whose columns the theory says coincide above sqrt(n_c)/N."""
    counts = np.asarray(counts)
    clusters = []
    for n_c in dict.fromkeys(counts.tolist()):
        indices = np.flatnonzero(counts == n_c)
        if len(indices) >= 2:
            clusters.append((n_c, indices))
    return clusters


def column_spread(Z, indices):
    """Largest |Z[j, k] - mean over the cluster of Z[j, :]| over the columns k in indices."""
    columns = Z[:, indices]                                                  # (K, |cluster|)
    return float(np.abs(columns - columns.mean(axis=1, keepdims=True)).max())


def cluster_columns_coincide(Z, counts, tol=STRUCTURE_TOL):
    """{n_c: True if the logit columns of the classes with n_c samples coincide within tol}."""
    return {n_c: column_spread(Z, indices) <= tol for n_c, indices in equal_count_clusters(counts)}


def is_total_collapse(Z, tol=STRUCTURE_TOL):
    """True if every logit of Z is zero within tol (every feature collapsed)."""
    return bool(np.abs(Z).max() <= tol)


# ----------------------------------------------------------------------------------------
# Saving

def save_npy(path, array):
    """np.save to path atomically (path ends in .npy)."""
    atomic_write(path, lambda f: np.save(f, np.asarray(array)))
