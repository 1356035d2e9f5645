"""Each Hong & Ling 2023 claim (H1, H2, H3 of reproduction/papers/hong2023.py) judged on both of its
sides: a fabricated result that satisfies the claim passes, and results that violate it, one
way at a time, fail with a reason naming what failed.

The results are the JSON records the scripts write under hong_results/plots/. Where a script
derives the judged numbers from a matrix (block_main's block contrast from the logit matrix
M W^T, the minority sweeps' spreads and "matches theory" from one logit matrix per point), the
fixture goes through the same record writer (nc_repro.hong_analysis.block_structure,
hong_runs.minority_record) from logit matrices built here, whose structure is known by
construction: exact blocks or not, minority rows equal or apart. Where a point lies relative
to the minority-collapse level is computed here from the paper's formula sqrt(n_B)/N."""
import argparse
import json
import math
import os

import numpy as np
import pytest

import hong_runs
from nc_repro import hong_analysis
from reproduction import grids
from reproduction.claims import MissingResult
from reproduction.papers import hong2023

K = 10


class Grid:
    """What the Hong checks read of a grid: its work folder and its quick jobs."""

    def __init__(self, name, work_dir):
        self.work_dir = str(work_dir)
        self.jobs = {job.name: job for job in grids.expand(grids.load_grid(name), quick=True)}


def write_record(grid, name, record):
    folder = os.path.join(grid.work_dir, 'hong_results', 'plots')
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), 'w') as f:
        json.dump(record, f)


def two_cluster_logits(counts, gap=4.0):
    """pre = M W^T (up to three clusters) with exact block structure: row k (true class k) has gap on its own class and
    an off-diagonal value that depends only on the clusters of the row and the column."""
    cluster = np.asarray(hong_analysis.count_clusters(counts))
    between = np.array([[0.0, -1.0, -1.5], [-0.5, -2.0, -1.0], [-1.2, -0.3, -2.5]])   # by (row, column) cluster
    off = between[cluster[:, None], cluster[None, :]]                                  # (K, K)
    return off + gap * np.eye(len(counts))


# ----------------------------------------------------------------------------------------
# H1: block structure (NC1 falls 10x or more, block contrast <= 0.3)

def block_record(nc1_first, nc1_last, pre, counts):
    return {'nc1_first': nc1_first, 'nc1_last': nc1_last, 'nc1_drop': nc1_first / nc1_last,
            'block': hong_analysis.block_structure(pre, counts)}


def test_h1_block_structure_both_ways(tmp_path):
    counts = [50] * 3 + [30] * 3 + [10] * 4
    grid = Grid('hong_block', tmp_path)
    results = {'hong_block': grid}
    blocks = two_cluster_logits(counts)
    write_record(grid, '001_MLP_quick.json', block_record(0.8, 0.01, blocks, counts))
    measured = hong2023.block_structure(results)
    assert measured.passed, measured

    # the same NC1 fall, but a logit matrix with no block pattern: independent noise of the
    # size of the between-block differences on every entry
    noisy = blocks + np.random.default_rng(0).normal(0, 1.0, (K, K))
    record = block_record(0.8, 0.01, noisy, counts)
    assert record['block']['block_contrast'] > 0.3
    write_record(grid, '001_MLP_quick.json', record)
    measured = hong2023.block_structure(results)
    assert not measured.passed and 'NC1 falls /80' in measured.reason      # the NC1 fall was enough

    # sharp blocks, but NC1 falls only 4x
    write_record(grid, '001_MLP_quick.json', block_record(0.8, 0.2, blocks, counts))
    measured = hong2023.block_structure(results)
    assert not measured.passed and 'NC1 falls /4' in measured.reason


def test_h1_without_a_record_is_missing(tmp_path):
    with pytest.raises(MissingResult):
        hong2023.block_structure({'hong_block': Grid('hong_block', tmp_path)})


# ----------------------------------------------------------------------------------------
# H2: minority collapse exactly beyond l = sqrt(n_B)/N, for the network and the convex program

RATIOS = (0.6, 0.9, 1.2, 1.5)          # level / sqrt(n_B)/N at the points of each fabricated sweep


def sweep_logits(ka, counts, collapsed):
    """pre for one point: the minority rows (classes ka..) all equal when ``collapsed``, else
    each minority class keeps its own logit gap (spread of order 1 relative to the norm)."""
    pre = two_cluster_logits(counts)
    if collapsed:
        pre[ka:] = pre[ka:].mean(0)
    return pre


def sweep_record(script, ka, network_collapsed_at, convex_collapsed_at):
    """The record of a minority sweep over RATIOS, written by hong_runs.minority_record from logit
    matrices whose minority rows coincide at the ratios given."""
    n_A, n_B = 100, 20
    counts = [n_A] * ka + [n_B] * (K - ka)
    threshold = math.sqrt(n_B) / sum(counts)                         # the paper's minority-collapse level
    settings = [hong_runs.Setting(ratio, counts, ratio * threshold, 'unused', 'unused', train_accuracy=100.0)
                for ratio in RATIOS]
    network = [sweep_logits(ka, counts, ratio in network_collapsed_at) for ratio in RATIOS]
    convex = [sweep_logits(ka, counts, ratio in convex_collapsed_at) for ratio in RATIOS]
    args = argparse.Namespace(network='MLP', width=128, depth=2, pool=4, quick=True, dataset_t='digits', epoch=300,
                              lr=0.05, batch_size=128, threads=1)
    record = hong_runs.minority_record(args, settings, ka, [hong_analysis.minority_collapse_score(pre, ka) for pre in network],
                                       [hong_analysis.minority_collapse_score(pre, ka) for pre in convex], network, convex)
    record['script'] = script
    return record


BEYOND = {r for r in RATIOS if r >= 1}


def write_sweeps(grid, network_collapsed_at=None):
    """One record per quick job of hong_minority; ``network_collapsed_at`` {job name: ratios}
    overrides where that job's network collapses (default: exactly beyond the threshold)."""
    for index, (name, job) in enumerate(sorted(grid.jobs.items())):
        script, ka = os.path.basename(job.train[0]), job.flags['ka']
        where = (network_collapsed_at or {}).get(name, BEYOND)
        prefix = '003' if script == 'minority_l_main.py' else '002'
        write_record(grid, '%s_MLP_ka=%d_%d_quick.json' % (prefix, ka, index),
                     sweep_record(script, ka, where, BEYOND))


def test_h2_minority_collapse_both_ways(tmp_path):
    grid = Grid('hong_minority', tmp_path)
    results = {'hong_minority': grid}
    assert {(os.path.basename(j.train[0]), j.flags['ka']) for j in grid.jobs.values()} == {
        ('minority_l_main.py', 5), ('minority_l_main.py', 3), ('minority_n_main.py', 5), ('minority_n_main.py', 3)}
    write_sweeps(grid)
    measured = hong2023.minority_collapse(results)
    assert measured.passed, measured

    # the network collapses already at 0.9 times the threshold, in one sweep only
    write_sweeps(grid, {'n_ka3': BEYOND | {0.9}})
    measured = hong2023.minority_collapse(results)
    assert not measured.passed and measured.reason.startswith('n_ka3:') and 'l_ka5' not in measured.reason

    # the network does not collapse at 1.2 times the threshold
    write_sweeps(grid, {'l_ka5': {1.5}})
    measured = hong2023.minority_collapse(results)
    assert not measured.passed and measured.reason.startswith('l_ka5:') and 'n_ka3' not in measured.reason


def test_h2_convex_program_must_agree_too(tmp_path):
    """A sweep where the network matches the threshold but the convex program does not fails."""
    grid = Grid('hong_minority', tmp_path)
    write_sweeps(grid)
    job = grid.jobs['l_ka3']
    record = sweep_record('minority_l_main.py', job.flags['ka'], BEYOND, BEYOND | {0.6})
    assert record['network_matches_theory'] and not record['convex_matches_theory']
    for name in os.listdir(os.path.join(grid.work_dir, 'hong_results', 'plots')):   # replace l_ka3's record
        if name.startswith('003_MLP_ka=3'):
            write_record(grid, name, record)
    measured = hong2023.minority_collapse({'hong_minority': grid})
    assert not measured.passed and measured.reason.startswith('l_ka3:')


def test_h2_a_sweep_without_its_record_is_missing(tmp_path):
    grid = Grid('hong_minority', tmp_path)
    write_sweeps(grid)
    for name in os.listdir(os.path.join(grid.work_dir, 'hong_results', 'plots')):
        if name.startswith('002_MLP_ka=5'):
            os.remove(os.path.join(grid.work_dir, 'hong_results', 'plots', name))
    with pytest.raises(MissingResult, match='minority_n_main.py --ka 5'):
        hong2023.minority_collapse({'hong_minority': grid})


# ----------------------------------------------------------------------------------------
# H3: cosines approach -1/(K-1) as n_A grows (largest n_A within 0.05, closer than the smallest)

def limit_record(cosines_first, cosines_last):
    """distance of each cosine (A, B, AB) to -1/(K-1), computed here."""
    etf = -1.0 / (K - 1)
    return {'nalist': [100, 6400], 'distance_first': [abs(c - etf) for c in cosines_first],
            'distance_last': [abs(c - etf) for c in cosines_last]}


@pytest.mark.parametrize('first,last,passes,why', [
    ((-0.35, 0.10, -0.02), (-0.13, -0.10, -0.12), True, 'every cosine ends within 0.02 of -1/9'),
    ((-0.35, 0.10, -0.02), (-0.13, -0.03, -0.12), False, 'B ends 0.081 from -1/9'),
    ((-0.13, -0.10, -0.12), (-0.10, -0.14, -0.09), False, 'all within 0.05, but no closer than at the smallest n_A'),
])
def test_h3_cosine_limits_both_ways(tmp_path, first, last, passes, why):
    grid = Grid('hong_limit', tmp_path)
    write_record(grid, 'limit_quick.json', limit_record(first, last))
    measured = hong2023.cosine_limits({'hong_limit': grid})
    assert measured.passed == passes, why
    if not passes:
        assert 'from its limit' in measured.reason
