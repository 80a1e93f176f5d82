"""Checkpoints carry the full ModelSpec, so export and eval need nothing but the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segedge.training.model import DeepLabV3Plus, build_model

from segedge.backends import resolve_checkpoint
from segedge.errors import SegedgeError
from segedge.media import atomic_output
from segedge.spec import ModelSpec

# Data-only types that checkpoints written by earlier segedge versions hold (NumPy scalar metrics, torch's version
# string); allowed so those checkpoints stay loadable weights-only.
PLAIN_DATA_TYPES = [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
                    np.dtypes.Int64DType, torch.torch_version.TorchVersion]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically, so an interrupted save never leaves a truncated last.pth behind."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents; `path` may also name an embedded model ("default")."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise SegedgeError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint is data, and loading one must never run code from its pickle.
        with torch.serialization.safe_globals(PLAIN_DATA_TYPES):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SegedgeError(f"{path} holds Python objects beyond tensors and plain data; segedge loads checkpoints "
                           "weights-only (save a state dict, or re-save it with torch.save(torch.load(...)))") from None
    except Exception as exc:  # truncated zip, plain text...
        raise SegedgeError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not ({"model", "state_dict"} & state.keys()):
        raise SegedgeError(f"{path} is not a segedge checkpoint (no 'model' or 'state_dict' weights inside)")
    if not isinstance(_deployed(state), dict):
        raise SegedgeError(f"{path} is not a segedge checkpoint (its weights are a {type(_deployed(state)).__name__}, "
                           "not a state dict)")
    return state


def _deployed(state: dict[str, Any]):
    """The EMA copy when training kept one, else the raw weights."""
    return state.get("ema") or state.get("model") or state["state_dict"]


def model_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Weights to deploy (see _deployed), without DistributedDataParallel's "module." prefix."""
    return {k.removeprefix("module."): v for k, v in _deployed(state).items()}


def spec_of(state: dict[str, Any], path: str | Path, spec: ModelSpec | None = None) -> ModelSpec:
    """The spec a checkpoint holds; classic {"state_dict", "optimizer"} files need `spec` from the caller."""
    if "spec" in state:
        return ModelSpec.from_artefact(state["spec"], path)
    if spec is None:
        raise SegedgeError(f"{path} holds no model config (classic state_dict checkpoint); "
                           "pass the model config (backbone, head width, input size) to load it")
    return spec


def read_checkpoint_spec(path: str | Path) -> ModelSpec:
    return spec_of(read_checkpoint(path), path)


def load_model(path: str | Path, spec: ModelSpec | None = None) -> tuple[DeepLabV3Plus, ModelSpec, dict]:
    """Rebuild the model of a checkpoint in eval mode.

    segedge checkpoints hold their spec; classic {"state_dict", "optimizer"} files need `spec` from the caller.
    """
    state = read_checkpoint(path)
    spec = spec_of(state, path, spec)
    model = build_model(spec)
    try:
        model.load_state_dict(model_weights(state))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SegedgeError(f"{path}: weights do not match the {spec.backbone} model in its config ({first})") from None
    return model.eval(), spec, state
