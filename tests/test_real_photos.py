"""The stable hash split of real photos (`bench/real_photos.py`) on a small synthetic DAVIS-layout folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bench.real_photos import split_of, write_split


def _folder(root: Path, stems: list[str]) -> Path:
    for sub in ("img", "gt"):
        (root / sub).mkdir(parents=True)
    for stem in stems:
        (root / "img" / f"{stem}.jpg").write_bytes(stem.encode())
        (root / "gt" / f"{stem}.png").write_bytes(stem.encode())
    return root


def test_the_rule_is_the_documented_hash() -> None:
    for stem in ("baseball bat00_000000057232", "a.b", "caf\u00e9", "x"):
        bucket = int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) % 100
        assert split_of(stem) == ("train" if bucket < 80 else "held")


def test_hard_linked_halves_keep_the_original_names_and_do_not_depend_on_the_rest(tmp_path: Path) -> None:
    stems = [f"photo {i:03d}" for i in range(60)] + ["a.b c", "caf\u00e9"]
    root = _folder(tmp_path / "data", stems)
    counts = write_split(root, tmp_path / "split")
    assert sum(counts.values()) == len(stems) and 0 < counts["held"] < counts["train"]
    for stem in stems:
        image = tmp_path / "split" / split_of(stem) / "img" / f"{stem}.jpg"
        assert os.path.samefile(image, root / "img" / f"{stem}.jpg")  # a hard link, under the same name
        assert (image.parent.parent / "gt" / f"{stem}.png").read_bytes() == stem.encode()
    fewer = _folder(tmp_path / "fewer", stems[::2])
    write_split(fewer, tmp_path / "split2")  # removing photos moves no other photo
    for stem in stems[::2]:
        assert (tmp_path / "split2" / split_of(stem) / "img" / f"{stem}.jpg").is_file()
    with pytest.raises(FileExistsError):
        write_split(root, tmp_path / "split")


def test_a_photo_without_its_mask_stops_before_any_link(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", ["a", "b"])
    (root / "gt" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"'b\.jpg'"):
        write_split(root, tmp_path / "split")
    assert not (tmp_path / "split").exists()
