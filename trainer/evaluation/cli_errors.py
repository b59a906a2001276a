"""How every `ifcn-eval` command reports bad input: a Click error with the message, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad files and settings (ValueError, InputError, missing files) become a Click error with their message."""
    try:
        yield
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
