"""The label set of an annotation project: VOC's 20 object classes by default, or one name per line of a file.

A label's class index is its position + 1 (0 is background), as in VOC's `SegmentationClass` and the COCO export's
category ids.
"""

from __future__ import annotations

from pathlib import Path

from ifcn.labels import VOC_CLASSES

#: VOC 2012's object classes (background left out).
DEFAULT_LABELS: tuple[str, ...] = VOC_CLASSES[1:]
#: Class indices stay below VOC's void (255) and fit a palette PNG.
MAX_LABELS = 254


def check_labels(labels: tuple[str, ...], source: str) -> tuple[str, ...]:
    """The labels if they are usable: 1..254 distinct non-blank names; a ValueError naming `source` otherwise."""
    if not labels:
        raise ValueError(f"{source}: no labels; write one label name per line")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{source}: {len(labels)} labels, at most {MAX_LABELS} fit a palette PNG")
    seen = set()
    for i, name in enumerate(labels, 1):
        if not name.strip() or name != name.strip():
            raise ValueError(f"{source}: label {i} {name!r} is blank or has spaces around it; fix that line")
        if name in seen:
            raise ValueError(f"{source}: label {name!r} is listed twice; keep one")
        seen.add(name)
    return labels


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line (blank lines and `#` comments skipped; UTF-8, a byte-order mark allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--labels {path}: cannot read it as UTF-8 text ({e}); give a text file, one label a line") \
            from None
    lines = [line.strip() for line in text.splitlines()]
    return check_labels(tuple(line for line in lines if line and not line.startswith("#")), f"--labels {path}")
