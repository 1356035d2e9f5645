"""Every command printed in the papers' READMEs, as printed, is a command of README.md.

PRINTED below is the papers' READMEs as printed, written out in full: shell continuation
lines joined, the prompt (`$ `) dropped, placeholders (`<...>`) kept as the papers wrote them.
README.md's commands are read with tests/test_readme_commands.py's parser, so both sides
are compared as (script, argument list), which normalises whitespace. A printed command
matches a README command when the script and every argument agree, in order, except that:

- a printed placeholder `<...>` stands for one argument of the README's choice, and a
  placeholder of the form `<a or b>` for one of those choices (the README fills them in,
  with its own documented `<name>` placeholder for the run name and `model_weights/<name>/`
  for the path to it);
- the `CUDA_VISIBLE_DEVICES=0 ` prefix is optional on either side (the README notes that it is
  harmless without a GPU, and the parser drops it).

Flag order counts: a command with the same flags in another order is not the printed one."""
import re
import shlex

import pytest

from test_readme_commands import PREFIX, readme_commands

PRINTED = {
    'Zhou et al. 2022': [
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer SGD --batch_size 256 --lr 0.05',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer Adam --batch_size 64 --lr 0.001',
        'python train_2nd_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer LBFGS --lr 0.1 --history_size 10 --batch_size 2048',
        'python validate_NC.py --gpu_id 0 --dataset <mnist or cifar10> --batch_size 256 '
        '--load_path <path to the uid name>',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset cifar10_random '
        '--optimizer SGD --batch_size 64 --lr 0.01 --model <MLP or ResNet18_adapt> '
        '--width <specify width for model> --depth <specify depth for MLP> --weight_decay 1e-4',
        'python validate_NC.py --gpu_id 0 --dataset cifar10_random --batch_size 1000 '
        '--load_path <path to the uid name> --model <MLP or ResNet18_adapt> '
        '--width <specify width for model> --depth <specify depth for MLP>',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer SGD --batch_size 64 --lr 0.05 --model <specify model> '
        '--weight_decay <specify weight decay> --sep_decay --feature_decay_rate <specify weight decay on features>',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer SGD --lr 0.05 --ETF',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer SGD --lr 0.05 --fixdim 10',
        'python train_1st_order.py --gpu_id 0 --uid <saving directory name> --dataset <mnist or cifar10> '
        '--optimizer SGD --lr 0.05 --SOTA',
        # The README also prints `python plot.py`, a script of Zhu et al. 2021 that Zhou's code does
        # not ship; its figures are drawn by the plots/plot_*_mse.py and plot_*_rmse.py scripts.
    ],
    'Dang et al. 2023': [
        'CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --model MLP --dataset cifar10 '
        '--depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
        '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay',
        'CUDA_VISIBLE_DEVICES=0 python validate_NC.py --model MLP --dataset cifar10 '
        '--depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
        '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay',
        'CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --model ResNet18 --dataset cifar10 '
        '--depth_linear 1 --width 512 --seed 1',
        'CUDA_VISIBLE_DEVICES=0 python validate_NC.py --model ResNet18 --dataset cifar10 '
        '--depth_linear 1 --width 512 --seed 1',
        'CUDA_VISIBLE_DEVICES=0 python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1',
        'CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model MLP --dataset cifar10 '
        '--depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias '
        '--loss MSE --lr 0.0001 --weight_decay 0.00001 --optimizer Adam --sep_decay  --epochs 12000 --patience 6000',
        'CUDA_VISIBLE_DEVICES=0 python validate_NC_unbalanced.py --model MLP --dataset cifar10 '
        '--depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias '
        '--loss MSE --lr 0.0001 --weight_decay 0.00001 --optimizer Adam --sep_decay  --epochs 12000 --patience 6000',
        'CUDA_VISIBLE_DEVICES=0 python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 '
        '--depth_linear 1',
    ],
    'Dang et al. 2024': [
        'CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model MLP '
        '--no-bias --dataset cifar10 --depth_relu 6 --depth_linear 1 '
        '--width 1024 --seed 1 --sep_decay --batch_size 256 '
        '--feature_decay_rate 0.00001 --loss CrossEntropy --lr 0.0001 '
        '--weight_decay 0.0001 --optimizer Adam --epochs 4000 --patience 2000',
        'CUDA_VISIBLE_DEVICES=0 python validate_NC_unbalanced.py --model MLP '
        '--no-bias --dataset cifar10 --depth_relu 6 --depth_linear 1 '
        '--width 1024 --seed 1 --sep_decay --batch_size 256 '
        '--feature_decay_rate 0.00001 --loss CrossEntropy --lr 0.0001 '
        '--weight_decay 0.0001 --optimizer Adam --epochs 4000 --patience 2000',
        # Printed twice, identically.
        'CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model ResNet18 '
        '--no-bias --dataset cifar10 --depth_relu 6 --depth_linear 1 '
        '--width 1024 --seed 1 --sep_decay --batch_size 32 '
        '--feature_decay_rate 0.00001 --loss CrossEntropy --lr 0.0001 '
        '--weight_decay 0.0001 --optimizer Adam --epochs 4000 --patience 2000',
    ],
    'Hong & Ling 2023': [
        'python block_main.py --dataset_t cifar10 --structure 1 --network ResNet18',
        'python minority_l_main.py --ka 5 --reg_z_l 0.0027 0.0030 0.0033 0.0039 0.0045 0.0051 0.0057 0.0063 0.0069 0.0075',
        'python minority_l_main.py --ka 3 --reg_z_l 0.0037 0.0041 0.0045 0.0053 0.0062 0.0070 0.0078 0.0086 0.0094 0.0102',
        'python minority_n_main.py --ka 5 --nalist 100 200 300 400 600 800 1000 1100 1200 1400',
        'python minority_n_main.py --ka 3 --nalist 100 400 450 500 700 1000 1600 2200 2500 2800',
        'python limit_main.py --nalist 500 1000 1500 2000 2500 3000 3500 4000 4500 5000 5500',
        'python opt_main.py --cluster_s 3 3 4 --sample_s 5000 4000 3000 --reg_z 0.005 --reg_b 0.01',
    ],
}

README = readme_commands()
PLACEHOLDER = re.compile(r'^<([^<>]*)>$')


def printed_command(line):
    """(script, argv) of a printed line; a `<...>` placeholder, spaces and all, is one argument."""
    match = PREFIX.match(line.strip())
    assert match, line
    return match.group(2), re.findall(r'\S*<[^<>]*>\S*|\S+', match.group(3))


def argument_matches(printed, readme):
    placeholder = PLACEHOLDER.match(printed)
    if placeholder is None:
        return printed == readme
    choices = placeholder.group(1).split(' or ')
    return len(choices) == 1 or readme in choices


def matches(printed, readme):
    (script, argv), (readme_script, readme_argv) = printed, readme
    return (script == readme_script and len(argv) == len(readme_argv)
            and all(argument_matches(p, r) for p, r in zip(argv, readme_argv)))


def closest(printed):
    """The README command of the same script that shares most arguments with a printed one."""
    script, argv = printed
    same_script = [a for s, a in README if s == script]
    if not same_script:
        return 'README.md has no command of %s' % script
    best = max(same_script, key=lambda a: len(set(a) & set(argv)))
    line = 'closest README command: %s %s' % (script, ' '.join(shlex.quote(a) for a in best))
    literal = [a for a in argv if not PLACEHOLDER.match(a)]
    if sorted(literal) == sorted(best):
        line += ' (the same arguments in another order)'
    return line


@pytest.mark.parametrize('paper', sorted(PRINTED))
def test_readme_prints_the_papers_commands_verbatim(paper):
    missing = []
    for line in PRINTED[paper]:
        printed = printed_command(line)
        if not any(matches(printed, readme) for readme in README):
            missing.append('%s\n    %s' % (' '.join(line.split()), closest(printed)))
    assert not missing, '%s: %d printed command(s) not in README.md:\n%s' % (
        paper, len(missing), '\n'.join(missing))


def test_placeholders_parse_as_one_argument():
    script, argv = printed_command(PRINTED['Zhou et al. 2022'][3])
    assert script == 'validate_NC.py' and argv[-1] == '<path to the uid name>'
    assert matches(printed_command('python a.py --dataset <mnist or cifar10> --uid <x y>'),
                   ('a.py', ['--dataset', 'cifar10', '--uid', 'readme']))
    assert not matches(printed_command('python a.py --dataset <mnist or cifar10>'), ('a.py', ['--dataset', 'digits']))


def test_readme_2024_commands_use_width_1024():
    """The README's 2024 commands (cross-entropy, imbalanced) read --width 1024, the MLP with
    --batch_size 256 and the ResNet18 with --batch_size 32."""
    def flag(argv, name):
        return argv[argv.index(name) + 1] if name in argv else None

    d24 = [argv for script, argv in README if script.endswith('_unbalanced.py') and 'CrossEntropy' in argv]
    assert any(flag(argv, '--model') == 'MLP' for argv in d24), d24
    assert any(flag(argv, '--model') == 'ResNet18' for argv in d24), d24
    for argv in d24:
        assert flag(argv, '--width') == '1024', ' '.join(argv)
        assert flag(argv, '--batch_size') == {'MLP': '256', 'ResNet18': '32'}[flag(argv, '--model')], ' '.join(argv)
