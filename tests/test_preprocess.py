"""The tensor every stage feeds a model: exact against the textbook formula, on odd sizes too."""

import numpy as np
import pytest

from segedge.preprocess import normalize, to_model_input
from segedge.spec import ModelSpec


@pytest.mark.parametrize("shape", [(37, 53, 3), (320, 320, 3), (1, 1, 3)])
def test_normalize_matches_scale_then_standardise(shape):
    rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = (rgb.transpose(2, 0, 1) / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    out = normalize(rgb, mean, std)
    assert out.dtype == np.float32 and out.shape == (3, *shape[:2]) and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_model_input_is_nchw_at_model_size():
    spec = ModelSpec(input_size=(64, 96))
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[..., 0] = 255
    tensor = to_model_input(frame, spec)
    assert tensor.shape == (1, 3, 64, 96)
    np.testing.assert_allclose(tensor[0, :, 10, 10], (np.array([1, 0, 0]) - spec.mean) / np.array(spec.std), atol=1e-5)
