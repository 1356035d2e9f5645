"""Behaviour check for refactors: run the same small set of commands in two checkouts and compare
every info.pkl byte for byte and every JSON output value for value.

    python bench/same_outputs.py --before 167c487          # a git revision, checked out in a worktree
    python bench/same_outputs.py --before /path/to/checkout
    python bench/same_outputs.py --before /work/main --added_keys per_class CDNV_matrix  # new keys only

The set: the `make demo` run (train, validate), and one short run of each paper's trainer and
validator (Zhou 2022 first- and second-order, Dang 2023 imbalanced and synthetic, Dang 2024
cross-entropy), Hong & Ling's block_main.py --quick and opt_main.py. Each command runs from an
empty folder; files are matched by their path below that folder, with Hong's output root
(hong_results/) stripped, so a change of where outputs land is not a change of what they hold.
Wall-clock fields (seconds, pid, host, dates) are the only values left out of the comparison.
Exit status 1 when anything differs, with one line per difference.
"""
import argparse
import glob
import json
import os
import pickle
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = ('--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE '
        '--optimizer Adam --sep_decay --lr 0.001 --batch_size 32 --epochs 100')
D24 = ('--model MLP --no-bias --dataset digits --depth_relu 6 --depth_linear 1 --width 1024 --seed 1 --sep_decay '
       '--batch_size 256 --feature_decay_rate 0.00001 --loss CrossEntropy --lr 0.0001 --weight_decay 0.0001 '
       '--optimizer Adam --epochs 3 --patience 2000')
D23_IMBALANCED = ('--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias '
                  '--loss MSE --lr 0.0001 --weight_decay 0.00001 --optimizer Adam --sep_decay --epochs 3 '
                  '--patience 6000')
# (name, [(script, flags), ...]): each group runs in its own empty folder, in order.
GROUPS = [
    ('demo', [('train_1st_order.py', DEMO), ('validate_NC.py', DEMO + ' --every 10')]),
    ('zhou2022_sgd', [
        ('train_1st_order.py', '--gpu_id 0 --uid z --dataset digits --optimizer SGD --batch_size 256 --lr 0.05 '
                               '--epochs 2 --sample_size 2'),
        ('validate_NC.py', '--gpu_id 0 --dataset digits --batch_size 256 --load_path model_weights/z/ '
                           '--epochs 2 --sample_size 2')]),
    ('zhou2022_lbfgs', [
        ('train_2nd_order.py', '--gpu_id 0 --uid l --dataset digits --optimizer LBFGS --lr 0.1 --history_size 10 '
                               '--batch_size 2048 --epochs 1 --sample_size 2'),
        ('validate_NC.py', '--gpu_id 0 --dataset digits --batch_size 256 --load_path model_weights/l/ '
                           '--epochs 1 --sample_size 2')]),
    ('zhou2022_etf_mlp', [
        ('train_1st_order.py', '--uid e --dataset digits --optimizer SGD --lr 0.05 --ETF --model MLP --width 64 '
                               '--depth 3 --epochs 3'),
        ('validate_NC.py', '--dataset digits --load_path model_weights/e/ --model MLP --width 64 --depth 3 '
                           '--epochs 3 --ETF')]),
    ('dang2023_imbalanced', [('train_1st_order_unbalanced.py', D23_IMBALANCED),
                             ('validate_NC_unbalanced.py', D23_IMBALANCED)]),
    ('dang2023_synthetic', [
        ('synthetic_experiment_balanced.py', '--hidden 64 --num_iteration 200 --lr 0.1 --log_every 50'),
        ('synthetic_experiment_imbalanced.py', '--hidden 256 --num_iteration 200 --depth_linear 3 --log_every 50')]),
    ('dang2024', [('train_1st_order_unbalanced.py', D24), ('validate_NC_unbalanced.py', D24)]),
    ('hong2023', [('block_main.py', '--quick --epoch 20'),
                  ('block_main.py', '--dataset_t digits --epoch 1 --width 4 --seed 1'),   # unseeded as the original without --seed
                  ('opt_main.py', '--cluster_s 3 3 4 --sample_s 5000 4000 3000 --reg_z 0.005 --reg_b 0.01')]),
]
VOLATILE = {'seconds', 'iterations_per_second', 'pid', 'host', 'started', 'finished', 'time', 'date', 'wall_s', 'elapsed', 'slurm_job',
            'data_dir', 'load_path_resolved'}
OUTPUT_ROOT = 'hong_results' + os.sep


def run_groups(tree, work, names):
    env = dict(os.environ, PYTHONHASHSEED='0', CUDA_VISIBLE_DEVICES='0', OMP_NUM_THREADS='2')
    for name, commands in GROUPS:
        if names and name not in names:
            continue
        folder = os.path.join(work, name)
        os.makedirs(folder, exist_ok=True)
        for script, flags in commands:
            result = subprocess.run([sys.executable, os.path.join(tree, script)] + flags.split(), cwd=folder,
                                    env=env, capture_output=True, text=True)
            if result.returncode:
                sys.exit('%s: %s %s failed:\n%s' % (tree, script, flags, result.stderr[-2000:]))
        print('  %-22s done' % name, flush=True)


def outputs(work):
    """{relative path: file} of every info.pkl and JSON output below ``work``."""
    found = {}
    for pattern in ('info.pkl', '*.json', '*.jsonl'):
        for path in glob.glob(os.path.join(work, '**', pattern), recursive=True):
            relative = os.path.relpath(path, work)
            group, rest = relative.split(os.sep, 1)
            found[os.path.join(group, rest[len(OUTPUT_ROOT):] if rest.startswith(OUTPUT_ROOT) else rest)] = path
    return found


def without_volatile(value):
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


def read_json(path):
    with open(path) as f:
        if path.endswith('.jsonl'):
            return [without_volatile(json.loads(line)) for line in f if line.strip()]
        return without_volatile(json.load(f))


def first_difference(before, after, where=''):
    """The key path of the first value that differs, or None."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in list(before) + [k for k in after if k not in before]:
            if key not in before or key not in after:
                return '%s.%s (only %s)' % (where, key, 'before' if key in before else 'after')
            found = first_difference(before[key], after[key], '%s.%s' % (where, key))
            if found:
                return found
        return None
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (a, b) in enumerate(zip(before, after)):
            found = first_difference(a, b, '%s[%d]' % (where, index))
            if found:
                return found
        return None
    return None if before == after else '%s: %r -> %r' % (where or 'value', before, after)


def pickle_difference(before_path, after_path, added_keys):
    """None when the 'after' info.pkl holds every 'before' key with a byte-identical value, in
    the same order, and nothing else than ``added_keys``; otherwise the first difference."""
    with open(before_path, 'rb') as f_before, open(after_path, 'rb') as f_after:
        before, after = pickle.load(f_before), pickle.load(f_after)
    extra = [key for key in after if key not in before]
    if [key for key in after if key in before] != list(before):
        return 'keys %s -> %s' % (list(before), list(after))
    if set(extra) - set(added_keys):
        return 'keys not allowed: %s' % sorted(set(extra) - set(added_keys))
    for key in before:
        if pickle.dumps(before[key]) != pickle.dumps(after[key]):
            return '.%s' % key
    return None


def compare(before, after, added_keys=()):
    differences = []
    for relative in sorted(set(before) | set(after)):
        if relative not in before or relative not in after:
            differences.append('%s: only %s' % (relative, 'before' if relative in before else 'after'))
            continue
        if relative.endswith('info.pkl'):
            with open(before[relative], 'rb') as f_before, open(after[relative], 'rb') as f_after:
                same = f_before.read() == f_after.read()
            if not same and added_keys:
                found = pickle_difference(before[relative], after[relative], added_keys)
                same = found is None
        elif os.path.basename(relative) in ('args.json', 'run.json'):
            continue        # the run's own flags and launcher record: paths and dates of this machine
        else:
            after_values = read_json(after[relative])
            if isinstance(after_values, dict):
                after_values = {k: v for k, v in after_values.items() if k not in added_keys}
            found = first_difference(read_json(before[relative]), after_values)
            same = found is None
        if not same:
            differences.append('%s: differs%s' % (relative, ' at ' + found if found else ''))
    return differences


def checkout(before, scratch):
    if os.path.isdir(before):
        return os.path.abspath(before)
    tree = os.path.join(scratch, 'before_tree')
    subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach', tree, before], check=True,
                   capture_output=True)
    return tree


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--before', required=True, help='a git revision or a checkout folder to compare with')
    parser.add_argument('--after', default=ROOT, help='the checkout to check (default: this one)')
    parser.add_argument('--keep_before', default=None,
                        help="keep the 'before' outputs in this folder and reuse them on the next call")
    parser.add_argument('--groups', nargs='*', default=[], choices=[name for name, _ in GROUPS],
                        help='run only these groups (default: all)')
    parser.add_argument('--added_keys', nargs='*', default=[],
                        help='top-level info keys the after checkout may add (every other key and value '
                             'must stay byte-identical)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='same_outputs_') as scratch:
        before_tree = checkout(args.before, scratch)
        try:
            results = {}
            for label, tree in (('before', before_tree), ('after', os.path.abspath(args.after))):
                work = os.path.join(scratch, label)
                if label == 'before' and args.keep_before:
                    work = os.path.abspath(args.keep_before)
                    if os.path.isdir(work):
                        print('before: reusing %s' % work)
                        results[label] = outputs(work)
                        continue
                print('%s: %s' % (label, tree), flush=True)
                run_groups(tree, work, args.groups)
                results[label] = outputs(work)
        finally:
            if before_tree.startswith(scratch):
                subprocess.run(['git', '-C', ROOT, 'worktree', 'remove', '--force', before_tree], check=False)
        differences = compare(results['before'], results['after'], args.added_keys)
        pickles = sum(path.endswith('info.pkl') for path in results['after'])
        print('compared %d files (%d info.pkl byte for byte, %d JSON value for value): %d differ'
              % (len(results['after']), pickles, len(results['after']) - pickles, len(differences)))
        for line in differences:
            print('  ' + line)
        sys.exit(1 if differences else 0)


if __name__ == '__main__':
    main()
