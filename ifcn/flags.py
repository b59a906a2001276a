"""Setting names and command-line flags, one rule for every tool: `val_shards` <-> `--val-shards`."""

from __future__ import annotations


def flag(name: str) -> str:
    """The command-line flag of a setting: `val_shards` -> `--val-shards`."""
    return "--" + name.replace("_", "-")


def setting_name(flag_text: str) -> str:
    """The setting a flag sets: `--val-shards` -> `val_shards`."""
    return flag_text.lstrip("-").replace("-", "_")
