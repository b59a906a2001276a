"""FCN-32s/16s/8s score heads (Long et al. 2015 §4.2) with exact-size output for any input size.

Upsampling by an integer factor f is either a learnable transposed convolution initialised to bilinear interpolation
(`deconv`) or fixed bilinear interpolation (`bilinear`). The transposed convolution sees a 1-pixel replicate-padded
input, so at initialisation it reproduces `F.interpolate(..., scale_factor=f, mode="bilinear", align_corners=False)`
everywhere, borders included. Each ×f result is then bilinearly resized to the size it must match (the skip score or
the network input), which absorbs the off-by-one sizes that floor/ceil pooling gives on odd inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ifcn.trainer.models.model_config import Upsample


def bilinear_kernel(factor: int) -> torch.Tensor:
    """(2f, 2f) kernel of bilinear interpolation by `factor` for a stride-f transposed convolution."""
    size = 2 * factor
    centre = (size - 1) / 2
    ramp = 1.0 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(ramp, ramp).float()


class BilinearDeconv(nn.Module):
    """Learnable ×factor upsampling (FCN `upscore`): class i maps to class i with a bilinear kernel, others zero."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        if factor % 2:
            raise ValueError(f"upsampling factor must be even, got {factor}")
        # Padding 3f/2 on the 1-pixel replicate-padded input gives exactly n*f outputs aligned like align_corners=False.
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=3 * factor // 2,
                                         bias=False)
        with torch.no_grad():
            eye = torch.eye(channels).view(channels, channels, 1, 1)
            self.deconv.weight.copy_(eye * bilinear_kernel(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))


class FixedBilinear(nn.Module):
    """Fixed ×factor bilinear interpolation (no parameters)."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        del channels  # same signature as BilinearDeconv
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


#: Upsampling layers keyed by the `ModelConfig.upsample` name.
UPSAMPLERS: dict[str, type[nn.Module]] = {"deconv": BilinearDeconv, "bilinear": FixedBilinear}


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize to exactly `size` (an identity when the size already matches)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A skip score layer: starts at zero so a finer FCN starts out computing what the coarser one does."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCNHead(nn.Module):
    """Scores the stride-32 features and, for FCN-16s/8s, fuses zero-initialised 1×1 scores of the finer taps.

    `channels` are the channel counts of the stride-8, stride-16 and stride-32 inputs. The stride-32 score keeps
    PyTorch's default initialisation, so the trunk receives gradients from the very first step.
    """

    def __init__(self, channels: tuple[int, int, int], num_classes: int, stride: int, upsample: Upsample) -> None:
        super().__init__()
        if stride not in (8, 16, 32):
            raise ValueError(f"stride must be 8, 16 or 32, got {stride}")
        if upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {sorted(UPSAMPLERS)}, got {upsample!r}")
        c8, c16, c32 = channels
        up = UPSAMPLERS[upsample]
        self.stride = stride
        self.score32 = nn.Conv2d(c32, num_classes, 1)
        if stride <= 16:
            self.up32 = up(num_classes, 2)
            self.score16 = zero_conv1x1(c16, num_classes)
        if stride == 8:
            self.up16 = up(num_classes, 2)
            self.score8 = zero_conv1x1(c8, num_classes)
        self.up_final = up(num_classes, stride)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor,
                size: tuple[int, int] | torch.Size) -> torch.Tensor:
        score = self.score32(f32)
        if self.stride <= 16:
            skip = self.score16(f16)
            score = skip + resize(self.up32(score), skip.shape[-2:])
        if self.stride == 8:
            skip = self.score8(f8)
            score = skip + resize(self.up16(score), skip.shape[-2:])
        return resize(self.up_final(score), size)
