#!/usr/bin/env bash
# Candidate successor of the default model (in progress): the default recipe with a 192-wide separable head and a
# 60-epoch cosine schedule, since the 128-wide 25-epoch run flattened at val-portraits 0.9625 / val-scenes 0.716.
# About 4.8 min/epoch on 2 CPU cores; resumes when RUN_DIR/last.pth exists.
set -euo pipefail
RUN_DIR=${RUN_DIR:-runs/mnv2-h192-e60} HEAD_CHANNELS=192 EPOCHS=60 exec bash "$(dirname "$0")/default_mnv2.sh"
