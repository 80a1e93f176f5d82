"""Thinning a trained MobileNetV2 model (`segedge train --thin`, training/thin.py): which channels go, exactness
when the dropped channels carry nothing, BatchNorm re-estimation, and the widths travelling with the checkpoint."""

import pytest

torch = pytest.importorskip("torch")

from segedge.training.checkpoint import load_model, read_checkpoint  # noqa: E402
from segedge.training.model import build_model  # noqa: E402
from segedge.training.thin import kept_channels, recalibrate_batchnorm, thin  # noqa: E402
from segedge.training.train import TrainConfig, train  # noqa: E402

from segedge.errors import SegedgeError  # noqa: E402
from segedge.spec import ModelSpec  # noqa: E402

SPEC = ModelSpec(backbone="mobilenet_v2_s16", head_channels=16, low_level_channels=8, separable=True,
                 aspp_rates=(3,), decoder_convs=1, input_size=(64, 64))


def _trained_like_model(seed: int = 0):
    """A random fast-architecture model whose BatchNorms have non-trivial statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(SPEC)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _silence(block, channels):
    """Make some expanded channels of a block output exactly zero after the depthwise conv's BN + ReLU6."""
    norm = block.conv[-3][1]
    norm.weight.data[channels] = 0.0
    norm.bias.data[channels] = 0.0


def test_dropping_channels_that_carry_nothing_leaves_the_output_unchanged():
    model = _trained_like_model()
    blocks = [*model.backbone.low, *model.backbone.high]
    _silence(blocks[1], torch.arange(24, 32))  # block 1: its expanded channels are the stem's outputs
    _silence(blocks[2], torch.arange(0, 96, 2))  # every other one of block 2's 96
    _silence(blocks[9], torch.arange(100, 384))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
    thinned, spec = thin(model, SPEC, (24, 48, 144, 144, 192, 192, 192, 384, 100))
    assert spec.depthwise_widths == (24, 48, 144, 144, 192, 192, 192, 384, 100)
    thinned_blocks = [*thinned.backbone.low, *thinned.backbone.high]
    assert thinned_blocks[0][0].out_channels == 24 and thinned_blocks[9].conv[1][0].groups == 100
    with torch.no_grad():
        assert torch.allclose(thinned(x), reference, atol=1e-5)
    assert not thinned.training


def test_a_stem_as_wide_as_block_1s_output_adds_its_residual_sum():
    """Block 1 maps the stem's 32 channels to 16; cut to 16 it sums its input like every same-width block (the
    shipped fast model was trained so)."""
    thinned, _ = thin(_trained_like_model(), SPEC, (16,))
    assert thinned.backbone.low[1].use_res_connect and not _trained_like_model().backbone.low[1].use_res_connect


def test_the_most_important_channels_are_kept():
    model = _trained_like_model()
    block = model.backbone.low[3]
    block.conv[-3][1].weight.data[[5, 77, 140]] = 50.0  # large depthwise BN scale
    keep = kept_channels(model, (32, 96, 3))
    assert set(keep) == {3} and keep[3].tolist() == [5, 77, 140]


def test_widths_travel_with_the_checkpoint_and_can_be_cut_again(tmp_path):
    thinned, spec = thin(_trained_like_model(), SPEC, (16, 48, 72))
    path = tmp_path / "thin.pth"
    torch.save({"spec": spec.to_dict(), "model": thinned.state_dict()}, path)
    loaded, loaded_spec, _ = load_model(path)
    assert loaded_spec.depthwise_widths == (16, 48, 72)
    assert loaded.backbone.low[3].conv[1][0].groups == 72
    again, again_spec = thin(loaded, loaded_spec, (8,))  # earlier cuts past the new tuple stay
    assert again_spec.depthwise_widths == (8, 48, 72)
    assert ModelSpec.from_json(again_spec.to_json()).depthwise_widths == (8, 48, 72)


@pytest.mark.parametrize("widths, message", [((16, 500), "block 2: width 500"), ((0,), "block 1: width 0"),
                                             (tuple([8] * 14), "14 widths given")])
def test_impossible_widths_are_one_line_errors(widths, message):
    with pytest.raises(SegedgeError, match=message):
        thin(_trained_like_model(), SPEC, widths)


def test_width_parsing():
    import typer

    from segedge.commands.train import parse_integers

    assert parse_integers("16, 48,72", "--thin", "16,48,72") == (16, 48, 72)
    for bad in ("", "a,b"):
        with pytest.raises(typer.BadParameter, match="comma-separated") as error:
            parse_integers(bad, "--thin", "16,48,72")
        assert error.value.param_hint == "--thin"


def test_recalibration_replaces_running_statistics_by_the_batches_average():
    model = _trained_like_model()
    stem = model.backbone.low[0]
    images = [torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64) + 0.5]
    assert recalibrate_batchnorm(model, images) == 8
    with torch.no_grad():
        features = torch.cat([stem[0](x) for x in images])
    assert torch.allclose(stem[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert stem[1].momentum == 0.1 and not model.training  # training settings and mode restored


def test_train_thins_the_init_model(tiny_data, tmp_path):
    init = tmp_path / "init.pth"
    torch.save({"spec": SPEC.to_dict(), "model": _trained_like_model().state_dict()}, init)
    out = tmp_path / "run"
    train(TrainConfig(data=tiny_data, out=out, epochs=1, batch_size=4, workers=0, threads=1, quiet=True,
                      init=init, thin=(16, 48)))
    state = read_checkpoint(out / "last.pth")
    assert state["spec"]["depthwise_widths"] == (16, 48)
    assert state["model"]["backbone.low.2.conv.1.0.weight"].shape[0] == 48
    with pytest.raises(SegedgeError, match="give it with --init"):
        train(TrainConfig(data=tiny_data, out=tmp_path / "x", epochs=1, thin=(16,), quiet=True, workers=0))
