"""`--crf` and its settings on `ifcn-eval predict` and `ifcn-eval miou`: one decorator that adds the options and hands
the command a single `crf` argument (`CrfParams`, or None without `--crf`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ifcn.trainer.inference.crf import MAX_ITERATIONS, CrfParams

#: Option name -> CrfParams field; their defaults are CrfParams' (DeepLab v2's VOC settings).
_FIELDS = {"crf_iters": "iterations", "crf_gaussian_sxy": "gaussian_sxy", "crf_gaussian_weight": "gaussian_weight",
           "crf_bilateral_sxy": "bilateral_sxy", "crf_bilateral_srgb": "bilateral_srgb",
           "crf_bilateral_weight": "bilateral_weight"}
_DEFAULTS = CrfParams()


def _option(name: str, kind: Any, text: str) -> Callable[..., Any]:
    default = getattr(_DEFAULTS, _FIELDS[name])
    return click.option("--" + name.replace("_", "-"), type=kind, default=None,
                        help=f"{text} [default: {default:g}; needs --crf]")


def crf_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --crf and the CRF's settings to `command`, which receives them as `crf: CrfParams | None`."""

    @functools.wraps(command)
    def wrapper(*args: Any, crf: bool, **kwargs: Any) -> Any:
        given = {field: kwargs.pop(name) for name, field in _FIELDS.items()}
        chosen = {field: value for field, value in given.items() if value is not None}
        if chosen and not crf:
            names = ", ".join("--" + n.replace("_", "-") for n, f in _FIELDS.items() if f in chosen)
            raise click.UsageError(f"{names} set the dense CRF's settings; add --crf to use it")
        try:
            params = CrfParams(**chosen) if crf else None
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        return command(*args, crf=params, **kwargs)

    options = [
        click.option("--crf", is_flag=True,
                     help="Refine the labels with a dense CRF (DeepLab's step after the FCN; needs the optional "
                          "extra [crf]: pip install -e \".[crf]\", built from source with a C/C++ compiler)."),
        _option("crf_iters", click.IntRange(1, MAX_ITERATIONS), "Mean-field iterations of the CRF."),
        _option("crf_gaussian_sxy", click.FloatRange(min=0, min_open=True),
                "Position deviation (pixels) of the CRF's Gaussian smoothness term."),
        _option("crf_gaussian_weight", click.FloatRange(min=0), "Weight of the Gaussian term."),
        _option("crf_bilateral_sxy", click.FloatRange(min=0, min_open=True),
                "Position deviation (pixels) of the CRF's bilateral (position + colour) term."),
        _option("crf_bilateral_srgb", click.FloatRange(min=0, min_open=True),
                "Colour deviation (0-255 RGB) of the bilateral term."),
        _option("crf_bilateral_weight", click.FloatRange(min=0), "Weight of the bilateral term."),
    ]
    decorated: Callable[..., Any] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
