"""Zhou 2022's five figure scripts (plots/zhou_figures.py, plots/plot_*_mse.py, plots/plot_*_rmse.py)
and the shared helpers (plots/plot_utils.py), on small fake info.pkl files with J's key set."""
import os
import pickle
import struct

import numpy as np
import pytest

from plots import plot_utils, zhou_figures

SCRIPTS = {'plot_optim_mse.py': 'optim_mse', 'plot_etf_mse.py': 'etf_mse', 'plot_dk_mse.py': 'dk_mse',
           'plot_M_rmse.py': 'M_rmse', 'plot_k_rmse.py': 'k_rmse'}
FILE_NAMES = ['resnet18-NC1', 'resnet18-NC2', 'resnet18-NC3', 'resnet18-NC4', 'resnet18-train-acc',
              'resnet18-test-acc', 'c_margin_dist', 'resnet18-nuclear', 'resnet18-avg-cmargin', 'c_margin_dist_part']
PNG_MAGIC, PDF_MAGIC = b'\x89PNG\r\n\x1a\n', b'%PDF-'


def fake_info(epochs=4, num_samples=30, K=10, d=12, seed=0, epoch_numbers=None, full_last_only=False):
    """A J info.pkl dict (the keys and element types J's validate_NC.py writes) with smooth made-up curves. The
    per-epoch value of every scalar key is 1000 * key index + epoch, so a curve says where it came from."""
    rng = np.random.default_rng(seed)
    scalar_keys = ['collapse_metric', 'ETF_metric', 'WH_relation_metric', 'Wh_b_relation_metric',
                   'avg_cos_margin', 'train_acc1', 'train_acc5', 'test_acc1', 'test_acc5']
    info = {key: [] for key in ['collapse_metric', 'ETF_metric', 'WH_relation_metric', 'Wh_b_relation_metric',
                                'nuclear_metric', 'avg_cos_margin', 'all_cos_margin', 'W', 'b', 'mu_G_train',
                                'mu_G_test', 'train_acc1', 'train_acc5', 'test_acc1', 'test_acc5']}
    for e in range(1, epochs + 1):
        for index, key in enumerate(scalar_keys):
            value = 1000.0 * index + e
            info[key].append(np.float64(value) if key == 'collapse_metric' else value)
        n = num_samples if (e == epochs or not full_last_only) else 3
        info['all_cos_margin'].append(np.sort(rng.uniform(-1, 1, n)).astype(np.float32))
        info['W'].append(rng.normal(size=(K, d)).astype(np.float32))
        info['b'].append(np.zeros(K, np.float32))
        info['mu_G_train'].append(rng.normal(size=d).astype(np.float32))
        info['mu_G_test'].append(rng.normal(size=d).astype(np.float32))
    if epoch_numbers is not None:
        info['epoch'] = list(epoch_numbers)
    return info


def write_runs(weights_dir, uids, **kwargs):
    for seed, uid in enumerate(uids):
        os.makedirs(os.path.join(weights_dir, uid), exist_ok=True)
        with open(os.path.join(weights_dir, uid, 'info.pkl'), 'wb') as f:
            pickle.dump(fake_info(seed=seed, **kwargs), f)


def png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, path
    return struct.unpack('>II', head[16:24])


class Recorder:
    """Stands in for plot_utils.save_figure: keeps what each figure shows, renders nothing."""

    def __init__(self):
        self.figures = {}

    def __call__(self, fig, out_dir, name):
        import matplotlib.pyplot as plt
        ax = fig.axes[0]
        legend = ax.get_legend()
        self.figures[os.path.join(out_dir, name)] = {
            'xticks': list(ax.get_xticks()), 'xlim': ax.get_xlim(), 'yticks': list(ax.get_yticks()),
            'ylim': ax.get_ylim(), 'ylabel': ax.get_ylabel(), 'xlabel': ax.get_xlabel(),
            'legend': [t.get_text() for t in legend.get_texts()] if legend else [],
            'legend_loc': legend._loc if legend else None,
            'lines': [(line.get_color(), line.get_marker(), list(line.get_xdata()), list(line.get_ydata()))
                      for line in ax.get_lines()],
            'size': tuple(fig.get_size_inches())}
        plt.close(fig)
        return [os.path.join(out_dir, name + '.png'), os.path.join(out_dir, name + '.pdf')]


@pytest.fixture
def recorder(monkeypatch):
    record = Recorder()
    monkeypatch.setattr(zhou_figures.plot_utils, 'save_figure', record)
    return record


# ----------------------------------------------------------------------------------------
# plot_utils

def test_read_info_round_trip_and_errors(tmp_path):
    path = tmp_path / 'info.pkl'
    info = fake_info(epochs=2)
    with open(path, 'wb') as f:
        pickle.dump(info, f)
    again = plot_utils.read_info(str(path))
    assert list(again) == list(info) and again['train_acc1'] == [5001.0, 5002.0]

    with pytest.raises(ValueError, match='missing.pkl does not exist'):
        plot_utils.read_info(str(tmp_path / 'missing.pkl'))
    (tmp_path / 'bad.pkl').write_bytes(b'not a pickle at all')
    with pytest.raises(ValueError, match='bad.pkl cannot be read'):
        plot_utils.read_info(str(tmp_path / 'bad.pkl'))
    (tmp_path / 'cut.pkl').write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match='cut.pkl cannot be read'):
        plot_utils.read_info(str(tmp_path / 'cut.pkl'))
    with open(tmp_path / 'list.pkl', 'wb') as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ValueError, match='list.pkl holds a list, not an info dict'):
        plot_utils.read_info(str(tmp_path / 'list.pkl'))


def test_load_info_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot_utils.load_info(str(tmp_path / 'nowhere' / 'info.pkl'))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'nowhere/info.pkl does not exist' in err


def test_save_figure_writes_png_and_pdf_atomically(tmp_path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [1, 0])
    paths = plot_utils.save_figure(fig, str(tmp_path / 'new' / 'folder'), 'tiny')
    assert [os.path.basename(p) for p in paths] == ['tiny.png', 'tiny.pdf']
    width, height = png_size(paths[0])
    assert 300 <= width <= 560 and 220 <= height <= 420          # 4 x 3 inches at 120 dpi, tight box
    with open(paths[1], 'rb') as f:
        assert f.read(5) == PDF_MAGIC
    assert sorted(os.listdir(tmp_path / 'new' / 'folder')) == ['tiny.pdf', 'tiny.png']   # no temp files left
    assert not plt.get_fignums()                                  # the figure was closed


def test_out_dir_parser_default():
    import argparse
    parser = argparse.ArgumentParser(parents=[plot_utils.out_dir_parser()])
    assert parser.parse_args([]).out_dir == 'figures'
    assert parser.parse_args(['--out_dir', 'x']).out_dir == 'x'


# ----------------------------------------------------------------------------------------
# pure helpers

def test_even_ticks_match_j_at_200_epochs_and_50000_samples():
    assert zhou_figures.even_ticks(200, 4) == [0, 50, 100, 150, 200]
    assert zhou_figures.even_ticks(50000, 5) == [0, 10000, 20000, 30000, 40000, 50000]
    assert zhou_figures.even_ticks(1000, 5) == list(np.arange(0, 6 * (1000 // 5), 1000 // 5))   # J's partial
    assert zhou_figures.even_ticks(8, 4) == [0, 2, 4, 6, 8]
    for total in (1, 3, 7, 37, 123):
        ticks = zhou_figures.even_ticks(total, 4)
        assert ticks[0] == 0 and ticks[-1] <= total and all(isinstance(t, int) for t in ticks)
        assert ticks == sorted(set(ticks)) and 2 <= len(ticks) <= 8


def test_marker_spacing_matches_j():
    assert zhou_figures.marker_spacing(200, 8) == 25
    assert zhou_figures.marker_spacing(50000, 5) == 10000
    assert zhou_figures.marker_spacing(1000, 5) == 200
    assert zhou_figures.marker_spacing(3, 8) == 1 and zhou_figures.marker_spacing(0, 8) == 1


def test_epoch_series_uses_stored_epochs_and_truncates():
    info = fake_info(epochs=4, epoch_numbers=[10, 20, 30, 40])
    assert zhou_figures.epoch_series(info, 'ETF_metric') == ([10, 20, 30, 40], [1001.0, 1002.0, 1003.0, 1004.0])
    assert zhou_figures.epoch_series(info, 'ETF_metric', last_epoch=25) == ([10, 20], [1001.0, 1002.0])
    plain = fake_info(epochs=3)
    assert zhou_figures.epoch_series(plain, 'collapse_metric') == ([1, 2, 3], [1.0, 2.0, 3.0])
    assert zhou_figures.epoch_series(plain, 'nuclear_metric') == ([], [])
    assert zhou_figures.last_margins(info, last_epoch=25) is not None
    np.testing.assert_array_equal(zhou_figures.last_margins(info, 25), info['all_cos_margin'][1])
    assert zhou_figures.last_margins(info, last_epoch=5) is None
    assert zhou_figures.last_epoch_drawn([(None, info), (None, plain)]) == 40
    assert zhou_figures.last_epoch_drawn([(None, plain)], epochs_flag=7) == 7


def test_tables_follow_js_plot_scripts():
    optim = zhou_figures.FIGURES['optim_mse']
    assert [(s.label, s.color, s.marker) for s in optim.series] == [('SGD', 'r', 'v'), ('Adam', 'b', 'o'),
                                                                     ('LBFGS', 'g', 's')]
    assert optim.series[2].uid == 'cifar10_MSE_LBFGS_bias_true_batchsize_512_ETFfc_false_fixdim_false_sota_false'
    etf = zhou_figures.FIGURES['etf_mse']
    assert [s.uid for s in etf.series] == ['cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_%s_fixdim_%s_sota_true' % p
                                           for p in [('false', 'false'), ('true', 'false'), ('false', '10'),
                                                     ('true', '10')]]
    assert [s.uid[-7:] for s in zhou_figures.FIGURES['k_rmse'].series] == ['M_1_k_1', 'M_1_k_5', '_1_k_15', '_1_k_20']
    assert [s.label for s in zhou_figures.FIGURES['k_rmse'].series] == [
        r'$\alpha=1, M=1$', r'$\alpha=5, M=1$', r'$\alpha=15, M=1$', r'$\alpha=20, M=1$']
    assert [s.label for s in zhou_figures.FIGURES['M_rmse'].series][-1] == r'$\alpha=1, M=10$'
    dk = zhou_figures.FIGURES['dk_mse']
    assert [(s.label, s.color, s.marker, s.part_marker) for s in dk.series] == [
        ('d=5', 'c', 'v', None), ('d=8', 'b', 'o', None), ('d=9', 'g', 's', None), ('d=10', 'r', 'X', 'v'),
        ('d=512', 'purple', '>', None)]
    assert all(set(f.axes) == {p.name for p in zhou_figures.PANELS} for f in zhou_figures.FIGURES.values())
    assert [p.file_name for p in zhou_figures.PANELS] == FILE_NAMES


def test_select_series_quick_uids_and_labels():
    table = zhou_figures.FIGURES['optim_mse']
    quick = zhou_figures.select_series(table, quick=True)
    assert [s.uid for s in quick] == [s.uid + '_quick' for s in table.series]
    assert [s.label for s in quick] == ['SGD', 'Adam', 'LBFGS']
    same_count = zhou_figures.select_series(table, uids=['a', 'b', 'c'])
    assert [(s.uid, s.label, s.color) for s in same_count] == [('a', 'SGD', 'r'), ('b', 'Adam', 'b'), ('c', 'LBFGS', 'g')]
    other_count = zhou_figures.select_series(table, uids=['a', 'b', 'c', 'd'], labels=['1', '2', '3', '4'])
    assert [s.label for s in other_count] == ['1', '2', '3', '4'] and other_count[3].color == 'C3'
    assert [s.label for s in zhou_figures.select_series(table, uids=['a'])] == ['a']
    with pytest.raises(ValueError, match='--labels has 2 names for 3 runs'):
        zhou_figures.select_series(table, labels=['x', 'y'])


# ----------------------------------------------------------------------------------------
# figures (rendering replaced by the recorder)

def test_200_epochs_and_50000_samples_give_j_axes(tmp_path, recorder):
    table = zhou_figures.FIGURES['optim_mse']
    write_runs(str(tmp_path), [s.uid for s in table.series], epochs=200, num_samples=50000, full_last_only=True)
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs'])
    folder = os.path.join('figs', 'optim_mse')
    assert sorted(recorder.figures) == sorted(os.path.join(folder, name) for name in FILE_NAMES)
    nc1 = recorder.figures[os.path.join(folder, 'resnet18-NC1')]
    assert nc1['xticks'] == [0, 50, 100, 150, 200] and nc1['xlim'] == (0, 200)
    assert nc1['yticks'] == list(np.arange(-2, 6.01, 2)) and nc1['ylim'] == (-0.2, 6)
    assert nc1['ylabel'] == r'$\mathcal{NC}_1$' and nc1['xlabel'] == 'Epoch' and nc1['size'] == (10, 8)
    assert nc1['legend'] == ['SGD', 'Adam', 'LBFGS'] and nc1['legend_loc'] == 1     # J's loc=1
    assert [(c, m) for c, m, _, _ in nc1['lines']] == [('r', 'v'), ('b', 'o'), ('g', 's')]
    assert nc1['lines'][0][2] == list(range(1, 201)) and nc1['lines'][0][3][:2] == [1.0, 2.0]
    test_acc = recorder.figures[os.path.join(folder, 'resnet18-test-acc')]
    assert test_acc['yticks'] == list(np.arange(30, 80.1, 10)) and test_acc['ylim'] == (30, 80)
    assert test_acc['legend_loc'] == 4 and test_acc['ylabel'] == 'Testing accuracy'
    assert test_acc['lines'][2][3][-1] == 7200.0           # test_acc1 of epoch 200
    margin = recorder.figures[os.path.join(folder, 'c_margin_dist')]
    assert margin['xticks'] == [0, 10000, 20000, 30000, 40000, 50000] and margin['xlim'] == (0, 50000)
    assert margin['xlabel'] == 'Index' and len(margin['lines'][0][3]) == 50000
    part = recorder.figures[os.path.join(folder, 'c_margin_dist_part')]
    assert part['xticks'] == [0, 200, 400, 600, 800, 1000] and part['xlim'] == (0, 1000)
    assert len(part['lines'][1][3]) == 1000
    nuclear = recorder.figures[os.path.join(folder, 'resnet18-nuclear')]
    assert nuclear['ylabel'] == 'NF_metric' and all(len(line[3]) == 0 for line in nuclear['lines'])


def test_k_plot_nc2_legend_is_the_k_legend(tmp_path, recorder):
    table = zhou_figures.FIGURES['k_rmse']
    write_runs(str(tmp_path), [s.uid for s in table.series])
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs'])
    nc2 = recorder.figures[os.path.join('figs', 'k_rmse', 'resnet18-NC2')]
    assert nc2['legend'] == [r'$\alpha=1, M=1$', r'$\alpha=5, M=1$', r'$\alpha=15, M=1$', r'$\alpha=20, M=1$']
    assert nc2['legend_loc'] == 0                                  # 'best', J's default
    assert nc2['xticks'] == [0, 1, 2, 3, 4] and nc2['xlim'] == (0, 4)
    margin = recorder.figures[os.path.join('figs', 'k_rmse', 'c_margin_dist')]
    part = recorder.figures[os.path.join('figs', 'k_rmse', 'c_margin_dist_part')]
    assert margin['ylabel'] == 'Cos Margin Distribution' and part['ylabel'] == r'$\mathcal{P}_{CM}$'
    assert [line[1] for line in margin['lines']][3] == 'X' and [line[1] for line in part['lines']][3] == 'v'


def test_missing_run_is_reported_and_the_others_drawn(tmp_path, recorder, capsys):
    table = zhou_figures.FIGURES['dk_mse']
    uids = [s.uid for s in table.series]
    write_runs(str(tmp_path), uids[:2] + uids[3:])
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs'])
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'skipping run %s' % uids[2] in err
    assert os.path.join(uids[2], 'info.pkl') in err
    nc3 = recorder.figures[os.path.join('figs', 'dk_mse', 'resnet18-NC3')]
    assert nc3['legend'] == ['d=5', 'd=8', 'd=10', 'd=512']
    assert [line[0] for line in nc3['lines']] == ['c', 'b', 'r', 'purple']


def test_run_without_zhou_keys_is_skipped(tmp_path, recorder, capsys):
    table = zhou_figures.FIGURES['optim_mse']
    uids = [s.uid for s in table.series]
    write_runs(str(tmp_path), uids[1:])
    os.makedirs(tmp_path / uids[0])
    with open(tmp_path / uids[0] / 'info.pkl', 'wb') as f:
        pickle.dump({'NC1_collapse_metric': [1.0]}, f)
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs'])
    assert 'has no collapse_metric' in capsys.readouterr().err
    assert recorder.figures[os.path.join('figs', 'optim_mse', 'resnet18-NC1')]['legend'] == ['Adam', 'LBFGS']


def test_epochs_flag_and_validation_every_few_epochs(tmp_path, recorder):
    table = zhou_figures.FIGURES['etf_mse']
    write_runs(str(tmp_path), [s.uid + '_quick' for s in table.series], epochs=4, epoch_numbers=[5, 10, 15, 20])
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs', '--quick', '--epochs', '12'])
    nc4 = recorder.figures[os.path.join('figs', 'etf_mse', 'resnet18-NC4')]
    assert nc4['xlim'] == (0, 12) and nc4['lines'][0][2] == [5, 10] and nc4['lines'][0][3] == [3001.0, 3002.0]
    assert nc4['legend'][0] == 'learned classifier, d=512'
    margin = recorder.figures[os.path.join('figs', 'etf_mse', 'c_margin_dist')]
    assert margin['legend_loc'] == 4
    with open(tmp_path / (table.series[0].uid + '_quick') / 'info.pkl', 'rb') as f:
        epoch_10_margins = pickle.load(f)['all_cos_margin'][1]
    np.testing.assert_allclose(margin['lines'][0][3], epoch_10_margins)


def test_free_y_leaves_the_range_to_matplotlib(tmp_path, recorder):
    table = zhou_figures.FIGURES['optim_mse']
    write_runs(str(tmp_path), [s.uid for s in table.series])
    zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs', '--free_y'])
    nc2 = recorder.figures[os.path.join('figs', 'optim_mse', 'resnet18-NC2')]
    assert nc2['ylim'][1] > 1004                                  # J's range stops at 0.8


def test_five_scripts_never_share_an_output_path(tmp_path, recorder):
    for table in zhou_figures.FIGURES.values():
        write_runs(str(tmp_path), [s.uid for s in table.series], epochs=2, num_samples=8)
    written = []
    for table in zhou_figures.FIGURES.values():
        written += zhou_figures.main(table, ['--weights_dir', str(tmp_path), '--out_dir', 'figs'])
    assert len(written) == 5 * 20 and len(set(written)) == len(written)
    assert {p.split(os.sep)[1] for p in written} == set(SCRIPTS.values())


@pytest.mark.parametrize('argv, message', [
    (['--labels', 'one'], '--labels has 1 names for 3 runs'),
    (['--epochs', '0'], '--epochs must be at least 1'),
    (['--uids', 'a', '--quick'], 'not allowed with argument'),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        zhou_figures.main(zhou_figures.FIGURES['optim_mse'], argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# the scripts as a user runs them

def test_script_all_runs_missing_exits_2(tmp_path, script_runner):
    result = script_runner('plots/plot_M_rmse.py', '--weights_dir', 'nothing_here', cwd=str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.count('warning: skipping run') == 5
    assert 'none of the 5 runs has a readable info.pkl under nothing_here' in result.stderr.splitlines()[-1]
    assert not os.path.exists(tmp_path / 'figures')


def test_script_writes_valid_png_and_pdf(tmp_path, script_runner):
    uids = [s.uid for s in zhou_figures.FIGURES['k_rmse'].series]
    write_runs(str(tmp_path / 'model_weights'), uids[:3])
    result = script_runner('plots/plot_k_rmse.py', cwd=str(tmp_path))
    assert 'skipping run %s' % uids[3] in result.stderr
    assert '3 runs drawn: 10 figures in figures/k_rmse' in result.stdout
    folder = tmp_path / 'figures' / 'k_rmse'
    assert sorted(os.listdir(folder)) == sorted(n + ext for n in FILE_NAMES for ext in ('.pdf', '.png'))
    for name in FILE_NAMES:
        width, height = png_size(folder / (name + '.png'))
        assert 900 <= width <= 1400 and 750 <= height <= 1100, (name, width, height)   # 10 x 8 in, 120 dpi
        with open(folder / (name + '.pdf'), 'rb') as f:
            assert f.read(5) == PDF_MAGIC


@pytest.mark.slow
@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_every_script_renders_its_files(tmp_path, script_runner, script):
    for table in zhou_figures.FIGURES.values():
        write_runs(str(tmp_path / 'weights'), [s.uid for s in table.series], epochs=3, num_samples=20)
    script_runner(os.path.join('plots', script), '--weights_dir', 'weights', '--out_dir', 'out', cwd=str(tmp_path))
    folder = tmp_path / 'out' / SCRIPTS[script]
    assert sorted(os.listdir(tmp_path / 'out')) == [SCRIPTS[script]]
    for name in FILE_NAMES:
        assert png_size(folder / (name + '.png'))[0] > 900
        with open(folder / (name + '.pdf'), 'rb') as f:
            assert f.read(5) == PDF_MAGIC
