"""iFCN: click-interaction data, FCN training and NoC evaluation on PASCAL VOC-style data.

The code lives in the repository's top-level folders `pipeline/`, `trainer/` and `manifests/`, installed as
`ifcn.pipeline`, `ifcn.trainer` and `ifcn.manifests`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ifcn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
