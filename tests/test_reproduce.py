"""reproduce.py and nc_repro: each claim check passes on a fixture that satisfies the claim and
fails, with the reason, on one that does not; a report over a partly finished grid lists the
missing runs and never reports them as reproduced."""
import json
import os
import pickle

import numpy as np
import pytest

from nc_repro import theory
from reproduction import grids
from conftest import run_script
from reproduction import claims
from reproduction.papers import dang2023, dang2024, zhou2022


class FakeGrid:
    """What a check reads of a grid: jobs with flags, and each job's info.pkl."""

    def __init__(self, infos, flags=None, run_dirs=None):
        self.infos = infos
        self.jobs = {name: grids.Job(name, ['train.py'], flags=(flags or {}).get(name, {})) for name in infos}
        self.run_dirs = run_dirs or {}

    def info(self, name):
        return self.infos[name]

    def run_dir(self, name):
        return self.run_dirs[name]


class FakeResults(dict):
    """One seed replicate's grids, by name, for claims.evaluate."""
    quick = True

    def __init__(self, grids_by_name, label='grid seed'):
        super().__init__(grids_by_name)
        self.label = label

    def missing_runs(self, claim):
        return []


def collapsing(first, last, epochs=5):
    return list(np.geomspace(first, last, epochs))


def zhou_info(nc1=(1.0, 1e-3), nc2=(0.5, 0.05), nc3=(0.5, 0.05), test=97.0, margin=(0.1, 0.5)):
    return {'collapse_metric': collapsing(*nc1), 'ETF_metric': collapsing(*nc2),
            'WH_relation_metric': collapsing(*nc3), 'test_acc1': [90.0, test], 'avg_cos_margin': list(margin)}


def test_fold_drop_and_relative_error():
    assert claims.fold_drop([1.0, 0.5, 0.01]) == pytest.approx(100)
    assert claims.fold_drop([0.2, 0.0]) == float('inf')
    assert claims.relative_error([1.05, 2.0], [1.0, 2.0]) == pytest.approx(0.05)
    assert claims.same_order([1, 2, 3], [10, 20, 30]) and not claims.same_order([3, 2, 1], [10, 20, 30])


def test_optimizer_claim_both_ways():
    good = {'zhou_optim_mse': FakeGrid({name: zhou_info() for name in ('SGD', 'Adam', 'LBFGS')})}
    assert zhou2022.optimizers_collapse(good).passed
    slow = dict(good['zhou_optim_mse'].infos, Adam=zhou_info(nc1=(1.0, 0.3)))
    measured = zhou2022.optimizers_collapse({'zhou_optim_mse': FakeGrid(slow)})
    assert not measured.passed and 'Adam' in measured.reason and 'SGD' not in measured.reason


def test_fixed_etf_claim_both_ways():
    flags = {'learned': {}, 'fixed': {'ETF_fc': True}, 'learned10': {'fixdim': 10}, 'fixed10': {'ETF_fc': True, 'fixdim': 10}}
    infos = {name: zhou_info() for name in flags}
    assert zhou2022.fixed_etf_like_learned({'zhou_etf_mse': FakeGrid(infos, flags)}).passed
    infos['fixed10'] = zhou_info(test=90.0)           # 7 points below the learned classifier
    measured = zhou2022.fixed_etf_like_learned({'zhou_etf_mse': FakeGrid(infos, flags)})
    assert not measured.passed and 'd=10' in measured.reason


def test_feature_dimension_claim_both_ways():
    flags = {'d=%d' % d: {'fixdim': d} for d in (5, 8, 9, 10, 64)}
    final = {5: 0.5, 8: 0.3, 9: 0.05, 10: 0.04, 64: 0.03}
    infos = {'d=%d' % d: zhou_info(nc2=(0.6, v)) for d, v in final.items()}
    assert zhou2022.feature_dimension({'zhou_dk_mse': FakeGrid(infos, flags)}).passed
    infos['d=8'] = zhou_info(nc2=(0.6, 0.05))         # d < K-1 collapsing as well: impossible for an ETF
    measured = zhou2022.feature_dimension({'zhou_dk_mse': FakeGrid(infos, flags)})
    assert not measured.passed and 'd=8' in measured.reason


def test_rescaled_mse_claim_both_ways():
    flags = {'M=1': {'M': 1}, 'M=5': {'M': 5}}
    infos = {'M=1': zhou_info(nc1=(1, 1e-2), margin=(0.1, 0.4)), 'M=5': zhou_info(nc1=(1, 1e-3), margin=(0.1, 0.8))}
    check = zhou2022.rescaled_mse('zhou_M_rmse', 'M')
    assert check({'zhou_M_rmse': FakeGrid(infos, flags)}).passed
    infos['M=5'] = zhou_info(nc1=(1, 1e-1), margin=(0.1, 0.8))
    measured = check({'zhou_M_rmse': FakeGrid(infos, flags)})
    assert not measured.passed and 'NC1 at M=5' in measured.reason


def test_head_layer_claim_both_ways():
    per_layer = [[1.0, 0.8, 0.5], [1e-2, 1e-2, 1e-3]]          # epochs x layers
    grid = FakeGrid({'M=3': {'per_layer': {'NC1_collapse_metric': per_layer}}})
    assert dang2023.every_head_layer({'d23_mlp_depth': grid}).passed
    grid.infos['M=3']['per_layer']['NC1_collapse_metric'] = [[1.0, 0.8, 0.5], [1e-2, 0.4, 1e-3]]
    measured = dang2023.every_head_layer({'d23_mlp_depth': grid})
    assert not measured.passed and 'layer 2' in measured.reason


def test_bias_claim_both_ways():
    flags = {'bias': {}, 'no_bias': {'no-bias': True}}
    infos = {'bias': {'NC2_ETF_W': [0.4, 0.05], 'NC2_Identity_W': [0.3, 0.35]},
             'no_bias': {'NC2_ETF_W': [0.4, 0.45], 'NC2_Identity_W': [0.3, 0.02]}}
    assert dang2023.bias_decides_frame({'d23_bias': FakeGrid(infos, flags)}).passed
    infos['no_bias'] = {'NC2_ETF_W': [0.4, 0.05], 'NC2_Identity_W': [0.3, 0.25]}   # the ETF, not the frame
    measured = dang2023.bias_decides_frame({'d23_bias': FakeGrid(infos, flags)})
    assert not measured.passed and 'no_bias' in measured.reason


def lengths_from_x(x, counts, depth, lambda_H):
    """||h_k||, ||w_k|| at the structure with per-class x_k (K lambda_H: the trainer's objective),
    written from the paper's geometry: t = N lambda_H x^M, ||w_k||^2 = t, ||h_k|| = sqrt(t)/(t + N lambda_H)."""
    N = sum(counts)
    t = N * lambda_H * np.asarray(x, dtype=float) ** depth
    return np.sqrt(t) / (t + N * lambda_H), np.sqrt(t)


def phi_minimiser(n_k, b, depth):
    """argmin over a dense grid of x >= 0 of n_k/(x^M + 1) + b x (no project code)."""
    x = np.concatenate([[0.0], np.geomspace(1e-4, 100, 200001)])
    return x[np.argmin(n_k / (x ** depth + 1) + b * x)]


def d3_grid(tmp_path, record, h, w):
    (tmp_path / 'theory.json').write_text(json.dumps(record))
    infos = {'run': {'class_mean_norms': [h * 2, h], 'classifier_row_norms': [w * 2, w]}}
    return {'d23_imbalanced': FakeGrid(infos, run_dirs={'run': str(tmp_path)})}


def test_imbalanced_lengths_claim_both_ways(tmp_path):
    # M = 1: x_k = sqrt(n_k/b) - 1 (clamped at 0) with b = N^2 (K lambda_W)(K lambda_H)
    counts, lambda_w, lambda_h = [25, 25, 50, 50, 125], 1e-3, 2e-3
    K, N = len(counts), sum(counts)
    record = {'paper': 'dang2023', 'counts': counts, 'depth_linear': 1, 'lambda_W': lambda_w, 'lambda_H': lambda_h}
    b = N ** 2 * K * lambda_w * K * lambda_h
    x = np.maximum(np.sqrt(np.array(counts) / b) - 1, 0)
    h, w = lengths_from_x(x, counts, 1, K * lambda_h)
    assert dang2023.imbalanced_lengths(d3_grid(tmp_path, record, h * 1.02, w * 0.99)).passed
    measured = dang2023.imbalanced_lengths(d3_grid(tmp_path, record, h, w * np.r_[1, 1, 1, 1, 1.2]))
    assert not measured.passed and not measured.trapped
    assert 'class 4 (n_k = 125) at no local minimum of its objective (not converged): off by 20.0%' in measured.reason


def test_imbalanced_lengths_name_the_global_collapse_and_the_trapped_classes(tmp_path):
    # the setting of the issue: counts 25, 25, 50, ..., 125, 125, M = 2, lambda 5e-4 (K lambda = 5e-3):
    # the classes of 25 collapse at the global minimiser, the others live
    counts = [25, 25, 50, 50, 75, 75, 100, 100, 125, 125]
    K, N, M, lam = 10, 750, 2, 5e-4
    record = {'paper': 'dang2023', 'counts': counts, 'depth_linear': M, 'lambda_W': lam, 'lambda_H': lam}
    b = M * N * (N * (K * lam) ** M * (K * lam)) ** (1 / M)
    x = np.array([phi_minimiser(n, b, M) for n in counts])
    assert list(x[:2]) == [0, 0] and all(x[2:] > 1)
    h, w = lengths_from_x(x, counts, M, K * lam)
    assert dang2023.imbalanced_lengths(d3_grid(tmp_path, record, h, w)).passed
    # the classes of 50 stuck at the collapsed local minimum x = 0: trapped, with the gap
    # (phi(0) - phi(x))/(2N) of the objective, not a failed closed form
    stuck = x.copy()
    stuck[2:4] = 0
    h, w = lengths_from_x(stuck, counts, M, K * lam)
    measured = dang2023.imbalanced_lengths(d3_grid(tmp_path, record, h, w))
    gap = (50 - (50 / (x[2] ** M + 1) + b * x[2])) / (2 * N)
    assert not measured.passed and not measured.reason
    assert 'class 2 (n_k = 50) at the collapsed local minimum' in measured.trapped
    assert 'class 3 (n_k = 50)' in measured.trapped and 'class 0' not in measured.trapped
    assert '%.3g' % gap in measured.trapped
    assert 'collapsed as predicted (predicted 0, measured 0): classes 0,1 (n_k = 25,25)' in measured.value
    # the original's largest root keeps the classes of 25 alive: lengths there are not the global minimiser,
    # but a local one (trapped, not failed)
    as_coded = x.copy()
    roots = np.roots([b, 0, 2 * b, -25 * M, b])          # b (x^2 + 1)^2 - 25 M x = 0
    as_coded[:2] = roots[np.abs(roots.imag) < 1e-9].real.max()
    h, w = lengths_from_x(as_coded, counts, M, K * lam)
    measured = dang2023.imbalanced_lengths(d3_grid(tmp_path, record, h, w))
    assert measured.trapped.count('at the living local minimum instead of the global collapse') == 2
    row = claims.evaluate(dang2023.CLAIMS[2], [FakeResults(d3_grid(tmp_path, record, h, w))])
    assert row.status == claims.TRAPPED


def test_a_claim_over_seeds_counts_them_and_gives_the_spread():
    def seed(nc1_last, label):
        return FakeResults({'zhou_optim_mse': FakeGrid({'SGD': zhou_info(nc1=(1.0, nc1_last))})}, label)
    claim = zhou2022.CLAIMS[0]
    row = claims.evaluate(claim, [seed(1e-3, 'grid seed'), seed(2e-3, 'seed 101'), seed(4e-3, 'seed 102')])
    assert row.status == claims.REPRODUCED and row.seeds == 'reproduced by 3/3 seeds'
    assert row.spread == 'smallest NC1 fold median 500 (250 to 1e+03)'
    assert row.value.startswith('reproduced by 3/3 seeds; grid seed: SGD NC1 /1e+03')
    row = claims.evaluate(claim, [seed(1e-3, 'grid seed'), seed(0.1, 'seed 101'), seed(4e-3, 'seed 102')])
    assert row.status == claims.NOT_REPRODUCED and row.seeds == 'reproduced by 2/3 seeds'
    assert row.reason.startswith('seed 101: SGD falls less than the threshold')


def test_gram_error_is_relative_to_the_largest_entry():
    block = {'predicted_diag': [10.0, 10.0], 'max_rel_diag_error': 1e-4, 'max_abs_offdiag_error': 5e-3}
    assert dang2023.gram_error(block) == pytest.approx(5e-4)


def write_info(work_dir, job, epochs):
    path = os.path.join(work_dir, job.info_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    info = zhou_info(nc1=(1.0, 1e-3))
    info['epoch'] = list(epochs)
    with open(path, 'wb') as f:
        pickle.dump(info, f)


def test_partly_finished_grid_is_not_run_and_named(tmp_path):
    results = claims.Results(quick=True, work_root=str(tmp_path))
    grid = results['zhou_optim_mse']
    sgd = grid.job('SGD')
    write_info(grid.work_dir, sgd, range(1, sgd.last_epoch + 1))      # SGD finished, the others not
    adam = grid.job('Adam')
    write_info(grid.work_dir, adam, [1, 2])                           # Adam stopped early
    row = claims.evaluate(zhou2022.CLAIMS[0], results)
    assert row.status == claims.NOT_RUN
    assert row.missing == ['zhou_optim_mse/Adam', 'zhou_optim_mse/LBFGS']


def test_quick_only_claim_is_marked_needs_full_scale(tmp_path):
    claim = claims.Claim('X', 'statement', 'quantity', [], lambda results: claims.Measurement('1', True),
                         full_scale_only='needs CIFAR-10')
    row = claims.evaluate(claim, claims.Results(quick=True, work_root=str(tmp_path)))
    assert (row.status, row.reason, row.value) == (claims.NEEDS_FULL_SCALE, 'needs CIFAR-10', '1')
    row = claims.evaluate(claim, claims.Results(quick=False, work_root=str(tmp_path)))
    assert row.status == claims.REPRODUCED


def test_reproduce_command_reports_missing_runs(tmp_path):
    result = run_script('reproduce.py', '--paper', 'zhou2022', '--quick', '--no_run', '--work_root', tmp_path / 'sweeps',
                        '--report_dir', tmp_path / 'reports', cwd=tmp_path)
    report = (tmp_path / 'reports' / 'zhou2022.md').read_text()
    assert report.count('| not run: not finished') == len(zhou2022.CLAIMS)
    assert 'reproduced' not in report.replace('not reproduced', '')
    summary = (tmp_path / 'reports' / 'README.md').read_text()
    assert 'Totals: %d not run' % len(zhou2022.CLAIMS) in summary
    assert 'not run' in result.stdout


def test_unknown_paper_is_one_line(tmp_path):
    result = run_script('reproduce.py', '--paper', 'smith2020', cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and '--paper' in result.stderr


def write_d24_run(run_dir, gram, norms, gaps, counts):
    os.makedirs(run_dir, exist_ok=True)
    np.savetxt(os.path.join(run_dir, 'HTH.csv'), gram, delimiter=',')
    with open(os.path.join(run_dir, 'theory.json'), 'w') as f:
        json.dump({'paper': 'dang2024', 'counts': counts, 'M': gaps}, f)
    return {'class_mean_norms': [norms, norms], 'NC1': [0.5, 1e-4],
            **{key: [0.5, 0.01] for key in dang2024.GEOMETRY_KEYS}}


def test_dang2024_claims_both_ways(tmp_path):
    counts = [2, 2, 5, 5]
    orthogonal = np.diag([0.0, 0.0, 4.0, 4.0])              # classes 0, 1 collapsed, 2, 3 orthogonal
    infos = {'run': write_d24_run(str(tmp_path / 'run'), orthogonal, [0.0, 0.0, 2.0, 2.0], [0, 0, 1.5, 1.5], counts)}
    grid = FakeGrid(infos, run_dirs={'run': str(tmp_path / 'run')})
    results = {'d24_imbalanced': grid}
    assert dang2024.orthogonal_means(results).passed
    assert dang2024.geometry_up_to_scale(results).passed
    assert dang2024.minority_collapse_where_predicted(results).passed
    # class 1 kept its features although the theory says it collapses; means at 60 degrees
    skewed = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 4, 2], [0, 0, 2, 4.0]])
    infos['run'] = write_d24_run(str(tmp_path / 'run'), skewed, [0.0, 1.0, 2.0, 2.0], [0, 0, 1.5, 1.5], counts)
    assert not dang2024.orthogonal_means(results).passed
    measured = dang2024.minority_collapse_where_predicted(results)
    assert not measured.passed and 'differ from the prediction' in measured.reason


def test_dang2024_collapse_claim_needs_a_predicted_collapse(tmp_path):
    infos = {'run': write_d24_run(str(tmp_path / 'run'), np.eye(3), [1.0, 1.0, 1.0], [1, 1, 1], [5, 5, 5])}
    measured = dang2024.minority_collapse_where_predicted({'d24_imbalanced': FakeGrid(infos, run_dirs={'run': str(tmp_path / 'run')})})
    assert not measured.passed and 'no run where the theory predicts' in measured.reason


@pytest.mark.slow
def test_dang2024_quick_report_end_to_end(tmp_path):
    """The whole path a user runs: sweep the quick grid, check the claims, write the report
    over two seeds (about 6 minutes on a 2-core CPU)."""
    result = run_script('reproduce.py', '--paper', 'dang2024', '--quick', '--seeds', '2', '--work_root', tmp_path / 'sweeps',
                        '--report_dir', tmp_path / 'reports', cwd=tmp_path, timeout=1200)
    record = json.loads((tmp_path / 'reports' / 'dang2024.json').read_text())
    assert [row['status'] for row in record['rows']] == [claims.REPRODUCED] * len(dang2024.CLAIMS), result.stdout[-2000:]
    report = (tmp_path / 'reports' / 'dang2024.md').read_text()
    assert '[figure](' in report and 'train_1st_order_unbalanced.py' in report


def test_synthetic_runs_are_matched_to_their_own_summaries(tmp_path):
    """Each synthetic job reads the summary.json written with its flags, balanced or not."""
    jobs = {'balanced': ('synthetic_experiment_balanced.py', {'hidden': 8}, [5, 5], {'bias': True, 'depth_linear': 1}),
            'imbalanced_M3': ('synthetic_experiment_imbalanced.py', {'hidden': 8, 'depth_linear': 3}, [4, 2],
                              {'bias': False, 'depth_linear': 3})}
    grid = FakeGrid({name: {} for name in jobs})
    grid.work_dir = str(tmp_path)
    for name, (script, flags, counts, args) in jobs.items():
        grid.jobs[name] = grids.Job(name, [script], flags=flags)
        folder = tmp_path / 'synthetic_results' / name
        folder.mkdir(parents=True)
        error = 5e-4 if name == 'balanced' else 2e-3
        block = {'predicted_diag': [1.0, 1.0], 'max_rel_diag_error': error, 'max_abs_offdiag_error': 0.0}
        (folder / 'summary.json').write_text(json.dumps({'counts': counts, 'args': dict(args, hidden=8), 'WWT': block}))
    matched = dang2023.synthetic_summaries(grid)
    assert matched['imbalanced_M3']['counts'] == [4, 2] and matched['balanced']['counts'] == [5, 5]
    measured = dang2023.synthetic_closed_form({'d23_synthetic': grid})
    assert not measured.passed and 'imbalanced_M3' in measured.reason and 'balanced:' not in measured.reason
