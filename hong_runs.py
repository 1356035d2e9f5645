"""What the Hong & Ling 2023 commands share beyond their flags (hong_args.py): the rendered
imbalanced training set, one trained model per setting through the project's training loop, the
sweeps with their convex-program reference, the minority figures and the scripts' JSON records.
Training as Hong's train_utils.py loops do it, the offline stand-in and --quick: docs/hong.md.
"""
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

import datasets
import models
from args import output_path
from hong_args import LEARNING_RATE, PAPER_WIDTH, describe_settings
from nc_repro import checkpoints, convex_ufm, losses, nc_curves, safe_load, theory, training
from nc_repro.errors import UsageError
from nc_repro.fileio import atomic_write_text, write_json
from nc_repro.hong_analysis import (BATCH_SIZE, NUM_CLASSES, SCORE_DEFINITION, SMALL_SCORE, class_statistics,
                                    collapse_prediction, effective_lr_factor, final_weights_file,
                                    lambdas_for_level, logit_matrix, minority_collapse_score,
                                    minority_collapse_threshold, only_final, save_logits)
from plots import hong_figures as plot_hong

MOMENTUM = 0.9


# ----------------------------------------------------------------------------------------
# folder names

def dataset_suffix(args):
    """'' for cifar10 (the original folder names), else '_<dataset>' (the original's folders and
    caches did not name the dataset, Hong-B8), plus ``network_suffix``."""
    suffix = '' if args.dataset_t == 'cifar10' else '_' + args.dataset_t
    return suffix + network_suffix(args)


def network_suffix(args):
    """'_width=<k>' for a non-paper ResNet width; '_width=<w>_depth=<d>[_pool=<p>]' for the MLP."""
    if args.network == 'MLP':
        return '_width=%d_depth=%d%s' % (args.width, args.depth, '_pool=%d' % args.pool if args.pool > 1 else '')
    if args.width != PAPER_WIDTH and args.network.startswith('ResNet'):
        return '_width=%d' % args.width
    return ''


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------
# data and training

def rendered_data(args, counts, cache_stem, device):
    """The imbalanced training set (train split first, test split to top up, as Hong's utils.save_train_data) on the
    device. Indices are cached in <output_root>/data/<stem>_<dataset>.pt and reused only for the same request."""
    bundle = datasets.hong_dataset(args.dataset_t, args.data_dir)
    cache = os.path.join(ensure_dir(output_path(args, 'data')), '%s_%s.pt' % (cache_stem, args.dataset_t))
    data = datasets.hong_training_set(bundle, counts, cache)
    found = torch.bincount(data.labels, minlength=NUM_CLASSES).tolist()
    print('class counts: %s (N = %d)' % (found, sum(found)))
    return data.to(device)


def build_network(args, in_channels, device):
    return models.build_hong_model(args.network, in_channels, NUM_CLASSES, args.width, args.depth,
                                   args.pool).to(device)


def train_model(args, data, lambdas, weight_decay, loop, save_dir, save_rule, checkpoint_file, device):
    """One model for one setting through training.fit, or the one already trained there.

    The model is built first, as the original does, so a skipped setting still draws its
    initialisation from the RNG and later settings get the same weights as in a full run.
    A folder trained with other settings is an error rather than silently reused (the original
    reused anything with the right file name); an interrupted run with the same settings resumes."""
    model = build_network(args, data.images.shape[1], device)
    loader_seed = int(torch.randint(0, 2 ** 62, (1,)))       # from the global RNG, as the shuffles were
    settings = {'dataset_t': args.dataset_t, 'network': args.network, 'width': args.width,
                'epoch': args.epoch, 'counts': torch.bincount(data.labels.cpu(), minlength=NUM_CLASSES).tolist(),
                'lambda_H': lambdas[0], 'lambda_W': lambdas[1], 'lambda_b': lambdas[2],
                'weight_decay': weight_decay, 'loop': loop}
    # recorded only where they differ from the paper, so folders of earlier runs stay valid
    if args.network == 'MLP':
        settings.update(depth=args.depth, pool=args.pool)
    if args.lr != LEARNING_RATE:
        settings['lr'] = args.lr
    if args.batch_size != BATCH_SIZE:
        settings['batch_size'] = args.batch_size
    settings_path = os.path.join(save_dir, 'settings.json')
    final = checkpoint_file(save_dir, args.epoch)
    if os.path.exists(settings_path):
        with open(settings_path) as f:
            previous = json.load(f)
        if previous != settings:
            changed = sorted(key for key in settings if previous.get(key) != settings[key])
            raise UsageError('%s holds a model trained with other settings (%s differ); delete the '
                             'folder or run elsewhere' % (save_dir, ', '.join(changed)))
    if os.path.exists(final):
        model.load_state_dict(safe_load.load_torch(final, device))
        print('trained model found: %s' % final)
        return model
    ensure_dir(save_dir)
    checkpoints.lock_run_dir(save_dir)           # one writer per folder; training.fit releases it
    atomic_write_text(settings_path, json.dumps(settings, indent=1) + '\n')
    print('lambda_H = %.4g, lambda_W = %.4g, lambda_b = %.4g, weight decay %g -> %s'
          % (lambdas + (weight_decay, save_dir)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=MOMENTUM,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, effective_lr_factor(loop, args.epoch))
    objective = losses.HongObjective(*lambdas, num_train=len(data),
                                     warm_epochs=int(args.epoch / 6) if loop == 'warm' else 0)
    loader = datasets.BatchLoader(data, args.batch_size, shuffle=True, merge_single=True,
                                  generator=torch.Generator().manual_seed(loader_seed))
    curves = nc_curves.make_curves(args.nc_every, args.tensorboard, 'hong2023', run_name=os.path.relpath(save_dir, args.output_root))
    training.fit(model, loader, objective, optimizer, scheduler, save_dir, args.epoch,
                 save_rule=save_rule, checkpoint_file=checkpoint_file,
                 resume=os.path.exists(os.path.join(save_dir, 'resume.pth')), resume_flag=False, curves=curves)
    return model


# ----------------------------------------------------------------------------------------
# the sweep scripts (minority_l, minority_n, limit)

@dataclass
class Setting:
    """One point of a sweep: the swept flag value as given, the class counts and nuclear-norm
    level actually used (after the offline rescaling), and where its model and data go."""
    value: float
    counts: list
    level: float
    save_dir: str
    cache_stem: str
    train_accuracy: float = None      # filled in by run_sweep


def run_sweep(args, settings, loop, weight_decay, device):
    """Train (or reload) one network per setting, in the order given, after seeding the global
    RNG once (seed 666, as Hong's sweep scripts): each model's initialisation depends on the settings before it.
    Saves z_data.npy / b_data.npy per setting; returns the pre = M W^T matrices."""
    training.set_seed(args.seed)
    matrices = []
    for setting in settings:
        print('\n== %s: %s' % (setting.save_dir, collapse_prediction(setting.counts, setting.level)))
        data = rendered_data(args, setting.counts, setting.cache_stem, device)
        model = train_model(args, data, lambdas_for_level(setting.level, args.reg_b), weight_decay, loop,
                            setting.save_dir, only_final, final_weights_file, device)
        stats, setting.train_accuracy = class_statistics(model, data, device, with_accuracy=True)
        pre = logit_matrix(model, stats)
        save_logits(setting.save_dir, pre, model.classifier_bias().float().numpy())
        matrices.append(pre)
    return matrices


def convex_reference(args, settings):
    """The convex UFM program (docs/papers.md, Hong & Ling 2023) solved for each setting's counts and level, in the
    pre orientation (rows = classes, = Z_cvx^T), or None with --no_convex."""
    if args.no_convex:
        return None
    solutions = []
    for setting in settings:
        solution = convex_ufm.solve_ufm_program(setting.counts, setting.level, args.reg_b, solver=args.solver)
        solutions.append(solution['Z'].T)
    return solutions


def minority_figures(args, settings, matrices, ka, title, stem, xlabel, thresholds, log_x=False, record=None):
    """The 2 x 5 heatmaps (Figs. 5-8), the collapse-score curve with the thresholds, and
    <stem>.json (``minority_record``; ``record`` adds script-specific keys)."""
    minority = [minority_collapse_threshold(s.counts, ka) for s in settings]
    collapsed = [s.level >= threshold for s, threshold in zip(settings, minority)]
    note = 'red frame: theory predicts minority collapse (l >= sqrt(n_B)/N)'
    paths = plot_hong.sweep_heatmaps(matrices, [s.value for s in settings], ka, title,
                                     stem + '_z_comparison_plot', collapsed, note)
    convex = convex_reference(args, settings)
    scores = [minority_collapse_score(pre, ka) for pre in matrices]
    convex_scores = None if convex is None else [minority_collapse_score(pre, ka) for pre in convex]
    for setting, score, reference in zip(settings, scores, convex_scores or [None] * len(settings)):
        print('%s: minority spread %.4g%s' % (setting.value, score,
                                              '' if reference is None else ' (convex program: %.4g)' % reference))
    paths += plot_hong.collapse_score_curve([s.value for s in settings], scores, xlabel, stem + '_collapse_score',
                                            thresholds, convex_scores, log_x, small=SMALL_SCORE)
    summary = minority_record(args, settings, ka, scores, convex_scores, matrices, convex)
    summary.update(record or {})
    summary['thresholds_in_swept_units'] = {label: value for value, label in thresholds}
    write_record(stem, summary)
    print('network: small spread (< %g) exactly where theory predicts minority collapse: %s; convex '
          'program: %s' % (SMALL_SCORE, summary['network_matches_theory'], summary['convex_matches_theory']))
    print('figures: %s; record: %s.json' % (', '.join(paths), stem))
    return summary


def minority_record(args, settings, ka, scores, convex_scores, matrices, convex):
    """The JSON record of a minority sweep: per point the counts and level used, the minority-
    collapse level sqrt(n_B)/N and the total-collapse level (both in the units of the level),
    what theory predicts there, and the network's and the convex program's scores; a score
    below SMALL_SCORE counts as collapsed. ``*_matches_theory``: small exactly where theory
    predicts minority collapse (None without the convex program)."""
    points = []
    for index, setting in enumerate(settings):
        threshold = minority_collapse_threshold(setting.counts, ka)
        total = theory.hong_total_collapse_threshold(setting.counts)
        convex_score = None if convex_scores is None else convex_scores[index]
        points.append({
            'value': setting.value, 'class_counts': list(setting.counts), 'N': int(sum(setting.counts)),
            'level': setting.level, 'minority_threshold': threshold, 'level_over_threshold': setting.level / threshold,
            'predicts_minority_collapse': bool(setting.level >= threshold),
            'total_collapse_level': total, 'predicts_total_collapse': bool(setting.level >= total),
            'network_score': scores[index], 'network_small': bool(scores[index] < SMALL_SCORE),
            'convex_score': convex_score,
            'convex_small': None if convex_score is None else bool(convex_score < SMALL_SCORE),
            'train_accuracy': setting.train_accuracy,
            'network_logits_pre': np.asarray(matrices[index]).tolist(),
            'convex_logits_pre': None if convex is None else np.asarray(convex[index]).tolist()})

    def matches(key):
        if any(point[key] is None for point in points):
            return None
        return all(point[key] == point['predicts_minority_collapse'] for point in points)

    def extreme(key, collapsed, pick):
        values = [p[key] for p in points if p['predicts_minority_collapse'] == collapsed and p[key] is not None]
        return pick(values) if values else None

    return {'settings': describe_settings(args, echo=False), 'quick': bool(args.quick), 'ka': ka,
            'values': [s.value for s in settings], 'small_cutoff': SMALL_SCORE, 'score_definition': SCORE_DEFINITION,
            'points': points,
            'network_matches_theory': matches('network_small'), 'convex_matches_theory': matches('convex_small'),
            'network_min_score_not_collapsed': extreme('network_score', False, min),
            'network_max_score_collapsed': extreme('network_score', True, max),
            'convex_min_score_not_collapsed': extreme('convex_score', False, min),
            'convex_max_score_collapsed': extreme('convex_score', True, max)}


# ----------------------------------------------------------------------------------------
# the JSON records (keys in each script's docstring)

def record_start(script, settings_line, args):
    """The keys block_main's record opens with: script, settings (describe_settings' line), quick."""
    return {'script': script, 'settings': settings_line, 'quick': bool(args.quick)}


def write_record(stem, record):
    """<stem>.json next to the figures of the same stem (fileio.write_json: atomic, non-finite
    floats as null under ``non_finite``); returns the path."""
    path = stem + '.json'
    write_json(path, record)
    return path
