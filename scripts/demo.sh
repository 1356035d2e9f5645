#!/usr/bin/env bash
# make demo: Dang 2023's balanced MLP recipe on the bundled digits data: train, validate, plot.
set -euo pipefail
PYTHON="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; DEMO_DIR=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DEMO_DIR" && cd "$DEMO_DIR"
# The paper's command, except the three flags below (see README, "make demo").
FLAGS="--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --optimizer Adam --sep_decay"
DEMO_FLAGS="--lr 0.001 --batch_size 32 --epochs 100"
echo "demo: Dang 2023's MLP command with $DEMO_FLAGS instead of the paper's --lr 0.0001 --batch_size 128 --epochs 200:"
echo "      digits has 1,437 training images, 45 steps per epoch at batch 32 against 390 for CIFAR-10 at 128,"
echo "      so a larger step and a smaller batch reach the terminal phase in 4,500 steps instead of 78,000."
"$PYTHON" "$ROOT/train_1st_order.py" $FLAGS $DEMO_FLAGS
"$PYTHON" "$ROOT/validate_NC.py" $FLAGS $DEMO_FLAGS --every 10
RUN=$(ls -d model_weights/digits-MLP-MSE-Adam-width_512-*lr_0.001*epochs_100-seed_1)
"$PYTHON" "$ROOT/plots/plot_nc.py" "$RUN/info.pkl" --labels "D23 MLP on digits" --out_dir figures --name demo_nc
echo "demo finished: checkpoints and info.pkl in $DEMO_DIR/$RUN, figure $DEMO_DIR/figures/demo_nc.png"
