"""Export a trained FCN to ONNX or TorchScript with dynamic batch, height and width, and its input contract inside.

Two graphs (spec §9):
- the network: the (B, C, H, W) float32 network input of spec §3 (normalised RGB, then for the interactive task the
  positive and negative click-distance channels) -> probabilities;
- `with_clicks` (interactive only): (B, H, W, 3) uint8 RGB and padded click lists -> probabilities; the distance
  channels are computed inside the graph by `ifcn.trainer.core.inputs.batch_input`, the function training and the
  `Predictor` use, so a deployment needs nothing but a runtime.
Probabilities are (B, H, W) foreground (interactive) or (B, C, H, W) per class (semantic). The contract (channel
order, normalisation, distance clip, input names) is JSON in the ONNX model's `metadata_props` under `ifcn_contract`,
and in the TorchScript archive as the extra file `ifcn_contract.json`.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import ifcn
from ifcn.io import atomic_path, atomic_write_bytes
from ifcn.outputs import check_outputs
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import INPUT_KEYS, PREV, batch_input
from ifcn.trainer.inference.predictor import MIN_SIDE, Predictor, probabilities

FORMATS = ("onnx", "torchscript")
CONTRACT_KEY = "ifcn_contract"
TORCHSCRIPT_CONTRACT_FILE = "ifcn_contract.json"
NETWORK_INPUTS = ("input",)
CLICK_INPUTS = INPUT_KEYS
#: The extra input of a `--prev-mask` model's with-clicks graph.
PREV_INPUT = "prev"


class NetworkGraph(nn.Module):
    """The network input of spec §3 -> probabilities."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.model(x), self.task)


class ClickGraph(nn.Module):
    """uint8 RGB images and padded click lists (and, for a `--prev-mask` model, the previous probabilities) ->
    foreground probabilities, the input built as in training by the model's input contract."""

    def __init__(self, model: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, image: torch.Tensor, pos: torch.Tensor, pos_valid: torch.Tensor, neg: torch.Tensor,
                neg_valid: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        batch = {"image": image, "pos": pos, "pos_valid": pos_valid, "neg": neg, "neg_valid": neg_valid}
        if prev is not None:
            batch[PREV] = prev
        return probabilities(self.model(batch_input(batch, image.device, self.spec)), "interactive")


def contract(predictor: Predictor, with_clicks: bool) -> dict[str, Any]:
    """What a caller must feed the exported graph and what it returns (stored in the file's metadata)."""
    interactive = predictor.task == "interactive"
    spec = predictor.spec
    click_channels = ("positive_distance", "negative_distance") if spec.click_encoding == "distance" else \
        ("positive_disk", "negative_disk")
    channels = ["R", "G", "B", *(click_channels if interactive else ()),
                *(("previous_probability",) if predictor.prev_mask else ())]
    rgb = {"mean": [m * 255 for m in spec.mean], "std": [s * 255 for s in spec.std],
           "formula": "(pixel - mean) / std per channel, pixel in 0..255, RGB order"}
    if spec.click_encoding == "distance":
        clicks = {"encoding": "distance", "clip": spec.clip, "divisor": spec.clip, "no_click_value": 1.0,
                  "formula": "min Euclidean distance in input pixels to a click of that sign, clipped at clip, "
                             "/ divisor"}
    else:
        clicks = {"encoding": "disk", "radius": spec.disk_radius, "no_click_value": 0.0,
                  "formula": "1.0 where the Euclidean distance in input pixels to a click of that sign is <= radius, "
                             "else 0.0"}
    if with_clicks:
        inputs = {"image": "(B, H, W, 3) uint8 RGB",
                  "pos": "(B, K, 2) float32 (y, x) pixel coordinates of positive clicks, padded",
                  "pos_valid": "(B, K) bool, false for padding (K >= 1: pad an image without clicks with one false)",
                  "neg": "(B, L, 2) float32 (y, x) of negative clicks, padded",
                  "neg_valid": "(B, L) bool, false for padding (L >= 1)"}
        if predictor.prev_mask:
            inputs[PREV_INPUT] = "(B, H, W) float32 probabilities returned before the last click (zeros at first)"
    else:
        inputs = {"input": f"(B, {len(channels)}, H, W) float32: channels {', '.join(channels)}"}
    output = ("(B, H, W) float32 foreground probability (sigmoid of the logit)" if interactive else
              f"(B, {predictor.num_classes}, H, W) float32 class probabilities (softmax)")
    return {"ifcn_version": ifcn.__version__, "task": predictor.task, "model": predictor.config.to_dict(),
            "graph": "with_clicks" if with_clicks else "network", "inputs": inputs, "output": output,
            "channels": channels, "rgb_normalisation": rgb, "input_spec": spec.to_dict(),
            **({"click_channels": clicks} if interactive else {}),
            "min_side": MIN_SIDE, "dynamic_axes": "batch, height and width (and the click counts K, L)"}


def example_inputs(predictor: Predictor, with_clicks: bool) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: batch 2 and distinct sizes, so no dimension is mistaken for a constant."""
    b, h, w = 2, 64, 80
    generator = torch.Generator().manual_seed(0)
    if not with_clicks:
        channels = predictor.config.in_channels
        return (torch.randn(b, channels, h, w, generator=generator),)
    image = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=generator)
    pos = torch.rand(b, 3, 2, generator=generator) * torch.tensor([h - 1, w - 1])
    neg = torch.rand(b, 4, 2, generator=generator) * torch.tensor([h - 1, w - 1])
    args = (image, pos, torch.tensor([[True, True, False]] * b), neg, torch.tensor([[True, False, False, False]] * b))
    return (*args, torch.rand(b, h, w, generator=generator)) if predictor.prev_mask else args


def graph_of(predictor: Predictor, with_clicks: bool) -> tuple[nn.Module, tuple[str, ...]]:
    """The module to export and its input names (export traces on the CPU)."""
    if predictor.device.type != "cpu":
        raise ValueError("export traces the model on the CPU: load the predictor with device='cpu'")
    model = predictor.model
    if with_clicks:
        if predictor.task != "interactive":
            raise ValueError("--with-clicks needs an interactive checkpoint; a semantic one takes images only")
        names = (*CLICK_INPUTS, PREV_INPUT) if predictor.prev_mask else CLICK_INPUTS
        return ClickGraph(model, predictor.spec).eval(), names
    return NetworkGraph(model, predictor.task).eval(), NETWORK_INPUTS


def _onnx(graph: nn.Module, args: tuple[torch.Tensor, ...], names: tuple[str, ...], out: Path,
          metadata: str) -> None:
    import onnx
    from torch.export import Dim

    batch, height, width = Dim("batch"), Dim("height"), Dim("width")
    if names[:len(CLICK_INPUTS)] == CLICK_INPUTS:
        k, n = Dim("positive_clicks"), Dim("negative_clicks")
        shapes: tuple[dict[int, Any], ...] = ({0: batch, 1: height, 2: width}, {0: batch, 1: k}, {0: batch, 1: k},
                                              {0: batch, 1: n}, {0: batch, 1: n})
        if PREV_INPUT in names:
            shapes = (*shapes, {0: batch, 1: height, 2: width})
    else:
        shapes = ({0: batch, 2: height, 3: width},)
    program = torch.onnx.export(graph, args, dynamo=True, input_names=list(names), output_names=["probability"],
                                dynamic_shapes=shapes, external_data=False, verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {CONTRACT_KEY: metadata})
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))


def _torchscript(graph: nn.Module, args: tuple[torch.Tensor, ...], out: Path, metadata: str) -> None:
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(graph, args, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_CONTRACT_FILE: metadata})
    atomic_write_bytes(out, buffer.getvalue())


def export_model(predictor: Predictor, fmt: str, out: Path, with_clicks: bool = False) -> dict[str, Any]:
    """Write the predictor's network as `fmt` (onnx or torchscript) to `out`, atomically; returns the contract."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    graph, names = graph_of(predictor, with_clicks)
    args = example_inputs(predictor, with_clicks)
    info = contract(predictor, with_clicks)
    metadata = json.dumps(info, sort_keys=True)
    with warnings.catch_warnings():
        # Expected and harmless: TorchScript's deprecation notice, constants recorded by the tracer (the ImageNet
        # statistics; the "no click" branch, never taken since K >= 1 is part of the contract), axis-name notes.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*axis name.*", category=UserWarning)
        if fmt == "onnx":
            _onnx(graph, args, names, out, metadata)
        else:
            _torchscript(graph, args, out, metadata)
    return info


def read_contract(path: Path) -> dict[str, Any]:
    """The contract stored in an exported file (ONNX or TorchScript)."""
    path = Path(path)
    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
    if zipped:  # TorchScript archives are zip files
        files = {TORCHSCRIPT_CONTRACT_FILE: ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        return json.loads(files[TORCHSCRIPT_CONTRACT_FILE])
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props[CONTRACT_KEY])


def _is_export(path: Path) -> bool:
    """Whether `path` is a file this module exported (it holds the contract)."""
    try:
        return isinstance(read_contract(path), dict)
    except Exception:  # any unreadable file is simply not ours
        return False


def export_checkpoint(checkpoint: Path, fmt: str, out: Path, with_clicks: bool = False) -> dict[str, Any]:
    """`ifcn-eval export`: load a checkpoint (either task) on the CPU and export it; returns the contract. `out` may
    replace an earlier export, never the checkpoint or another file."""
    check_outputs([Path(out)], flag="--out", inputs=[checkpoint], ours=_is_export)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise ValueError(f"ONNX export needs the packages onnx and onnxscript ({e}); install them with "
                             "`pip install 'ifcn[export]'`") from None
    return export_model(Predictor.from_checkpoint(checkpoint, device="cpu"), fmt, out, with_clicks)
