"""Frame encoders: shapes and strides, weight loading (local path, full-model state dicts, the
torch hub cache), frozen BatchNorm, frozen parameters. Random init only: no downloads here."""

from __future__ import annotations

import copy
from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from wsal.nets.encoders import ENCODERS, build_encoder, fold_batch_norms, freeze_batch_norm

# name, layers, C, stride, [(input H×W, map h×w)]. Small inputs keep vgg16/resnet50 fast.
# small/vgg16 floor odd sizes (2×2 pools, 4×4 stride-2 convs); ResNets round up.
SHAPES = [
    ("small", None, 128, 8, [((120, 160), (15, 20)), ((61, 75), (7, 9))]),
    ("vgg16", None, 512, 16, [((32, 48), (2, 3)), ((47, 33), (2, 2))]),
    ("vgg16", 3, 256, 4, [((32, 30), (8, 7))]),
    ("resnet18", None, 256, 16, [((64, 48), (4, 3)), ((71, 65), (5, 5))]),
    ("resnet18", 4, 512, 32, [((64, 64), (2, 2))]),
    ("resnet50", None, 1024, 16, [((48, 40), (3, 3))]),
]


@pytest.mark.parametrize(("name", "layers", "channels", "stride", "cases"), SHAPES)
def test_output_shape_stride_channels(name, layers, channels, stride, cases):
    torch.manual_seed(0)
    enc = build_encoder(name, layers=layers).eval()
    assert (enc.out_channels, enc.stride) == (channels, stride)
    # Random init as torchvision's: Kaiming-normal (fan_out) convs, BN 1/0, no leftover memory
    # from materializing the meta-device model.
    assert all(torch.isfinite(v.float()).all() for v in enc.state_dict().values())
    conv = next(m for m in enc.modules() if isinstance(m, nn.Conv2d) and m.out_channels >= 32)
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.1)
    for hw, map_hw in cases:
        with torch.no_grad():
            out = enc(torch.randn(1, 3, *hw))  # [1, C, h, w]
        assert out.shape == (1, channels, *map_hw)


def test_every_name_is_covered():
    assert {s[0] for s in SHAPES} == set(ENCODERS)


@pytest.mark.parametrize(
    ("name", "layers", "size", "cell"), [("small", None, 64, 4), ("vgg16", 3, 64, 8)]
)
def test_cell_centres_match_roi_align_convention(name, layers, size, cell):
    # roi_align(aligned=True) puts cell u's centre at input coordinate (u + 0.5) * stride. With
    # equal positive conv taps the receptive field's weights are the gradient of that cell w.r.t.
    # the input; their centre of mass, over continuous pixel centres p + 0.5, must be there.
    # Max-pools become 2×2 average pools: same geometry, but a gradient that does not pick the
    # first of equal inputs.
    enc = build_encoder(name, layers=layers).eval()
    for parent in list(enc.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    x = torch.ones(1, 3, size, size, requires_grad=True)  # positive: every ReLU passes
    enc(x)[0, :, cell, cell].sum().backward()
    weight = x.grad[0].sum(0)  # [size, size] receptive-field weights
    centres = torch.arange(size) + 0.5  # continuous centre of pixel p
    centre_y = (weight.sum(1) * centres).sum() / weight.sum()
    centre_x = (weight.sum(0) * centres).sum() / weight.sum()
    expected = (cell + 0.5) * enc.stride
    assert centre_y.item() == pytest.approx(expected) and centre_x.item() == pytest.approx(expected)


def test_local_path_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("small")
    with torch.no_grad():
        for m in enc.modules():  # non-trivial BN statistics, so they are checked too
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "small.pt"
    torch.save(enc.state_dict(), path)
    torch.manual_seed(1)
    loaded = build_encoder("small", weights=str(path))
    x = torch.randn(2, 3, 40, 48)
    torch.testing.assert_close(loaded.eval()(x), enc.eval()(x), atol=0, rtol=0)


def test_full_model_state_dict_loads_backbone(tmp_path, caplog):
    torch.manual_seed(0)
    full = torchvision.models.resnet18(weights=None).eval()
    sd = full.state_dict()
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:  # as in torchvision's files
        del sd[k]
    path = tmp_path / "resnet18_full.pth"
    torch.save(sd, path)
    with caplog.at_level("INFO", logger="wsal.nets.encoders"):
        enc = build_encoder("resnet18", weights=str(path)).eval()
    assert "ignored 27 keys of dropped layers (layer4, fc)" in caplog.text
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = full.layer3(
            full.layer2(full.layer1(full.maxpool(full.relu(full.bn1(full.conv1(x))))))
        )
        torch.testing.assert_close(enc(x), expected)


def test_full_vgg16_state_dict_keys_match(tmp_path):
    # The reference is built on the meta device (skipping the ~120M-parameter classifier's init):
    # only its keys matter.
    with torch.device("meta"):
        full = torchvision.models.vgg16().state_dict()
    assert set(build_encoder("vgg16").state_dict()) <= set(full)
    torch.manual_seed(0)
    enc = build_encoder("vgg16", layers=2)  # stages 1-2: a small file for the round trip
    sd = dict(enc.state_dict())
    sd["features.10.weight"] = torch.zeros(1)  # a dropped stage-3 conv, as in a full-model file
    sd["classifier.6.bias"] = torch.zeros(1000)  # and the classifier
    torch.save(sd, tmp_path / "vgg.pth")
    loaded = build_encoder("vgg16", weights=str(tmp_path / "vgg.pth"), layers=2)
    torch.testing.assert_close(loaded.state_dict(), enc.state_dict())


def test_mismatched_state_dict_is_reported(tmp_path):
    sd = build_encoder("resnet18").state_dict()
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    with pytest.raises(RuntimeError, match=r"does not match the resnet50 backbone: \d+ missing"):
        build_encoder("resnet50", weights=str(path))
    sd = build_encoder("small").state_dict()
    del sd["block1.conv.weight"]
    sd["head.weight"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(RuntimeError, match=r"1 missing keys \[block1.conv.weight\].*head.weight"):
        build_encoder("small", weights=str(path))


def test_missing_file_and_unknown_name():
    with pytest.raises(FileNotFoundError, match="no/such/weights.pth"):
        build_encoder("small", weights="no/such/weights.pth")
    with pytest.raises(ValueError, match="small, vgg16, resnet18, resnet50"):
        build_encoder("alexnet")
    with pytest.raises(ValueError, match="not for encoder 'vgg16'"):
        build_encoder("vgg16", weights="ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="unknown torchvision weights"):
        build_encoder("vgg16", weights="VGG16_Weights.NOPE")
    with pytest.raises(ValueError, match="layers"):
        build_encoder("resnet18", layers=5)


def test_unavailable_enum_weights_raise_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as info:
        build_encoder("resnet18", weights="ResNet18_Weights.IMAGENET1K_V1")
    msg = str(info.value)
    assert torch.hub.get_dir() in msg and "resnet18-f37072fd.pth" in msg
    assert "local path" in msg


def test_enum_weights_from_hub_cache(monkeypatch):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None).state_dict()
    calls = []

    def cached(url, **kwargs):
        calls.append((url, kwargs))
        return source

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", cached)
    enc = build_encoder("resnet18", weights="ResNet18_Weights.DEFAULT")
    assert calls[0][0].endswith("resnet18-f37072fd.pth") and calls[0][1]["weights_only"]
    torch.testing.assert_close(enc.conv1.weight, source["conv1.weight"])


def _random_bn_statistics(module: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine values (fresh ones are the identity)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()


def test_frozen_bn_keeps_outputs(tmp_path):
    # Non-trivial statistics go through a file, so build_encoder loads them and then freezes:
    # the FrozenBatchNorm2d layers must carry the loaded values, not the fresh init.
    torch.manual_seed(0)
    enc = build_encoder("resnet18").eval()
    _random_bn_statistics(enc)
    torch.save(enc.state_dict(), tmp_path / "r18.pth")
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = enc(x)
    frozen = build_encoder("resnet18", weights=str(tmp_path / "r18.pth"), frozen_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, torchvision.ops.FrozenBatchNorm2d) for m in frozen.modules()) == 15
    torch.testing.assert_close(frozen.layer2[0].bn1.running_var, enc.layer2[0].bn1.running_var)
    with torch.no_grad():  # train mode too: frozen statistics do not depend on the batch
        torch.testing.assert_close(frozen.train()(x), expected, rtol=1e-4, atol=1e-5)


def test_not_trainable_and_channels_last():
    enc = build_encoder("small", trainable=False, channels_last=True)
    assert not any(p.requires_grad for p in enc.parameters())
    assert enc.block1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    out = enc(torch.randn(2, 3, 32, 32))  # [2, 128, 4, 4]
    assert out.shape == (2, 128, 4, 4)
    assert all(p.requires_grad for p in build_encoder("small").parameters())


@pytest.mark.parametrize("frozen", [False, True])
def test_fold_batch_norms_keeps_outputs(frozen):
    torch.manual_seed(0)
    enc = build_encoder("small").eval()  # 4 x (conv without bias, BN, ReLU)
    _random_bn_statistics(enc)
    if frozen:
        freeze_batch_norm(enc)
    x = torch.randn(2, 3, 40, 48)
    with torch.no_grad():
        expected = enc(x)
    folded = copy.deepcopy(enc)
    assert fold_batch_norms(folded) == 4
    bns = (nn.BatchNorm2d, torchvision.ops.FrozenBatchNorm2d)
    assert not any(isinstance(m, bns) for m in folded.modules())
    assert isinstance(folded.block1.bn, nn.Identity) and folded.block1.conv.bias is not None
    with torch.no_grad():
        torch.testing.assert_close(folded(x), expected, rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, bns) for m in enc.modules()) == 4  # the original is untouched
    # left alone: batch statistics (train mode), a BatchNorm before its convolution
    assert fold_batch_norms(copy.deepcopy(enc).train()) == (4 if frozen else 0)
    assert fold_batch_norms(nn.Sequential(nn.BatchNorm2d(3).eval(), nn.Conv2d(3, 4, 1))) == 0
