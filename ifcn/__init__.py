"""iFCN: click-interaction data, FCN training and NoC evaluation on PASCAL VOC-style data.

The code lives in the repository's top-level folders `pipeline/`, `trainer/` and `manifests/`, installed as
`ifcn.pipeline`, `ifcn.trainer` and `ifcn.manifests`. `from ifcn import Predictor` gives the public inference API
(`ifcn.trainer.inference.Predictor`), imported on first use only: the pipeline imports `ifcn` and must not pull in
torch.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("ifcn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"


#: Public names loaded on first use (they pull in torch).
_LAZY = ("Predictor",)


def __dir__() -> list[str]:
    """The module's names and the lazy ones, so `dir(ifcn)` and completion show `Predictor`."""
    return sorted([*globals(), *_LAZY])


def __getattr__(name: str) -> Any:
    """Lazy attributes: `Predictor` loads torch and the models only when asked for."""
    if name == "Predictor":
        from ifcn.trainer.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'ifcn' has no attribute {name!r}")
