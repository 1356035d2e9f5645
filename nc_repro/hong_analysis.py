"""Hong & Ling 2023's computations (Hong's ana_utils.py, the analysis in its main scripts and the
schedule of its train_utils.py loops): class counts and the offline rescaling, the lr factor and
the lambdas of a level l, NC1, the logit matrix pre = M W^T, its block structure, the minority-
collapse score, the cosines of limit_main and what the theory (docs/papers.md, Hong & Ling 2023)
predicts. Models, data sets and numbers come in as arguments; the flags are in hong_args.py,
data, training and figures in hong_runs.py, and docs/hong.md says how the scripts train.
"""
import math
import os

import numpy as np

from nc_repro import convex_ufm, nc_measures, nc_statistics, recipes, theory
from nc_repro.fileio import atomic_write
from nc_repro.validation import feature_pass

NUM_CLASSES = 10              # K, hard-coded in the original (docs/original_code.md, Hong-B18)
BATCH_SIZE = 128              # the loops' batch, and the eval feature pass (Hong's get_features)
DIGITS_MAX_COUNT = 100        # the offline stand-in's largest class count (docs/hong.md)


# ----------------------------------------------------------------------------------------
# class counts and the offline rescaling

def two_cluster_counts(ka, na, nb):
    """minority_l / minority_n / limit (the class patterns of Hong's scripts): classes 0..ka-1 get na, the rest nb."""
    return [na] * ka + [nb] * (NUM_CLASSES - ka)


def offline_scale(dataset, all_counts):
    """s = DIGITS_MAX_COUNT / (largest count the script asks for) on digits, else 1."""
    if dataset != 'digits':
        return 1.0
    return min(1.0, DIGITS_MAX_COUNT / max(max(counts) for counts in all_counts))


def scaled_counts(counts, scale):
    """Counts times s, rounded, at least 2 per class (a class of one sample breaks the class
    mean in the original, docs/original_code.md, Hong-B14)."""
    if scale == 1.0:
        return [int(round(c)) for c in counts]
    return [max(2, int(round(c * scale))) for c in counts]


def announce_scale(scale):
    if scale != 1.0:
        print('digits (offline): class counts x %.4g and l / sqrt(%.4g) = l x %.4g, so every '
              'threshold keeps its place relative to the sweep' % (scale, scale, 1 / math.sqrt(scale)))


# ----------------------------------------------------------------------------------------
# the schedule and the regularisation (Hong's train_utils.py loops)

def effective_lr_factor(loop, epochs):
    """epoch index (0-based) -> lr / 0.01, as the original loops set it (Hong's train_utils.py).

    'batch' (simple_train_batch, block_main) and 'batch_2' (limit_main) set lr/10 at epoch
    int(E/6) and, in an elif, lr/100 at int(E/3); 'warm' (minority scripts) at int(E/3) and
    int(2E/3). lr/10 = 0.01 is the starting value, so only the second milestone matters, and
    it never fires when both milestones coincide (E < 3, or E < 2 for 'warm')."""
    first, second = (int(epochs / 3), int(2 * epochs / 3)) if loop == 'warm' else (int(epochs / 6), int(epochs / 3))
    return lambda epoch: 0.1 if epoch >= second and second != first else 1.0


def final_weights_file(save_dir, epoch):
    """The sweep loops save once, at the end, to <save_dir>/network_weight (Hong's simple_train_batch_warm and _2)."""
    return os.path.join(save_dir, 'network_weight')


def only_final(epoch, epochs):
    return epoch == epochs


def lambdas_for_level(level, reg_b):
    """(lambda_H, lambda_W, lambda_b) = (l/20, 5 l, reg_b), so 2 sqrt(lambda_W lambda_H) = l
    (docs/papers.md, Hong & Ling 2023)."""
    return (level / 20, 5 * level, reg_b)


# ----------------------------------------------------------------------------------------
# analysis (Hong's ana_utils.py and the main scripts)

def class_statistics(model, data, device, with_accuracy=False):
    """Eval-mode features of the rendered training set -> nc_statistics.ClassStatistics (and the
    training accuracy in percent with with_accuracy)."""
    features = feature_pass(model, data, BATCH_SIZE, device)
    stats = nc_statistics.ClassStatistics.from_features(features.layer_inputs[0], features.labels, NUM_CLASSES)
    if not with_accuracy:
        return stats
    accuracy = 100 * float((features.logits.argmax(1) == features.labels).float().mean())
    return stats, accuracy


def hong_nc1(stats):
    """NC1 = tr(Sigma_W pinv(Sigma_B, rcond=1e-10)) / K with Sigma_B weighted by n_k/N (Hong's
    block_main.py), as coded; computed in the span of the class means (nc_measures.nc1)."""
    return nc_measures.nc1(stats, recipes.get('hong2023').conventions)['nc1_as_coded']


def logit_matrix(model, stats):
    """pre = M W^T (K x K, no bias; row k = true class, column j = logit; Hong's block_main.py Z plot)."""
    W = model.head_layers()[-1].weight.detach().double().cpu()
    return (stats.class_means.cpu() @ W.T).numpy()


def count_clusters(counts):
    """Cluster index per class: classes with the same count share a cluster, numbered in the
    order the counts first appear (e.g. [5, 5, 3, 3, 3] -> [0, 0, 1, 1, 1])."""
    order = list(dict.fromkeys(counts))
    return [order.index(c) for c in counts]


def _rms(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.sqrt(np.mean(values ** 2))) if values.size else 0.0


def block_structure(pre, counts):
    """Not in the reference: how closely the logit matrix pre (rows = true class k, columns =
    logit j) follows the block pattern of the UFM optimum, where pre[k, j] for k != j depends
    only on the pair (cluster of k, cluster of j) and pre[k, k] only on the cluster of k.

    The off-diagonal entries are grouped into blocks (cluster of the row, cluster of the
    column). ``within_rms`` is the root-mean-square deviation of the entries from their block
    mean; ``between_rms`` the root-mean-square deviation of the block means (weighted by the
    number of entries) from the mean of all off-diagonal entries. ``block_contrast`` =
    within_rms / between_rms: near 0 when the blocks are sharp (entries equal within a block,
    different between blocks), about 1 or more for a matrix without blocks. Per cluster c the
    same two spreads are taken over the rows of c only (``per_cluster``). ``within_over_gap``
    = within_rms / (mean diagonal - mean off-diagonal) measures the within-block spread on the
    scale of the logit margin, and the diagonal gets the same within / between split."""
    pre = np.asarray(pre, dtype=np.float64)
    K = len(counts)
    cluster = np.asarray(count_clusters(counts))
    rows, cols = np.nonzero(~np.eye(K, dtype=bool))
    entries = pre[rows, cols]
    block_of = cluster[rows] * (cluster.max() + 1) + cluster[cols]
    block_mean = {b: entries[block_of == b].mean() for b in np.unique(block_of)}
    entry_block_mean = np.array([block_mean[b] for b in block_of])          # each entry's block mean
    deviation = entries - entry_block_mean
    between = entry_block_mean - entries.mean()
    per_cluster = []
    for c in range(cluster.max() + 1):
        mine = cluster[rows] == c
        within_c, between_c = _rms(deviation[mine]), _rms(between[mine] + entries.mean() - entries[mine].mean())
        per_cluster.append({'cluster': c, 'classes': np.flatnonzero(cluster == c).tolist(),
                            'count': int(counts[int(np.flatnonzero(cluster == c)[0])]),
                            'within_rms': within_c, 'between_rms': between_c,
                            'block_contrast': within_c / between_c if between_c > 0 else float('inf')})
    diagonal = np.diag(pre)
    diagonal_cluster_mean = np.array([diagonal[cluster == c].mean() for c in cluster])
    within, between_rms = _rms(deviation), _rms(between)
    gap = float(diagonal.mean() - entries.mean())
    return {'within_rms': within, 'between_rms': between_rms,
            'block_contrast': within / between_rms if between_rms > 0 else float('inf'),
            'within_over_gap': within / gap if gap > 0 else float('inf'), 'logit_gap': gap,
            'diagonal_within_rms': _rms(diagonal - diagonal_cluster_mean),
            'diagonal_between_rms': _rms(diagonal_cluster_mean - diagonal.mean()),
            'per_cluster': per_cluster}


def save_logits(save_dir, pre, bias):
    """z_data.npy (pre, float64) and b_data.npy (b, float32), as the sweep scripts save them."""
    for name, array in (('z_data.npy', pre), ('b_data.npy', bias)):
        atomic_write(os.path.join(save_dir, name), lambda f, array=array: np.save(f, array))
    print('pre = M W^T (rows: class, columns: logit):\n%s\nb = %s' % (np.array2string(pre, precision=4),
                                                                      np.array2string(bias, precision=4)))


def minority_collapse_score(pre, ka, zero=convex_ufm.STRUCTURE_TOL):
    """Not in the reference: the largest distance of a minority class's logit vector (column k
    of pre^T) from the minority mean, relative to the largest logit-vector norm. 0 = the
    minority classes share one logit vector (minority collapse); also 0 when every logit vector
    is below ``zero`` (total collapse, Z = 0), where the ratio would be solver noise."""
    minority = pre[ka:]
    spread = np.linalg.norm(minority - minority.mean(0), axis=1).max()
    largest = np.linalg.norm(pre, axis=1).max()
    return 0.0 if largest < zero else float(spread / largest)


def pairwise_cosines(rows):
    """compute_pairwise_angle: cosines between the rows of a matrix (Hong's ana_utils)."""
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    return unit @ unit.T


def cosine_statistics(pre, ka, faithful_b=True):
    """limit_main's A, B, AB (Hong's limit_main.py), cosines between the rows of pre^T (= Z_cvx).
    A: mean over the strict upper triangle of the majority block; AB: mean of the majority x
    minority block; B: the minority block at the strict-upper-triangle indices of size ka, as
    the original (right only for ka = 5, docs/original_code.md, Hong-B6; entries outside the block are left out instead of
    raising), or with faithful_b=False over the minority block's own triangle."""
    cosines = pairwise_cosines(pre.T)
    A = cosines[:ka, :ka][np.triu_indices(ka, 1)].mean()
    minority = cosines[ka:, ka:]
    rows, cols = np.triu_indices(ka if faithful_b else NUM_CLASSES - ka, 1)
    inside = (rows < len(minority)) & (cols < len(minority))
    B = minority[rows[inside], cols[inside]].mean()
    AB = cosines[:ka, ka:].mean()
    return float(A), float(B), float(AB)


# ----------------------------------------------------------------------------------------
# thresholds (theory.py; docs/papers.md, Hong & Ling 2023)

def collapse_prediction(counts, level):
    """What the theory (docs/papers.md, Hong & Ling 2023) predicts at nuclear-norm level l for these class counts, in one line."""
    N = sum(counts)
    sizes = sorted({c for c in counts if counts.count(c) >= 2})
    levels = ', '.join('%.4g (n=%d)' % (theory.hong_within_cluster_threshold(n, N), n) for n in sizes)
    total = theory.hong_total_collapse_threshold(counts)
    collapsed = [n for n in sizes if level >= theory.hong_within_cluster_threshold(n, N)]
    state = ('total collapse (Z = 0)' if level >= total else
             'clusters of size %s collapse' % collapsed if collapsed else 'no cluster collapses')
    return 'l = %.4g: within-cluster collapse at l >= %s; total collapse at l >= %.4g -> %s' % (
        level, levels or 'none (no two classes share a count)', total, state)


def minority_collapse_threshold(counts, ka):
    """lambda_MC for a two-cluster count vector (classes ka.. are the minority)."""
    return theory.hong_within_cluster_threshold(counts[ka], sum(counts))


SMALL_SCORE = 0.1
SCORE_DEFINITION = ('minority_collapse_score: max over minority classes k of ||pre[k] - mean of the minority '
                    'rows of pre|| / max_k ||pre[k]||, pre = M W^T (rows = true class); 0 when every row is '
                    'below %g (total collapse)' % convex_ufm.STRUCTURE_TOL)
