"""Where a backbone's starting weights come from: `imagenet` (torchvision weight enums), `none`, or a file.

ImageNet weights live in torch hub's cache (`torch.hub.get_dir()/checkpoints/<file>`), where torchvision itself looks.
A missing file is downloaded with a timeout; when that fails (no network) the error names the file, the folder and
the URL, so it can be copied there by hand. A weights file is read with `weights_only=True` (no arbitrary unpickling).
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import torch
from torchvision.models import WeightsEnum, get_model_weights

from ifcn.io import atomic_path

log = logging.getLogger(__name__)

#: Seconds to wait for the download server before giving up (a blocked network otherwise hangs forever).
DOWNLOAD_TIMEOUT_S = 30
#: Keys under which training checkpoints and common exporters nest the state dict.
NESTED_STATE_KEYS = ("model", "state_dict")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are neither cached nor downloadable."""


def imagenet_weights(backbone: str) -> WeightsEnum:
    """torchvision's default ImageNet weights for `backbone`."""
    return get_model_weights(backbone).DEFAULT


def cache_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (and looks for) the file of `weights`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def download_weights(url: str, dest: Path) -> None:
    """Download `url` to `dest` atomically with a timeout, checking the sha256 prefix torchvision puts in the name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, dest)
    request = urllib.request.Request(url, headers={"User-Agent": "ifcn"})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        match = torch.hub.HASH_REGEX.search(dest.name)
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise OSError(f"{url}: downloaded file does not match the hash {match.group(1)} in its name")


def ensure_imagenet_file(backbone: str) -> WeightsEnum:
    """Make sure the ImageNet weights of `backbone` are in the hub cache (downloading them if possible)."""
    weights = imagenet_weights(backbone)
    path = cache_path(weights)
    if path.is_file():
        return weights
    try:
        download_weights(weights.url, path)
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        raise WeightsUnavailableError(
            f"ImageNet weights for {backbone!r} are not cached and could not be downloaded ({e}). "
            f"Download {weights.url} on a machine with internet and copy the file {path.name!r} into "
            f"{path.parent}/ (torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it), "
            f"or pass --weights FILE or --weights none") from None
    return weights


def safe_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load` with `weights_only=True`: tensors and plain values only, never arbitrary objects (unpickling them
    could run code). A file that cannot be read so raises ValueError saying why, without torch's advice to retry
    with `weights_only=False`: a file this project wrote never needs that. A tar archive (an `ifcn-prep` shard, which
    torch would take for its legacy tar format) is named as such."""
    if tarfile.is_tarfile(path):
        raise ValueError("it is a tar archive (an `ifcn-prep` shard?), not a PyTorch weights file or checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for foreign or truncated files
        text = str(e)
        if "weights_only" in text or "Weights only" in text:
            raise ValueError("it holds Python objects other than tensors and plain values, so this project did not "
                             "write it; it was not loaded, because loading it could run arbitrary code") from None
        raise ValueError(f"{type(e).__name__}: {text.splitlines()[0] if text else 'unreadable'}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a bare one, or one nested under `model`/`state_dict` (e.g. an ifcn checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path}: no such file; pass --weights imagenet, --weights none or the path "
                                "of a weights file")
    try:
        state = safe_load(path)
    except ValueError as e:
        raise ValueError(f"--weights {path} is not a readable state dict ({e})") from None
    for key in NESTED_STATE_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights {path} does not hold a state dict (name → tensor)")
    return state
