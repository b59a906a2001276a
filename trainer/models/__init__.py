"""FCN-32s/16s/8s over torchvision classification backbones (spec §4)."""

from ifcn.trainer.models.backbones import (
    SEED_BACKBONES,
    available_backbones,
    describe_backbones,
    get_backbone,
    list_backbones,
)
from ifcn.trainer.models.builder import build_model
from ifcn.trainer.models.fcn import FCN
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.models.weights import WeightsUnavailableError

__all__ = [
    "FCN",
    "SEED_BACKBONES",
    "ModelConfig",
    "WeightsUnavailableError",
    "available_backbones",
    "build_model",
    "describe_backbones",
    "get_backbone",
    "list_backbones",
]
