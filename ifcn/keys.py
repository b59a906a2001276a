"""Sample keys from image names: one reversible rule, used by every source, so a real folder works as it is.

A shard key names tar members (`<key>.<field>`, and webdataset splits a member name at its first dot), lines of list
files and HDF5 rows, so it may hold only `[A-Za-z0-9_-]`. Every other character of the name (a space, a dot, `%`,
any non-ASCII letter) becomes `%XX` for each byte of its UTF-8 encoding, upper-case hex (percent-encoding with no
character reserved): `baseball bat00_000000057232` -> `baseball%20bat00_000000057232`, `a.b` -> `a%2Eb`,
`é` -> `%C3%A9`. Names made of the safe characters (VOC's `2008_000123`, COCO's image ids) are their own
keys. Because `%` itself is escaped, the rule is one-to-one and `key_to_name` gives the exact name back; the name is
also kept in the sample's clicks JSON and in the evaluation's per-object records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

#: The bytes a key keeps as they are.
SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
#: What `name_to_key` can return.
KEY = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
#: File names a file system could not decode reach Python as lone surrogates: they round-trip to their bytes.
_ERRORS = "surrogateescape"


def name_to_key(name: str) -> str:
    """The shard key of image name `name`: every byte of its UTF-8 encoding outside `[A-Za-z0-9_-]` as `%XX`."""
    if not name:
        raise ValueError("an image name must not be empty")
    return "".join(chr(b) if b in SAFE else f"%{b:02X}" for b in name.encode("utf-8", _ERRORS))


def key_to_name(key: str) -> str:
    """The image name `key` was made from (the inverse of `name_to_key`); ValueError for a string it cannot return."""
    if not KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a sample key: keys hold A-Z, a-z, 0-9, '_', '-' and %XX escapes")
    return unquote_to_bytes(key).decode("utf-8", _ERRORS)


def check_unique_keys(pairs: Iterable[tuple[str, str]]) -> str | None:
    """Given (key, name) pairs, why two names share one key (both named), or None when every key is distinct."""
    seen: dict[str, str] = {}
    for key, name in pairs:
        if key in seen:
            return f"the names {seen[key]!r} and {name!r} both give the sample key {key!r}"
        seen[key] = name
    return None
