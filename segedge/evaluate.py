"""`segedge eval`: accuracy of any model over DATA_DIR/images + DATA_DIR/masks, scored at the original image size."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from segedge.errors import SegedgeError
from segedge.metrics import SourceAverager
from segedge.pairs import find_pairs, read_pair
from segedge.scoring import image_mask, upsampling_name

log = logging.getLogger("segedge")


def evaluate(segmenter, data_dir: str | Path, threshold: float | None = None, quiet: bool = False,
             limit: int | None = None) -> dict:
    """Mean per-image foreground IoU, mIoU, Dice, pixel accuracy and boundary IoU (segedge.metrics), plus image
    count and model ms per image; `by_source` holds the same means (and image count) per source prefix of the
    file names (ccp_*, vik_*, ...: segedge.metrics.source_of).

    Scored through segedge.scoring: predictions are upsampled to the mask size (the ground truth is never resized)
    the way the segmenter does it: guided by the image when `segmenter.refine` (the matte `segedge run` outputs),
    else plain bilinear (the figure the training log reports), then thresholded at the model's threshold.
    `ms_per_image` covers pre-processing and inference (not file decoding or scoring). Pairs that cannot be read
    or whose image and mask differ in size are warned about by name and listed under `skipped`.
    """
    threshold = segmenter.spec.threshold if threshold is None else threshold
    if not 0.0 < threshold < 1.0:
        raise SegedgeError(f"threshold {threshold} must be between 0 and 1")
    pairs = find_pairs(data_dir)[:limit]
    scores, model_seconds, skipped = SourceAverager(), 0.0, []
    for image_path, mask_path in tqdm(pairs, unit="img", desc=Path(data_dir).name, disable=quiet):
        try:
            image, mask = read_pair(image_path, mask_path)
        except SegedgeError as exc:  # unreadable, or image and mask differ in size
            log.warning("skipped: %s", exc)
            skipped.append(image_path.name)
            continue
        started = time.perf_counter()
        prob = segmenter.probabilities([image])[0]
        model_seconds += time.perf_counter() - started
        scores.add(image_path, image_mask(prob, image, segmenter.refine, threshold), mask)
    count = scores.overall.count
    if count == 0:
        raise SegedgeError(f"{data_dir}: none of the {len(pairs)} pairs could be read")
    return {**scores.overall.summary(5), "ms_per_image": round(1000 * model_seconds / count, 2),
            "skipped": skipped, "model": segmenter.describe(), "tta": segmenter.tta, "threshold": threshold,
            "upsampling": upsampling_name(segmenter.refine), "by_source": scores.by_source(5)}
