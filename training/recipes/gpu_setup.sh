# Device-side set-up for training/recipes/gpu_round.sh on a lent GPU machine, copied to .gpu/setup.sh by gpu_pack.py
# (idempotent; run from the repo root with PYTHONPATH=/tmp/pkg:/tmp/site).
set -e
[ -d /tmp/site/albumentations ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
rm -rf /tmp/pkg && mkdir -p /tmp/pkg /tmp/bin /tmp/init /tmp/people/train
cp -r segedge /tmp/pkg/segedge && cp -r training /tmp/pkg/segedge/training && cp -r export /tmp/pkg/segedge/export
printf '#!/bin/sh\nexec python3 -P -c "from segedge.cli import main; main()" "$@"\n' > /tmp/bin/segedge && chmod +x /tmp/bin/segedge
for t in .gpu/a.tgz .gpu/b.tgz; do
  [ -f $t ] || continue
  half=/tmp/halves/$(basename $t .tgz); mkdir -p /tmp/halves; rm -rf $half; tar xzf $t -C /tmp/halves
  cp -r $half/train/. /tmp/people/train/
  if [ -d $half/init ]; then cp -r $half/init/. /tmp/init/; fi  # init/ may be empty
  for v in val val-portraits val-scenes; do if [ -d $half/$v ]; then rm -rf /tmp/people/$v; cp -r $half/$v /tmp/people/$v; fi; done
done
for v in val val-portraits val-scenes; do  # call 1 has no val data: 20 training pairs stand in, to time the eval
  if [ -d /tmp/people/$v ]; then continue; fi
  mkdir -p /tmp/people/$v/images /tmp/people/$v/masks
  for f in $(ls /tmp/people/train/images | head -20); do cp /tmp/people/train/images/$f /tmp/people/$v/images/; cp /tmp/people/train/masks/${f%.*}.png /tmp/people/$v/masks/; done
done
echo train pairs: $(ls /tmp/people/train/images | wc -l)
