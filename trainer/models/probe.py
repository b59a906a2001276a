"""Find and measure the stride-8/16/32 taps of a torchvision classifier without running it on real data.

Shapes come from one forward pass of the traced model on a `meta` tensor with `meta` copies of its weights: no
arithmetic and no memory, whatever the model's size. The probe input is non-square so that a channels-last (NHWC)
tensor, as Swin produces, cannot be mistaken for an NCHW one.

A tap is the last *cut* node at its stride: a node that every later computation reaches only through it (a stage or
block output; not a tensor inside a residual block, which a skip connection bypasses). "Last" makes the tap as deep
as possible at that resolution, e.g. ResNet's `layer2` output rather than `layer3`'s first 1×1 convolution.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import fx, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

#: (height, width) of the probe input: large enough that valid (unpadded) convolutions barely change the ratios.
PROBE_SIZE = (512, 640)
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Tap:
    """One feature tap: a node name for `create_feature_extractor`, its channels and its memory layout."""

    node: str
    stride: int
    channels: int
    nhwc: bool = False


def extractor(model: nn.Module, nodes: list[str] | dict[str, str]) -> fx.GraphModule:
    """`create_feature_extractor` for `nodes`; train and eval graphs may differ only in unused branches (aux heads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return create_feature_extractor(model, return_nodes=nodes, suppress_diff_warning=True)


def meta_forward(module: nn.Module, in_channels: int) -> object:
    """Run `module` (eval mode) on a `meta` probe input with `meta` stand-ins for its weights; returns the output."""
    state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    meta_state = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
    x = torch.empty(1, in_channels, *PROBE_SIZE, device="meta")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return torch.func.functional_call(module, meta_state, (x,))
    finally:
        module.train(was_training)


def _stride_and_layout(t: object) -> tuple[int, int, bool] | None:
    """(stride, channels, nhwc) of a 4-D feature map at a power-of-two stride, or None."""
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        return None
    for nhwc, (h, w), c in ((False, t.shape[2:], t.shape[1]), (True, t.shape[1:3], t.shape[3])):
        if h == 0 or w == 0:
            continue
        sh, sw = round(math.log2(PROBE_SIZE[0] / h)), round(math.log2(PROBE_SIZE[1] / w))
        if sh == sw and sh > 0:
            return 2**sh, int(c), nhwc
    return None


def cut_nodes(graph: fx.Graph) -> list[fx.Node]:
    """Nodes, in execution order, after which no earlier activation is used again (the graph's articulation points)."""
    nodes = [n for n in graph.nodes if n.op != "output"]
    index = {n: i for i, n in enumerate(nodes)}
    activation: set[fx.Node] = set()
    for n in nodes:  # computed from the input (parameters and constants do not count as skip connections)
        if n.op == "placeholder" or any(a in activation for a in n.all_input_nodes):
            activation.add(n)
    cuts, reach = [], -1
    for i, n in enumerate(nodes):
        if n not in activation:
            continue
        if reach <= i:
            cuts.append(n)
        reach = max([reach, i] + [index[u] for u in n.users if u in index])
    return cuts


def measure_taps(model: nn.Module, nodes: tuple[str, str, str], in_channels: int) -> tuple[Tap, Tap, Tap]:
    """Channels and layout of given stride-8/16/32 tap nodes, checking that their strides are what is claimed."""
    out = meta_forward(extractor(model, {n: str(s) for n, s in zip(nodes, STRIDES, strict=True)}), in_channels)
    taps = []
    for node, stride in zip(nodes, STRIDES, strict=True):
        found = _stride_and_layout(out[str(stride)])
        if found is None or found[0] != stride:
            raise ValueError(f"tap {node!r} of {type(model).__name__} is not at stride {stride}")
        taps.append(Tap(node, stride, found[1], found[2]))
    return taps[0], taps[1], taps[2]


def find_taps(model: nn.Module, in_channels: int, name: str) -> tuple[Tap, Tap, Tap]:
    """The last cut node at strides 8, 16 and 32 of any torchvision classifier; `name` is for error messages."""
    train_nodes, eval_nodes = get_graph_node_names(model, suppress_diff_warning=True)
    in_both = set(train_nodes)
    candidates = [n for n in eval_nodes if n in in_both]
    try:
        probe = extractor(model, candidates)
        out = meta_forward(probe, in_channels)
    except Exception as e:  # tracing/shape errors of models that fix their input size (ViT, MaxViT)
        raise ValueError(f"backbone {name!r} cannot be probed on a {PROBE_SIZE[0]}×{PROBE_SIZE[1]} input "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); choose another backbone") from None
    output = next(n for n in probe.eval_graph.nodes if n.op == "output")
    name_of = {node: key for key, node in output.args[0].items()}
    taps: dict[int, Tap] = {}
    for node in cut_nodes(probe.eval_graph):
        found = _stride_and_layout(out[name_of[node]]) if node in name_of else None
        if found is not None and found[0] in STRIDES:
            taps[found[0]] = Tap(name_of[node], found[0], found[1], found[2])
    missing = [s for s in STRIDES if s not in taps]
    if missing:
        raise ValueError(f"backbone {name!r} has no feature map at stride {', '.join(map(str, missing))}; "
                         f"FCN needs strides 8, 16 and 32: choose another backbone")
    return taps[8], taps[16], taps[32]
