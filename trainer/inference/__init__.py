"""Using a trained model: the public `Predictor` (both tasks), large-image semantic prediction and export."""

from ifcn.trainer.inference.predictor import Predictor

__all__ = ["Predictor"]
