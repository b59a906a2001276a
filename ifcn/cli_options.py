"""The one command-line dialect of `ifcn-prep`, `ifcn-train` and `ifcn-eval`: the options two or more tools share,
each with one meaning, the old spellings kept for one release, progress output, and one mapping of expected errors.

The rules (the README's "One command-line dialect" lists every shared flag):
- inputs and outputs are options (`--shards`, `--out`, `--checkpoint`, `--images`); an old positional form keeps
  working for one release and prints a deprecation line;
- `--workers` always counts processes; a count of threads is `--threads`;
- `--device` takes any torch device string (`auto` = CUDA when available, else the CPU);
- `--on-error fail|skip` defaults to `fail` wherever it exists (a bad input is never dropped silently);
- progress: a bar only when stdout is a terminal and `--no-progress` is not given, otherwise plain lines;
- expected errors (bad input, a refused output, a full disk, any other `OSError`) end the command with one line and
  exit status 1; bad flags exit with status 2 (Click's usage errors). Never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

T = TypeVar("T")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEVICE_HELP = "auto = CUDA when available, else CPU; or any torch device: cpu, cuda, cuda:1, mps"
ON_ERROR = ("fail", "skip")
#: The long side (pixels) at which a model sees a photo unless `--max-side` says otherwise.
MAX_SIDE = 1024
#: Plain progress lines per run when no bar is shown (one per tenth of the work).
PLAIN_LINES = 10


def device_option(**kwargs: Any) -> Decorator:
    """`--device`: any torch device string, default `auto`."""
    return click.option("--device", default="auto", show_default=True, help=DEVICE_HELP + ".", **kwargs)


def max_side_option(zero_means: str | None = None) -> Decorator:
    """`--max-side`: the long side at which the network sees a photo (a larger one is downscaled); what the command
    returns stays at the photo's own size. `zero_means`: what 0 does where 0 is allowed."""
    help_text = ("The network sees photos with a longer side downscaled to this many pixels; masks and outputs come "
                 "back at the photo's own size.")
    minimum = 32
    if zero_means:
        help_text, minimum = f"{help_text} 0 = {zero_means}.", 0
    return click.option("--max-side", type=click.IntRange(min=minimum), default=MAX_SIDE, show_default=True,
                        help=help_text)


def on_error_option(what: str) -> Decorator:
    """`--on-error fail|skip`, default `fail`; `what` says which inputs it concerns."""
    return click.option("--on-error", type=click.Choice(ON_ERROR), default="fail", show_default=True,
                        help=f"{what}: stop at the first (fail) or leave them out with a message and go on (skip).")


def no_progress_option() -> Decorator:
    """`--no-progress`: plain lines instead of a bar (the bar is shown only on a terminal anyway)."""
    return click.option("--no-progress", is_flag=True,
                        help="Plain progress lines instead of a bar (also what any non-terminal stdout gets).")


def threshold_option(default: float = 0.5, why: str = "") -> Decorator:
    """`--threshold`: the mask is probability > threshold; `why` explains a default other than 0.5."""
    return click.option("--threshold", type=click.FloatRange(0.0, 1.0, max_open=True), default=default,
                        show_default=True, help=f"Mask = foreground probability > threshold{why}.")


def zoom_in_option(default: int = 400, first_click: bool = False) -> Decorator:
    """`--zoom-in`: the long side of zoom-in inference's view (RITM's 400), 0 = off; `first_click`: the web tools
    bound an object's first, whole-photo pass to twice that side."""
    first = " (an object's first click: the whole photo, at most twice that side)" if first_click else ""
    return click.option("--zoom-in", type=click.IntRange(min=0), default=default, show_default=True,
                        help="Zoom-in inference: after an object's first click, predict on a crop around its mask "
                             f"and positive clicks (grown 1.4x) resized to this long side{first}; 400 as RITM; "
                             "0 = off.")


def server_options(port: int) -> Decorator:
    """`--host`, `--port` and `--allowed-host` of the web tools (demo, annotate, Label Studio backend)."""
    options = (
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to bind; 0.0.0.0 exposes the server to your network (or a container's host)."),
        click.option("--port", type=click.IntRange(1, 65535), default=port, show_default=True),
        click.option("--allowed-host", "allowed_host", multiple=True, metavar="NAME",
                     help="Another host name (or address) requests may name; repeat for several; '*' allows any. "
                          "The bound address (and, for loopback or 0.0.0.0, 127.0.0.1/localhost/::1) always works."),
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def deprecation(old: str, new: str) -> None:
    """The one line on stderr that an old spelling prints."""
    click.echo(f"Deprecated: {old} is {new} now; the old form goes in the next release.", err=True)


def renamed_option(old: str, new: str, dest: str, **kwargs: Any) -> Decorator:
    """Keep the flag `old` working for one release as a hidden spelling of `new` (the command's parameter `dest`):
    given, it prints a deprecation line and its value is used (unless `new` is given too)."""
    hidden = f"deprecated_{dest}"

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **params: Any) -> Any:
            value = params.pop(hidden)
            if value is not None:
                deprecation(old, new)
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) in (click.core.ParameterSource.DEFAULT, None):
                    params[dest] = value
            return command(*args, **params)

        return click.option(old, hidden, hidden=True, default=None, **kwargs)(run)

    return decorate


class _DeprecatedArgument(click.Argument):
    """A positional input kept for one release: still parsed, but left out of the usage line (the option is shown)."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def deprecated_argument(dest: str, **kwargs: Any) -> Decorator:
    """The old positional form of an input (`verify SHARDS`), accepted into `dest` and hidden from the usage line;
    the command resolves it with `positional_or_option`."""
    return click.argument(dest, cls=_DeprecatedArgument, required=False, **kwargs)


def positional_or_option(name: str, value: T | None, option_value: T | None) -> T:
    """An input given the old positional way (`verify SHARDS`) or as its option (`--shards`): the option wins; the
    positional form prints a deprecation line; neither is a usage error. Empty (None, ()) counts as not given."""
    if option_value:
        return option_value
    if not value:
        raise click.UsageError(f"missing option --{name}")
    deprecation(f"the positional {name.upper()}", f"--{name} {name.upper()}")
    return value


def show_bar(enabled: bool) -> bool:
    """Whether a progress bar is shown: asked for and stdout is a terminal (`ifcn-train`'s rule for every tool)."""
    return enabled and sys.stdout.isatty()


def progress(items: Iterable[T], *, total: int | None, desc: str, unit: str, bar: bool = True) -> Iterator[T]:
    """`items` with progress: a tqdm bar (on stderr) when `show_bar(bar)`, otherwise a plain line on stderr per tenth
    of `total` (per 100 items without one) and at the end."""
    if show_bar(bar):
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
        return
    every = max(1, total // PLAIN_LINES) if total else 100
    done = 0
    for item in items:
        yield item
        done += 1
        if done % every == 0 and done != total:
            click.echo(f"{desc}: {done}{f'/{total}' if total else ''} {unit}", err=True)
    click.echo(f"{desc}: {done}{f'/{total}' if total else ''} {unit}, done", err=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every tool's expected errors as one line and exit status 1: bad input and refused outputs (`ValueError`, with
    `InputError`, `SetupError`, `OutputRefused`, locked folders), missing or unwritable files and a full disk
    (`OSError`, with `DiskFullError`)."""
    try:
        yield
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
