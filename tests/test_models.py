"""FCN model family (issue 3): shapes, gradients, bilinear deconvolution, first-layer widening, weights, registry.

Budget: every seed backbone's trunk is built once (in its own test) and every head variant runs on its cached
features; each backbone still gets one real end-to-end forward+backward per stride. All weights are `none` or files
written here: nothing is downloaded.
"""

from __future__ import annotations

import copy
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import get_model

from ifcn.trainer.models import (
    FCN,
    SEED_BACKBONES,
    ModelConfig,
    WeightsUnavailableError,
    build_model,
    describe_backbones,
    get_backbone,
    list_backbones,
)
from ifcn.trainer.models.classic import convolutionalise
from ifcn.trainer.models.first_layer import adapt_first_layer, first_conv
from ifcn.trainer.models.heads import BilinearDeconv, FCNHead, FixedBilinear
from ifcn.trainer.models.probe import find_taps
from ifcn.trainer.models.weights import cache_path, imagenet_weights

#: Odd non-square, usual, and the smallest supported input size. At 45×77, 2×(stride-32 size) differs from the
#: stride-16 size or 2×(stride-16) from stride-8 for floor (VGG), ceil (ResNet) and AlexNet's pooling alike.
SIZES = ((45, 77), (64, 64), (32, 32))
E2E_SIZE = (32, 48)
NUM_CLASSES = 3
#: Which (stride, upsample) pairs get a real end-to-end forward+backward with 3 and with 5 input channels.
E2E = {3: ((32, "deconv"),), 5: ((8, "deconv"), (16, "bilinear"))}
NON_SEED = ("resnext50_32x4d", "wide_resnet50_2", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
            "regnet_y_400mf", "swin_t")


@pytest.fixture(autouse=True, scope="module")
def _cheap_cpu_settings() -> Iterator[None]:
    """One intra-op thread (on a few shared cores OpenMP threads waiting on each other cost several times more) and
    no oneDNN (it re-packs VGG's 100 M fc6 weights for every new input shape, which costs more than the convolution
    at these sizes)."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


@pytest.fixture(autouse=True)
def _seeded_torch() -> Iterator[None]:
    """Dropout and random inputs draw from a seeded, forked RNG: tests are deterministic and leave no trace."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _skip_scores(head: FCNHead) -> list[torch.nn.Conv2d]:
    return [getattr(head, n) for n in ("score16", "score8") if hasattr(head, n)]


def _seeded_head(channels: tuple[int, int, int], stride: int, upsample: str) -> FCNHead:
    """A head whose every score layer (skips included) holds the same non-zero weights for either upsampling."""
    head = FCNHead(channels, NUM_CLASSES, stride, upsample)
    g = torch.Generator().manual_seed(stride)
    with torch.no_grad():
        for name in ("score32", "score16", "score8"):
            if hasattr(head, name):
                for p in getattr(head, name).parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return head


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_deconv_is_bilinear_interpolation_at_init_everywhere(factor: int) -> None:
    x = _randn(2, 3, 5, 7, seed=factor)
    for inp in (x, x[..., :1, :1], x[..., :4, :3]):
        deconv = BilinearDeconv(3, factor)(inp)
        expected = F.interpolate(inp, scale_factor=factor, mode="bilinear", align_corners=False)
        assert deconv.shape == expected.shape  # border band of width 0: equal on every pixel
        torch.testing.assert_close(deconv, expected)
        torch.testing.assert_close(FixedBilinear(3, factor)(inp), expected)


@pytest.mark.parametrize("backbone", SEED_BACKBONES)
def test_seed_backbone_every_stride_upsampling_and_channel_count(backbone: str) -> None:
    """Sizes, gradients and deconv == bilinear for 3 strides × 2 upsamplings × 2 channel counts × 3 input sizes."""
    built = build_model(ModelConfig(backbone=backbone, stride=8, in_channels=3, num_classes=NUM_CLASSES))
    trunk, fc = built.backbone, built.fc
    channels = (built.head.score8.in_channels, built.head.score16.in_channels, built.head.score32.in_channels)
    for in_channels in (3, 5):
        if in_channels == 5:
            adapt_first_layer(trunk.body, 5, "mean", get_backbone(backbone).first_conv)
        trunk.eval()
        fc.eval()
        with torch.no_grad():
            features = {}
            for size in SIZES:
                f8, f16, f32 = trunk(_randn(1, in_channels, *size, seed=size[0]))
                features[size] = (f8, f16, fc(f32))
        for size, feats in features.items():
            for stride in (8, 16, 32):
                heads = {up: FCNHead(channels, NUM_CLASSES, stride, up) for up in ("deconv", "bilinear")}
                for up, head in heads.items():
                    f8, f16, f32 = (f.clone().requires_grad_() for f in feats)
                    out = head(f8, f16, f32, size)
                    assert out.shape == (1, NUM_CLASSES, *size), (backbone, in_channels, stride, up, size)
                    (out * _randn(*out.shape)).sum().backward()
                    assert f32.grad.abs().sum() > 0
                    for skip in _skip_scores(head):
                        assert not skip.weight.detach().any(), "skip scores start at zero"
                        assert skip.weight.grad.abs().sum() > 0, (backbone, stride, up, size)
                deconv, bilinear = _seeded_head(channels, stride, "deconv"), _seeded_head(channels, stride, "bilinear")
                with torch.no_grad():
                    expected = bilinear(*feats, size)  # deep random-init trunks give large values: relative atol
                    torch.testing.assert_close(deconv(*feats, size), expected, atol=1e-5 * expected.abs().max(),
                                               rtol=1e-5)
        trunk.train()
        fc.train()
        for stride, upsample in E2E[in_channels]:
            config = ModelConfig(backbone=backbone, stride=stride, upsample=upsample, in_channels=in_channels,
                                 num_classes=NUM_CLASSES)
            model = FCN(trunk, fc, FCNHead(channels, NUM_CLASSES, stride, upsample), config)
            out = model(_randn(1, in_channels, *E2E_SIZE, seed=stride))
            assert out.shape == (1, NUM_CLASSES, *E2E_SIZE)
            (out * _randn(*out.shape)).sum().backward()
            first = first_conv(trunk.body, get_backbone(backbone).first_conv)
            assert first.weight.shape[1] == in_channels
            assert (first.weight.grad.abs().sum(dim=(0, 2, 3)) > 0).all(), "every input channel gets a gradient"
            assert all(s.weight.grad.abs().sum() > 0 for s in _skip_scores(model.head))
            model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("backbone", NON_SEED)
def test_non_seed_torchvision_backbone_builds_as_fcn8s(backbone: str) -> None:
    model = build_model(ModelConfig(backbone=backbone, stride=8, in_channels=5, num_classes=NUM_CLASSES))
    out = model(_randn(2, 5, *SIZES[0]))
    assert out.shape == (2, NUM_CLASSES, *SIZES[0])
    out.sum().backward()
    first = first_conv(model.backbone.body, get_backbone(backbone).first_conv)
    assert first.weight.grad.abs().sum() > 0
    assert model.head.score8.weight.grad.abs().sum() > 0 and model.head.score16.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", ["resnet18", "alexnet"])
def test_five_channel_zero_init_equals_rgb_model_whatever_the_distances(backbone: str, tmp_path: Path) -> None:
    weights = tmp_path / f"{backbone}.pth"
    torch.save(get_model(backbone).state_dict(), weights)
    rgb, five = (build_model(ModelConfig(backbone=backbone, stride=8, in_channels=c, num_classes=2,
                                         weights=str(weights), first_layer_init="zero")).eval() for c in (3, 5))
    image = _randn(2, 3, 97, 131)
    with torch.no_grad():
        expected = rgb(image)
        for distances in (torch.zeros(2, 2, 97, 131), torch.ones(2, 2, 97, 131), _randn(2, 2, 97, 131, seed=5)):
            torch.testing.assert_close(five(torch.cat([image, distances], dim=1)), expected, rtol=1e-5, atol=1e-5)


def test_mean_init_extra_channels_are_the_rgb_filter_mean(tmp_path: Path) -> None:
    classifier = get_model("resnet18")
    weights = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), weights)
    model = build_model(ModelConfig(backbone="resnet18", in_channels=5, weights=str(weights), first_layer_init="mean"))
    w = first_conv(model.backbone.body, "conv1").weight.detach()
    rgb = classifier.conv1.weight.detach()
    torch.testing.assert_close(w[:, :3], rgb)
    torch.testing.assert_close(w[:, 3], rgb.mean(dim=1))
    torch.testing.assert_close(w[:, 4], rgb.mean(dim=1))


def test_vgg16_fcn8s_has_the_papers_parameter_count() -> None:
    model = build_model(ModelConfig(backbone="vgg16", stride=8, in_channels=3, num_classes=21))
    assert model.fc.fc6.weight.shape == (4096, 512, 7, 7) and model.fc.fc7.weight.shape == (4096, 4096, 1, 1)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 134.5e6) / 134.5e6 < 0.01, count


@pytest.mark.parametrize(("backbone", "channels", "k"), [("alexnet", 256, 6), ("vgg11", 512, 7)])
def test_convolutional_fc6_fc7_reproduce_the_classifier(backbone: str, channels: int, k: int) -> None:
    """On a k×k pool5 map the centre output of conv fc6/fc7 is the classifier's fc7 activation; `light` is 1×1."""
    classifier = get_model(backbone).classifier.eval()
    fc = convolutionalise(classifier, channels, "full").eval()
    pool5 = _randn(2, channels, k, k)
    linears = [m for m in classifier if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        expected = torch.relu(linears[1](torch.relu(linears[0](pool5.flatten(1)))))
        out = fc(pool5)
    assert out.shape == (2, 4096, k, k)
    torch.testing.assert_close(out[:, :, (k - 1) // 2, (k - 1) // 2], expected, rtol=1e-4, atol=1e-4)
    light = convolutionalise(classifier, channels, "light")
    assert light.fc6.weight.shape == (4096, channels, 1, 1)
    torch.testing.assert_close(light.fc6.weight, fc.fc6.weight.sum(dim=(2, 3), keepdim=True))


def test_light_head_is_explicit_and_only_for_vgg_and_alexnet() -> None:
    assert ModelConfig().head == "full"
    with pytest.raises(ValueError, match="VGG and AlexNet"):
        build_model(ModelConfig(backbone="resnet18", head="light"))
    model = build_model(ModelConfig(backbone="alexnet", head="light", in_channels=5)).eval()
    assert model.fc.fc6.kernel_size == (1, 1)
    assert model(torch.zeros(1, 5, 33, 47)).shape == (1, 1, 33, 47)


def test_unknown_backbone_names_it_and_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match="'resnet19'") as info:
        build_model(ModelConfig(backbone="resnet19"))
    assert "resnet18" in str(info.value) and "--list-archs" in str(info.value)
    with pytest.raises(ValueError, match=r"vit_b_16.*224"):
        build_model(ModelConfig(backbone="vit_b_16"))


def test_probe_rejects_a_classifier_without_stride_32_features() -> None:
    with pytest.raises(ValueError, match="no feature map at stride 32"):
        find_taps(get_model("squeezenet1_1"), 3, "squeezenet1_1")


def test_list_backbones_seeds_first_then_torchvision_classifiers() -> None:
    names = list_backbones()
    assert tuple(names[: len(SEED_BACKBONES)]) == SEED_BACKBONES
    assert set(NON_SEED) <= set(names) and len(names) == len(set(names))
    assert not any(n.startswith("vit_") for n in names)
    text = describe_backbones().splitlines()
    assert len(text) == len(names) and text[0].startswith("alexnet") and "imagenet weights" in text[0]


def test_weights_file_classifier_fcn_state_and_checkpoint(tmp_path: Path) -> None:
    classifier = get_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    config = ModelConfig(backbone="resnet18", stride=16, in_channels=3, num_classes=2, weights=str(path))
    model = build_model(config)
    trunk_conv = model.backbone.body.get_submodule("layer3.0.conv1")
    torch.testing.assert_close(trunk_conv.weight, classifier.layer3[0].conv1.weight)
    # A whole FCN state dict, bare or nested as in an ifcn checkpoint, restores the FCN exactly (other seed).
    fcn_file, ckpt_file = tmp_path / "fcn.pth", tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), fcn_file)
    torch.save({"model_config": config.to_dict(), "task": "semantic", "model": model.state_dict()}, ckpt_file)
    for file in (fcn_file, ckpt_file):
        again = build_model(ModelConfig(**{**config.to_dict(), "weights": str(file)}), seed=1)
        for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(ValueError, match="another configuration"):
        build_model(ModelConfig(backbone="resnet18", stride=16, in_channels=5, num_classes=2, weights=str(fcn_file)))
    torch.save(get_model("alexnet").state_dict(), bad := tmp_path / "alexnet.pth")
    with pytest.raises(ValueError, match=r"alexnet\.pth.*neither"):
        build_model(ModelConfig(backbone="resnet18", weights=str(bad)))
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        build_model(ModelConfig(backbone="resnet18", weights=str(tmp_path / "missing.pth")))


def _offline(monkeypatch: pytest.MonkeyPatch, hub: Path) -> list[str]:
    """An empty torch hub cache and no network (every URL fails at once); returns the URLs that were tried."""
    tried: list[str] = []

    def no_network(request: urllib.request.Request, timeout: float) -> None:
        tried.append(request.full_url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return tried


def test_imagenet_weights_without_network_name_the_file_and_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _offline(monkeypatch, tmp_path / "hub")
    url = imagenet_weights("resnet18").url
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(ModelConfig(backbone="resnet18", weights="imagenet"))
    message = str(info.value)
    assert Path(url).name in message and str(tmp_path / "hub" / "checkpoints") in message and url in message
    assert tried == [url]
    assert not (tmp_path / "hub" / "checkpoints" / Path(url).name).exists()


def test_imagenet_weights_come_from_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _offline(monkeypatch, tmp_path / "hub")
    classifier = get_model("resnet18")
    cached = cache_path(imagenet_weights("resnet18"))
    cached.parent.mkdir(parents=True)
    torch.save(classifier.state_dict(), cached)
    model = build_model(ModelConfig(backbone="resnet18", weights="imagenet", in_channels=5))
    assert tried == []
    torch.testing.assert_close(first_conv(model.backbone.body, "conv1").weight[:, :3], classifier.conv1.weight)


def test_build_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    config = ModelConfig(backbone="resnet18", num_classes=2)
    before = torch.random.get_rng_state()
    a, b, c = build_model(config), build_model(config), build_model(config, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.head.score32.weight, c.head.score32.weight)
    assert a.config == config


def test_channels_last_compile_and_deepcopy_keep_the_logits() -> None:
    """channels_last, a full-graph `torch.compile` trace (no graph breaks) and a deepcopy in eval mode all agree."""
    model = build_model(ModelConfig(backbone="resnet18", stride=8, in_channels=5, num_classes=2)).eval()
    x = _randn(2, 5, 45, 77)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(copy.deepcopy(model)(x), expected)
        torch.testing.assert_close(torch.compile(model, backend="eager", fullgraph=True)(x), expected)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def _first_conv_in_order(model: torch.nn.Module) -> str:
    return next(name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))


def test_every_backbone_spec_names_the_convolution_that_sees_the_image() -> None:
    """The spec's `first_conv` (not a search of the module tree) is the RGB input convolution of every listed
    classifier; built on the meta device (no memory, no weights), RegNet's init needs real tensors."""
    for name in list_backbones():
        with torch.device("meta" if not name.startswith("regnet") else "cpu"):
            if name.startswith("regnet") and name != "regnet_x_400mf":
                continue  # one RegNet stands for the family: the others take seconds each to build
            classifier = get_model(name)
        spec = get_backbone(name)
        assert first_conv(classifier, spec.first_conv).in_channels == 3, name
        assert spec.first_conv == _first_conv_in_order(classifier), name
    with pytest.raises(ValueError, match="not the first Conv2d"):
        first_conv(get_model("resnet18"), "bn1")
