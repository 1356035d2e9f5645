"""make demo: Dang 2023's balanced MLP recipe on the bundled digits data: train, validate, plot.

  python demo.py [--out_dir demo_run]

The paper's command (README, Dang et al. 2023) with three flags changed, --lr 0.001
--batch_size 32 --epochs 100 instead of --lr 0.0001 --batch_size 128 --epochs 200: digits has
1,438 training images, 45 steps per epoch at batch 32 against 391 for CIFAR-10 at 128, so a
larger step and a smaller batch reach the terminal phase in 4,500 steps instead of 78,200.
Each step is the project's own command, run as a user would from --out_dir.
"""
import argparse
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
PAPER_FLAGS = ('--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE '
               '--optimizer Adam --sep_decay').split()
DEMO_FLAGS = '--lr 0.001 --batch_size 32 --epochs 100'.split()


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out_dir', default='demo_run', help='where the run and the figure go (default demo_run/)')
    return parser


def run(script, *flags):
    subprocess.run([sys.executable, os.path.join(ROOT, script)] + list(flags), check=True)


def main(args):
    os.makedirs(args.out_dir, exist_ok=True)
    os.chdir(args.out_dir)
    print("demo: Dang 2023's MLP command with %s instead of the paper's --lr 0.0001 --batch_size 128 "
          "--epochs 200:" % ' '.join(DEMO_FLAGS))
    print('      digits has 1,438 training images, 45 steps per epoch at batch 32 against 391 for CIFAR-10 at 128,')
    print('      so a larger step and a smaller batch reach the terminal phase in 4,500 steps instead of 78,200.')
    run('train_1st_order.py', *PAPER_FLAGS, *DEMO_FLAGS)
    run('validate_NC.py', *PAPER_FLAGS, *DEMO_FLAGS, '--every', '10')
    run_dir, = glob.glob('model_weights/digits-MLP-MSE-Adam-width_512-*lr_0.001*epochs_100-seed_1')
    run('plots/plot_nc.py', os.path.join(run_dir, 'info.pkl'), '--labels', 'D23 MLP on digits',
        '--out_dir', 'figures', '--name', 'demo_nc')
    print('demo finished: checkpoints and info.pkl in %s, figure %s'
          % (os.path.join(args.out_dir, run_dir), os.path.join(args.out_dir, 'figures', 'demo_nc.png')))


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except subprocess.CalledProcessError as error:
        sys.exit('demo: %s failed with exit code %d' % (os.path.basename(error.cmd[1]), error.returncode))
