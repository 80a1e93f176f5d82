"""Does the exported model compute what eager PyTorch computes? Measured on real images at export time.

Both sides get the exact tensor the runtime builds (segedge.preprocess.to_model_input), so a difference can
only come from the exported graph. Masks are scored as `segedge eval` scores (segedge.scoring): probabilities as
the spec's `output` says, guided upsampling to each image's size, the model's threshold, IoU averaged per image.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segedge.errors import SegedgeError
from segedge.model_files import read_spec
from segedge.preprocess import to_model_input
from segedge.scoring import mean_iou, person_mask
from segedge.spec import ModelSpec

GUIDED = True  # masks upsampled as `segedge eval` scores by default and `segedge run` outputs


@dataclass(frozen=True)
class Tolerance:
    max_logit_diff: float | None  # None: reported, not enforced
    min_mask_iou: float


# Why these numbers:
# - fp32: the same float32 maths in another summation order; observed differences are ~1e-5 even for
#   ResNet50, so 1e-3 (scaled by the logit magnitude when it exceeds 1) flags a wrong op, never rounding.
#   Masks may flip only in pixels whose logit sits on the threshold: IoU >= 0.99 (a mean over images, so one image
#   whose small person is cut differently already fails it).
# - fp16: ~3 significant digits, so logit differences grow with logit size and are only reported; the mask
#   is what a user sees and must agree to 0.98.
# - int8: 256 levels per tensor shift boundary pixels; an IoU agreement of 0.90 keeps the mask usable
#   (the report also gives the change in IoU to ground truth when masks are at hand).
TOLERANCES = {
    "fp32": Tolerance(max_logit_diff=1e-3, min_mask_iou=0.99),
    "fp16": Tolerance(max_logit_diff=None, min_mask_iou=0.98),
    "int8": Tolerance(max_logit_diff=None, min_mask_iou=0.90),
}


def model_inputs(images: list[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
    """uint8 RGB images -> 1x3xHxW float32 tensors at the model's (nominal) input size."""
    return [to_model_input(rgb, spec) for rgb in images]


@contextmanager
def torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def torch_logits(model: torch.nn.Module, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Eager reference, one thread: a handful of images does not need more, and OpenMP's spinning threads
    stalled 400x on a busy 2-core machine."""
    model.eval()
    with torch.no_grad(), torch_threads(1):
        return [model(torch.from_numpy(x)).numpy() for x in inputs]


def onnx_logits(onnx_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run each 1x3xHxW input on the runtime backend's own CPU session (exact INT8 kernels where this CPU needs
    them), so export measures what users will run; a model exported with a fixed batch B gets the input repeated B
    times."""
    from segedge.backends.onnxruntime import OnnxRuntimeBackend, fixed_batch

    backend = OnnxRuntimeBackend(onnx_path, "cpu")
    batch = fixed_batch(backend.session)
    return [backend.infer(np.repeat(x, batch, axis=0))[:1] for x in inputs]


def image_masks(outputs: list[np.ndarray], images: list[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
    """1x1xhxw model outputs -> boolean masks at each image's size (segedge.scoring.person_mask)."""
    return [person_mask(x[0, 0], spec, image, GUIDED) for x, image in zip(outputs, images, strict=True)]


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], images: list[np.ndarray],
            spec: ModelSpec) -> dict:
    """Max abs logit difference, the largest reference logit, and the mean per-image IoU of the two models' masks."""
    return {
        "images": len(reference),
        "max_abs_diff": max(float(np.abs(r - c).max()) for r, c in zip(reference, candidate, strict=True)),
        "max_abs_logit": max(float(np.abs(r).max()) for r in reference),
        "mask_iou": mean_iou(image_masks(reference, images, spec), image_masks(candidate, images, spec)),
        "finite": all(np.isfinite(x).all() for x in (*reference, *candidate)),
    }


def check_parity(model: torch.nn.Module, onnx_path: Path, images: list[np.ndarray],
                 spec: ModelSpec | None = None) -> dict:
    """Eager torch vs onnxruntime on the same images: {"images", "max_abs_diff", "max_abs_logit", "mask_iou"}."""
    if spec is None:
        spec = read_spec(onnx_path)
    inputs = model_inputs(images, spec)
    return compare(torch_logits(model, inputs), onnx_logits(onnx_path, inputs), images, spec)


def failures(result: dict, precision: str) -> list[str]:
    """What exceeds the tolerance of `precision` (empty when the export is acceptable)."""
    tol = TOLERANCES[precision]
    problems = [] if result.get("finite", True) else ["NaN or Inf in the logits"]
    if tol.max_logit_diff is not None:
        allowed = tol.max_logit_diff * max(1.0, result["max_abs_logit"])
        if result["max_abs_diff"] > allowed:
            problems.append(f"max |logit diff| {result['max_abs_diff']:.2e} > {allowed:.2e}")
    if result["mask_iou"] < tol.min_mask_iou:
        problems.append(f"mask IoU {result['mask_iou']:.4f} < {tol.min_mask_iou}")
    return problems


def enforce(result: dict, precision: str, onnx_path: Path) -> None:
    problems = failures(result, precision)
    if problems:
        raise SegedgeError(f"{onnx_path}: {precision} model disagrees with PyTorch ({'; '.join(problems)}); "
                           "artefact removed")


def ground_truth_iou(outputs: list[np.ndarray], images: list[np.ndarray], truths: list[np.ndarray],
                     spec: ModelSpec) -> float:
    """Mean per-image IoU to ground-truth masks, scored as `segedge eval` scores."""
    return mean_iou(image_masks(outputs, images, spec), truths)
