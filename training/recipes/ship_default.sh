#!/usr/bin/env bash
# Ship the trained default model into the package: FP32 ONNX (+ INT8 when it holds accuracy), checked against
# PyTorch on the val images at export time, then evaluated on each val folder.
#   bash training/recipes/ship_default.sh [runs/default-ft2/best.pth]
set -euo pipefail
cd "$(dirname "$0")/../.."
CKPT=${1:-runs/default-ft2/best.pth}
PEOPLE=${PEOPLE:-../shared/data/people}
MODELS=segedge/models
.venv/bin/segedge export "$CKPT" -o "$MODELS/default.onnx"  # parity on the recorded val folder
.venv/bin/segedge export "$CKPT" -o "$MODELS/default.int8.onnx" --precision int8  # calibrates on a sample of the recorded training data
for folder in val val-portraits val-scenes; do
  .venv/bin/segedge eval --engine "$MODELS/default.onnx" "$PEOPLE/$folder" --quiet  # guided, as segedge run
done
# Published figures (accuracy per folder beside MediaPipe's, latency): .venv/bin/python benchmarks/run_cpu.py
