#!/usr/bin/env bash
# One round on a lent GPU for issue #20: the shipped `fast` model thinned three ways (training/thin.py: fewer
# expanded channels in its stride-2/4/8 blocks, which are most of its CPU time), each fine-tuned side by side on one
# GPU, distilled from `default`, weight EMA, selected on the mean IoU of the three val folders as every recipe here.
#   A  blocks 1-6 at half width, the stem at 16 channels       (~0.79x fast's latency on a 2-core AVX2 EPYC)
#   C  A + the stride-16 blocks 8-13 at half width               (~0.74x)
#   D  C with blocks 2-3 at a third                              (~0.67x)
# Data: `gpu_pack.py --size 224 --quality 65 --one` (fits one call beside the tree); on the machine, as in
# session 9 (carry .gpu and .whl): PYTHONPATH=/tmp/pkg:/tmp/site PATH=/tmp/bin:$PATH bash .gpu/setup.sh, then
# PEOPLE=/tmp/people RUN_ROOT=/tmp/runs PYTHON="python3 -P" TEACHER_THREADS=12 DEADLINE=... bash gpu_thin.sh. The teacher's mattes are
# cached once before the runs share them. Runs stop at DEADLINE (seconds since the epoch) whatever their epoch:
# best.pth is written every epoch. PEOPLE, RUN_ROOT, EPOCHS, WORKERS, LR and SEGEDGE override the defaults.
set -uo pipefail
cd "$(dirname "$0")/../.."
PEOPLE=${PEOPLE:-../shared/data/people}
RUN_ROOT=${RUN_ROOT:-runs/thin}
EPOCHS=${EPOCHS:-40}
WORKERS=${WORKERS:-4}
LR=${LR:-5e-4}
DEADLINE=${DEADLINE:-$(( $(date +%s) + 86400 ))}
SEGEDGE=${SEGEDGE:-segedge}
PYTHON=${PYTHON:-python3}
TEACHER=segedge/models/default.onnx
mkdir -p "$RUN_ROOT"
$PYTHON -c "
import sys
from pathlib import Path
from segedge.training.data import find_pairs
from segedge.training.distill import cache_teacher_mattes
cache_teacher_mattes(Path('$TEACHER'), find_pairs(Path('$PEOPLE/train')), Path('$RUN_ROOT/teacher-mattes'),
                     threads=${TEACHER_THREADS:-8}, quiet=True)
" || exit 1
echo "teacher mattes cached at $(date +%T)"
common=(--data "$PEOPLE" --val "$PEOPLE/val-portraits" --val "$PEOPLE/val-scenes" --repeat vik=3 --repeat voc=2
        --workers "$WORKERS" --threads 2 --quiet --init segedge/models/fast.pth --size 224 --crop 224
        --teacher "$TEACHER" --teacher-cache "$RUN_ROOT/teacher-mattes" --batch-size 16 --lr "$LR" --ema 0.998
        --epochs "$EPOCHS")
launch() {  # NAME WIDTHS: one thinned run in the background, stopped at DEADLINE
  timeout $(( DEADLINE - $(date +%s) )) $SEGEDGE train "${common[@]}" --out "$RUN_ROOT/$1" --thin "$2" \
    > "$RUN_ROOT/$1.log" 2>&1 &
}
launch A 16,48,72,72,96,96
launch C 16,48,72,72,96,96,192,192,192,192,288,288,288
launch D 16,32,48,72,96,96,192,192,192,192,288,288,288
wait
