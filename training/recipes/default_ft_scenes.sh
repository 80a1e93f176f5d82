#!/usr/bin/env bash
# Second stage of the default model: fine-tune the 25-epoch default run (runs/default-mnv2/best.pth) at the full
# 320 input (no crops: whole-scene context and the inference-time batch statistics) with PASCAL VOC scenes shown
# twice per epoch, low-LR cosine restart and weight EMA. About 8 min/epoch on 2 CPU cores; resumable.
#   RUN_DIR=runs/default-ft bash training/recipes/default_ft_scenes.sh
# INIT, RUN_DIR, EPOCHS and LR override the starting weights, run folder, schedule and peak learning rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
INIT=${INIT:-runs/default-mnv2/best.pth}
RUN_DIR=${RUN_DIR:-runs/default-ft}
RESUME=()
[ -f "$RUN_DIR/last.pth" ] && RESUME=(--resume "$RUN_DIR/last.pth")
.venv/bin/segedge train --data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" \
  --out "$RUN_DIR" --init "$INIT" --size 320 --crop 320 --repeat voc=2 \
  --epochs "${EPOCHS:-7}" --batch-size 8 --lr "${LR:-2e-4}" --ema 0.999 --workers 1 --threads 2 "${RESUME[@]}"
