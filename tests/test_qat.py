"""Quantisation-aware fine-tuning's model surgery: folding keeps the function, fake quantisation changes it a little."""

import pytest

torch = pytest.importorskip("torch")

from segedge.export.precision import FP32_NODE_PREFIXES  # noqa: E402
from segedge.training.model import build_model  # noqa: E402
from segedge.training.qat import fold_batchnorms, unwrap, wrap_quantised_convs  # noqa: E402

from segedge.spec import ModelSpec  # noqa: E402


def randomised_model():
    """A small default-architecture model whose BatchNorms are far from identity, so a wrong fold shows."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(backbone="mobilenet_v2", head_channels=32, separable=True))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_folding_keeps_the_function_and_the_state_dict_layout():
    model = randomised_model()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        keys = set(model.state_dict())
        fold_batchnorms(model)
        after = model(x)
    assert set(model.state_dict()) == keys  # still loads into build_model(spec): exports as usual
    assert torch.allclose(before, after, atol=1e-4)


def test_fake_quantised_convs_skip_the_fp32_layers_and_round_the_rest():
    model = randomised_model()
    fold_batchnorms(model)
    x = torch.randn(1, 3, 64, 64)
    wrapped = wrap_quantised_convs(model, FP32_NODE_PREFIXES["mobilenet_v2"])
    low_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.backbone.low.modules())
    all_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert low_convs > 0 and len(wrapped) == all_convs - low_convs
    with torch.no_grad():
        exact = model(x)  # calibrating: exact, ranges recorded
        for module in wrapped:
            module.calibrating = False
        rounded = model(x)
    difference = (rounded - exact).abs().mean()
    assert 0 < difference < 0.1 * exact.abs().mean()
    unwrap(model)
    with torch.no_grad():
        assert torch.allclose(model(x), exact)
