"""The trainer's input stream: geometry keeps clicks on their pixels, padding is ignored, epochs are planned so every
rank does the same number of steps, streams are deterministic, and both shard formats give the same batches."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ifcn.errors import InputError
from ifcn.shards.check import check_shards
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import load_manifest, resolve_shards, write_manifest
from ifcn.shards.reader import read_shard
from ifcn.shards.records import ImageClicks, Sample
from ifcn.trainer.core.input_spec import IMAGENET_MEAN, IMAGENET_STD
from ifcn.trainer.core.inputs import network_input
from ifcn.trainer.data import (
    AugmentConfig,
    Item,
    RankPlan,
    TrainStream,
    augment,
    collate,
    make_loader,
    plan_rank,
    steps_per_epoch,
)
from ifcn.trainer.data.augment import apply_matrix, random_matrix

CROP = 64


def _disc_item(rng: np.random.Generator, height: int = 90, width: int = 120, clicks: int = 12) -> Item:
    """An image whose label map marks a radius-2 disc of id k+1 around click k (a rasterised click), with every
    pixel's colour unique (R = y, G = x), so that the content under each click can be traced through a warp."""
    ys, xs = np.mgrid[:height, :width]
    image = np.stack([ys, xs, (ys + xs) % 256], axis=-1).astype(np.uint8)
    labels = np.zeros((height, width), np.uint8)
    pts = np.stack([rng.integers(3, height - 3, clicks), rng.integers(3, width - 3, clicks)], axis=1)
    for k, (y, x) in enumerate(pts):
        labels[(ys - y) ** 2 + (xs - x) ** 2 <= 4] = k + 1
    return Item("k", image, labels, 0, pts.astype(np.int32), np.zeros((0, 2), np.int32))


def test_clicks_land_on_their_rasterised_disc_under_scale_flip_and_crop() -> None:
    rng = np.random.default_rng(0)
    config = AugmentConfig(CROP, scale_range=(0.6, 1.8), keep_object=False)
    checked = 0
    for _ in range(40):
        item = _disc_item(rng)
        ids = item.labels[item.pos[:, 0], item.pos[:, 1]]
        matrix = random_matrix(*item.labels.shape, config, rng)
        out = apply_matrix(item, matrix, CROP)
        moved = np.rint(np.c_[item.pos[:, ::-1], np.ones(len(item.pos))] @ matrix.T)[:, ::-1]
        inside = ((moved >= 0) & (moved < CROP)).all(axis=1)
        assert len(out.pos) == inside.sum()  # clicks leaving the crop are dropped, the others kept in order
        for (y, x), k in zip(out.pos, ids[inside], strict=True):
            assert out.target[y, x] == k  # the warped click sits on its own warped disc
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("flip", [False, True])
def test_unscaled_crop_keeps_the_clicked_pixel_colour_exactly(flip: bool) -> None:
    rng = np.random.default_rng(1)
    item = _disc_item(rng, 50, 70)
    for _ in range(10):
        matrix = random_matrix(50, 70, AugmentConfig(CROP, scale_range=(1.0, 1.0), flip=flip, keep_object=False), rng)
        out = apply_matrix(item, matrix, CROP)
        moved = np.rint(np.c_[item.pos[:, ::-1], np.ones(len(item.pos))] @ matrix.T)[:, ::-1].astype(int)
        inside = ((moved >= 0) & (moved < CROP)).all(axis=1)
        src = item.image[item.pos[inside, 0], item.pos[inside, 1]]
        np.testing.assert_array_equal(out.image[out.pos[:, 0], out.pos[:, 1]], src)


def test_padding_is_ignored_and_image_area_is_kept() -> None:
    rng = np.random.default_rng(2)
    item = _disc_item(rng, 40, 50)
    out = augment(item, AugmentConfig(CROP, scale_range=(1.0, 1.0), flip=False, keep_object=False), rng)
    assert out.image.shape == (CROP, CROP, 3) and out.target.shape == (CROP, CROP)
    assert np.count_nonzero(out.target != 255) == 40 * 50  # the source has no void: padding is exactly the 255s


def test_interactive_crop_keeps_a_positive_click_and_the_object() -> None:
    rng = np.random.default_rng(3)
    labels = np.zeros((300, 400), np.uint8)
    labels[250:290, 350:390] = 1  # a small object in a corner, far from the centre crop
    labels[248:250, 350:390] = 255
    item = Item("k", np.zeros((300, 400, 3), np.uint8), labels, 1, np.array([[270, 370]], np.int32),
                np.array([[10, 10]], np.int32))
    for _ in range(30):
        out = augment(item, AugmentConfig(CROP, scale_range=(0.8, 1.2)), rng)
        assert len(out.pos) == 1 and out.target[out.pos[0, 0], out.pos[0, 1]] == 1
        assert set(np.unique(out.target)) <= {0, 1, 255}


def test_network_input_is_rgb_then_clipped_positive_and_negative_distances() -> None:
    """Spec §3: normalised R, G, B, then min distance to a positive / negative click clipped at 255 and /255;
    padding clicks are ignored and a sign without clicks is 1.0 everywhere."""
    images = torch.randint(0, 256, (2, 3, 40, 300), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pos = torch.tensor([[[5, 10], [30, 200]], [[0, 0], [0, 0]]])
    pos_valid = torch.tensor([[True, True], [False, False]])
    neg = torch.tensor([[[20, 20], [0, 0]], [[39, 299], [0, 0]]])
    neg_valid = torch.tensor([[False, False], [True, False]])
    x = network_input(images, pos, pos_valid, neg, neg_valid)
    assert x.shape == (2, 5, 40, 300)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x[:, :3], (images.float() / 255 - mean) / std)
    p = x[0, 3]
    assert p[5, 10] == 0 and p[30, 200] == 0
    torch.testing.assert_close(p[5, 60], torch.tensor(50 / 255))  # nearer to (5, 10) than to (30, 200)
    torch.testing.assert_close(p[9, 13], torch.tensor(5 / 255))
    assert bool((x[1, 3] == 1.0).all()) and bool((x[0, 4] == 1.0).all())  # no (valid) click of that sign
    torch.testing.assert_close(x[1, 4, 39, 199], torch.tensor(100 / 255))
    assert x[1, 4, 39, 0] == 1.0  # 299 px away: clipped at 255


def test_collate_pads_clicks_with_validity_masks() -> None:
    rng = np.random.default_rng(4)
    items = [augment(_disc_item(rng, clicks=n), AugmentConfig(CROP, keep_object=False), rng) for n in (3, 11)]
    batch = collate(items, "interactive")
    assert batch["image"].shape == (2, CROP, CROP, 3) and batch["image"].dtype == torch.uint8
    assert batch["pos"].shape[1] % 8 == 0 and batch["pos"].shape[:2] == batch["pos_valid"].shape
    assert batch["pos_valid"].sum(1).tolist() == [len(i.pos) for i in items]
    np.testing.assert_array_equal(batch["pos"][1, : len(items[1].pos)].numpy(), items[1].pos)


@pytest.mark.parametrize("items, world", [([24, 18, 3, 20, 0, 21, 17], 2), ([24, 18, 3, 20, 0, 21, 17], 3), ([50], 2),
                                           ([7, 0, 5], 1)])
def test_plan_splits_items_disjointly_into_equal_rank_shares(items: list[int], world: int) -> None:
    """Any number of shards ≥ 1 (one empty) and of ranks: chunks of a shard go to several ranks, every rank gets
    `steps` batches, no item is read twice and only the last partial global batch is left out."""
    batch = 4
    steps = steps_per_epoch(sum(items), world, batch)

    def plan(rank: int, epoch: int = 1) -> RankPlan:
        return plan_rank(items, seed=5, epoch=epoch, world_size=world, rank=rank, batch_size=batch, steps=steps,
                         group_batches=2, chunk_items=3)

    read: list[tuple[int, int]] = []
    for rank in range(world):
        groups = list(plan(rank).groups())
        assert sum(g.batches for g in groups) == steps and [g.index for g in groups] == list(range(len(groups)))
        for g in groups:
            covered = [(s.shard, i) for s in g.slices for i in range(s.start, s.stop)]
            assert len(covered) == g.batches * batch and all(0 <= s.start < s.stop <= items[s.shard] for s in g.slices)
            read += covered
        by_worker = [g.index for w in range(3) for g in plan(rank).groups(w, 3)]  # worker w: groups w, w + 3, ...
        assert by_worker == sorted(range(len(groups)), key=lambda i: i % 3)
    assert len(read) == len(set(read)) == world * steps * batch > sum(items) - world * batch
    assert list(plan(0).groups()) == list(plan(0).groups())  # a pure function of its arguments
    assert list(plan(0, epoch=2).groups()) != list(plan(0).groups())  # reshuffled every epoch


def _batches(shards: Path, world_size: int = 1, **kw) -> list[dict[str, torch.Tensor]]:
    infos = check_shards(resolve_shards(shards), "interactive")
    steps = steps_per_epoch(sum(i.items for i in infos), world_size, 4)
    return list(make_loader(TrainStream(infos, "interactive", AugmentConfig(CROP), 4, steps, world_size=world_size,
                                        **kw)))


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b, strict=True))


def test_stream_is_deterministic_and_seed_dependent(train_shards: Path) -> None:
    first = _batches(train_shards, seed=7)
    assert _same(first, _batches(train_shards, seed=7))
    assert not _same(first, _batches(train_shards, seed=8))


def test_every_rank_gets_the_same_number_of_batches(train_shards: Path) -> None:
    manifest = load_manifest(train_shards)
    steps = steps_per_epoch(manifest.totals.pairs, 2, 4)
    counts = [len(_batches(train_shards, seed=0, world_size=2, rank=r, workers=2)) for r in (0, 1)]
    assert counts == [steps, steps] and steps > 0


def test_webdataset_and_hdf5_shards_give_the_same_batches(train_shards: Path, train_shards_h5: Path) -> None:
    assert _same(_batches(train_shards, seed=3), _batches(train_shards_h5, seed=3))


def test_semantic_items_are_whole_class_maps(train_shards: Path) -> None:
    infos = check_shards(resolve_shards(train_shards), "semantic")
    assert sum(i.items for i in infos) == load_manifest(train_shards).totals.images
    stream = TrainStream(infos, "semantic", AugmentConfig(CROP), 2, 3, seed=0)
    batch = next(iter(make_loader(stream)))
    assert "pos" not in batch and set(batch["target"].unique().tolist()) <= set(range(21)) | {255}


def test_truncated_shard_is_named_before_training(train_shards: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(train_shards, tmp_path / "shards"))
    victim = sorted(copy.glob("*.tar"))[1]
    victim.write_bytes(victim.read_bytes()[:3000])
    with pytest.raises(InputError, match=victim.name):
        check_shards(resolve_shards(copy), "interactive")
    # Without a manifest the shards are read to count items, and the read error names the file.
    with pytest.raises(InputError, match=victim.name):
        check_shards(resolve_shards(str(copy / "*.tar")), "interactive")


def test_shards_without_click_pairs_are_refused_for_the_interactive_task(train_shards: Path, tmp_path: Path) -> None:
    src = resolve_shards(train_shards)
    fmt = get_format("webdataset")
    entries = []
    for location, entry in zip(src.locations, src.manifest.shards, strict=True):
        out = tmp_path / Path(location).name
        fmt.write(out, [replace(s, clicks=ImageClicks(s.key, s.clicks.height, s.clicks.width, ()))
                        for s in read_shard(location)])
        entries.append(replace(entry, objects=0, pairs=0, bytes=out.stat().st_size,
                               sha256=hashlib.sha256(out.read_bytes()).hexdigest()))
    m = src.manifest
    write_manifest(tmp_path, replace(m, shards=tuple(entries), totals=replace(m.totals, objects=0, pairs=0)))
    with pytest.raises(InputError, match="no click pairs"):
        check_shards(resolve_shards(tmp_path), "interactive")
    assert sum(i.items for i in check_shards(resolve_shards(tmp_path), "semantic")) == m.totals.images


def test_first_sample_of_each_shard_decodes(train_shards: Path) -> None:
    for location in resolve_shards(train_shards).locations:
        sample = next(read_shard(location))
        assert isinstance(sample, Sample) and sample.image().shape[:2] == sample.object_map().shape
