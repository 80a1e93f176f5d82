#!/usr/bin/env bash
# Second stage of the fast model: fine-tune runs/fast/best.pth on whole 224x224 images (no crops: whole-scene context
# and the inference-time batch statistics, as the default model's stage 2), still distilled from default.onnx
# (its cached mattes are reused), low-LR cosine restart with weight EMA. Resumable.
#   nohup bash training/recipes/fast_ft.sh > runs/fast-ft/train.log 2>&1 &
# INIT, RUN_DIR, SIZE, EPOCHS and LR override the starting weights, run folder, input size (the model is fully
# convolutional: SIZE=192 re-targets the shipped fast model to a smaller input), schedule and peak learning rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
INIT=${INIT:-runs/fast/best.pth}
RUN_DIR=${RUN_DIR:-runs/fast-ft}
TEACHER=${TEACHER:-segedge/models/default.onnx}
RESUME=()
[ -f "$RUN_DIR/last.pth" ] && RESUME=(--resume "$RUN_DIR/last.pth")
.venv/bin/segedge train --data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" \
  --out "$RUN_DIR" --init "$INIT" --size "${SIZE:-224}" --crop "${SIZE:-224}" \
  --teacher "$TEACHER" --distill-weight "${DISTILL_WEIGHT:-1.0}" \
  --epochs "${EPOCHS:-5}" --batch-size 16 --lr "${LR:-2e-4}" --ema 0.998 --workers 1 --threads 2 "${RESUME[@]}"
