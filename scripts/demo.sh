#!/usr/bin/env bash
# make demo: Dang 2023's balanced MLP command on the bundled digits data: train, validate, plot.
set -euo pipefail
PYTHON="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; DEMO_DIR=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DEMO_DIR" && cd "$DEMO_DIR"
FLAGS="--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay --epochs 200"
"$PYTHON" "$ROOT/train_1st_order.py" $FLAGS
"$PYTHON" "$ROOT/validate_NC.py" $FLAGS --every 10
RUN=$(ls -d model_weights/digits-MLP-MSE-Adam-width_512-*epochs_200-seed_1)
"$PYTHON" "$ROOT/plots/plot_nc.py" "$RUN/info.pkl" --labels "D23 MLP on digits" --out_dir figures --name demo_nc
echo "demo finished: checkpoints and info.pkl in $DEMO_DIR/$RUN, figure $DEMO_DIR/figures/demo_nc.png"
