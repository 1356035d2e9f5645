#!/usr/bin/env bash
# make demo: Dang 2023's balanced MLP command on the bundled digits data.
set -euo pipefail
PYTHON=$(realpath "$1"); DEMO_DIR=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DEMO_DIR" && cd "$DEMO_DIR"
FLAGS="--model MLP --dataset digits --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay"
"$PYTHON" "$ROOT/train_1st_order.py" $FLAGS --epochs 200
