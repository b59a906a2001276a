"""Synthetic datasets in the exact released layouts (VOC 2012 and the other sources), for demos, tests and benchmarks.

Real datasets cannot be shipped, but everything downstream (readers, click sampling, shards, training, NoC evaluation)
must run on a fresh machine. So this module renders VOC-like images: the VOC layout (`VOCdevkit/VOC2012/`: VOC's
folders, split files, palette PNG masks with the VOC colour map and a 255 void band around objects) and the other
sources' layouts (written by `ifcn.pipeline.sources.<name>`) are made of them. Images have VOC-like sizes and object
statistics (1–4 objects, ≈2.4 per image; areas from below the 400-pixel minimum to most of the image; thin objects;
occlusion). Each shape kind is one VOC class with its own colours and texture, on textured, noisy backgrounds, so a
model can learn both the interactive and the semantic task. Image `i` is a pure function of (seed, i): same seed,
byte-identical files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ifcn.labels import VOID
from ifcn.pipeline.click_sampling import MAX_SEED

#: Ids look like VOC's (`2008_000123`) but use a year no real VOC image has, so they never collide.
ID_YEAR = 2031
#: File in the VOC2012 root that marks a synthetic dataset (holds its SynthConfig).
SYNTH_MARKER = "ifcn-synth.json"
#: Probabilities of 1, 2, 3 and 4 drawn objects per image (mean 2.5); after occlusion and the void band about 2.4
#: remain visible, like VOC train's 3507 / 1464 = 2.40.
OBJECT_COUNT_PROBS = (0.24, 0.28, 0.22, 0.26)
#: Object area as a fraction of the image. A share of tiny objects (log-uniform area) that mostly end up below the
#: 400-pixel minimum at 500×375, like VOC's ≈13 % of objects dropped; the others have a uniform linear size
#: (sqrt of the area fraction), from small to most of the image.
TINY_OBJECT_PROB = 0.15
TINY_AREA_RANGE = (0.0008, 0.004)
LINEAR_SIZE_RANGE = (0.06, 0.75)
#: Landscape images are about 70 % of VOC; the short side is mostly 0.75 (375 px) or 0.666 (333 px) of the long one.
LANDSCAPE_PROB = 0.7
SHORT_SIDE_RATIOS = (0.75, 0.666, 0.8, 0.6, 0.9, 1.0)
SHORT_SIDE_PROBS = (0.6, 0.2, 0.06, 0.06, 0.04, 0.04)
#: Limits of the generated image size (VOC: 500 px).
MIN_LONG_SIDE, MAX_LONG_SIDE = 32, 4096


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. `void_width` is the void band's width in pixels across every object boundary (VOC: ≈5)."""

    train_images: int
    val_images: int
    seed: int = 0
    long_side: int = 500
    jpeg_quality: int = 90
    void_width: int = 5
    #: Chance that an image also holds one "ambiguous" object that is void as a whole, as VOC marks some objects.
    void_object_prob: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must be within 0..{MAX_SEED}, got {self.seed}")
        if self.train_images < 0 or self.val_images < 0 or self.train_images + self.val_images < 1:
            raise ValueError("--train-images and --val-images must be ≥ 0 and together ≥ 1")
        if self.train_images + self.val_images > 999_999:
            raise ValueError("--train-images and --val-images: at most 999999 images in all (ids have six digits, "
                             "like VOC's)")
        if not MIN_LONG_SIDE <= self.long_side <= MAX_LONG_SIDE:
            raise ValueError(f"--long-side must be within {MIN_LONG_SIDE}..{MAX_LONG_SIDE} pixels (VOC: 500), got "
                             f"{self.long_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, got {self.jpeg_quality}")
        if self.void_width < 0 or (self.void_width > 0 and self.void_width % 2 == 0):
            raise ValueError(f"void_width must be 0 or odd (a band centred on the boundary), got {self.void_width}")
        if not 0.0 <= self.void_object_prob <= 1.0:
            raise ValueError(f"void_object_prob must be within 0..1, got {self.void_object_prob}")


@dataclass(frozen=True)
class ShapeClass:
    """One kind of synthetic object: its VOC class id and its appearance (two colours mixed by a texture)."""

    name: str
    voc_class: int
    color: tuple[int, int, int]
    second_color: tuple[int, int, int]
    texture: str


#: Shape kind → VOC class and look. Class ids are spread over 1–20; colours and textures make class predictable.
SHAPE_CLASSES: tuple[ShapeClass, ...] = (
    ShapeClass("ellipse", 8, (205, 60, 50), (110, 25, 20), "spots"),
    ShapeClass("rectangle", 20, (50, 80, 205), (200, 210, 235), "checker"),
    ShapeClass("triangle", 1, (45, 170, 60), (15, 75, 25), "stripes"),
    ShapeClass("star", 3, (230, 200, 40), (150, 90, 10), "noise"),
    ShapeClass("ring", 12, (180, 60, 190), (85, 20, 100), "rings"),
    ShapeClass("polygon", 15, (230, 145, 85), (105, 60, 40), "gradient"),
    ShapeClass("bar", 5, (40, 190, 200), (230, 250, 250), "stripes"),
)


@dataclass(frozen=True)
class SynthImage:
    """One generated image (RGB, H×W×3 uint8) with its VOC class and object index maps (H×W uint8, 255 = void)."""

    rgb: np.ndarray
    class_map: np.ndarray
    object_map: np.ndarray


def image_ids(config: SynthConfig) -> tuple[list[str], list[str]]:
    """The train and val ids: numbered 1..N, val spread evenly among them so that sorted trainval interleaves."""
    total = config.train_images + config.val_images
    val_numbers = {int((j + 0.5) * total / config.val_images) + 1 for j in range(config.val_images)}
    ids = [(n, f"{ID_YEAR}_{n:06d}") for n in range(1, total + 1)]
    return [k for n, k in ids if n not in val_numbers], [k for n, k in ids if n in val_numbers]


def image_number(key: str) -> int:
    """The number an id was generated from (its per-image generator's seed), e.g. `2031_000007` → 7."""
    return int(key.split("_")[1])


def make_synth_dataset(out: Path, config: SynthConfig, *, layout: str = "voc", overwrite: bool = False) -> Path:
    """Write the dataset in the released layout of source `layout` under `out` (VOC: `out/VOCdevkit/VOC2012/`) and
    return the folder to pass to `ifcn-prep sample --root`.

    The tree is built under a temporary name and renamed when complete, so an interrupted run leaves no half dataset
    under the final name. An existing dataset folder is replaced only with `overwrite`.
    """
    from ifcn.pipeline.sources import get_source  # the sources write their layouts with this module's images

    source = get_source(layout)
    root = Path(out) / source.synth_folder
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} already exists; choose another output folder or pass --overwrite")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".tmp-{root.name}-{uuid.uuid4().hex[:8]}"
    try:
        source.write_synthetic(tmp, config)
        old = root.parent / f".tmp-old-{root.name}-{uuid.uuid4().hex[:8]}"
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)  # before deleting the old tree: an interruption never leaves neither
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """An RGB image as JPEG bytes (OpenCV's encoder: byte-identical for the same pixels)."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode an image as JPEG")
    return jpeg.tobytes()


def render_image(config: SynthConfig, number: int) -> SynthImage:
    """Generate image `number` of the dataset; a pure function of (config.seed, number) and the config's sizes."""
    rng = np.random.default_rng([config.seed, number])
    height, width = _image_size(rng, config.long_side)
    scale = config.long_side / 500
    rgb = _background(rng, height, width, scale)
    labels = np.zeros((height, width), np.uint8)
    n_objects = int(rng.choice(len(OBJECT_COUNT_PROBS), p=OBJECT_COUNT_PROBS)) + 1
    is_void = [False] * n_objects + ([True] if rng.random() < config.void_object_prob else [])
    areas = [_area_fraction(rng) * height * width for _ in is_void]
    classes = [0]
    centres: list[tuple[float, float]] = []
    # Larger objects first, as objects in photos are rarely hidden completely; smaller ones occlude parts of them.
    for i in sorted(range(len(areas)), key=lambda i: -areas[i]):
        shape = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
        centre = _object_centre(rng, height, width, centres)
        centres.append(centre)
        mask = _draw_shape(rng, shape.name, centre, areas[i], height, width, scale)
        _paint(rng, rgb, mask, shape, scale)
        labels[mask > 0] = len(classes)
        classes.append(VOID if is_void[i] else shape.voc_class)
    rgb = _finish(rng, rgb)
    object_map, class_map = _index_maps(labels, np.array(classes + [VOID] * (256 - len(classes)), np.uint8),
                                        config.void_width)
    return SynthImage(rgb, class_map, object_map)


def _image_size(rng: np.random.Generator, long_side: int) -> tuple[int, int]:
    ratio = SHORT_SIDE_RATIOS[int(rng.choice(len(SHORT_SIDE_RATIOS), p=SHORT_SIDE_PROBS))]
    short = round(long_side * ratio)
    return (short, long_side) if rng.random() < LANDSCAPE_PROB else (long_side, short)


def _grid(height: int, width: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates rotated by `angle`, as broadcastable float32 arrays (u along the angle, v across it)."""
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return xx * c + yy * s, yy * c - xx * s


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int = 1) -> np.ndarray:
    """Random values on a coarse grid of about `cells` cells along the long side, upsampled: smooth blobs in [0, 1]."""
    gh, gw = max(2, round(cells * height / max(height, width))), max(2, round(cells * width / max(height, width)))
    coarse = rng.random((gh, gw, channels), dtype=np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth.reshape(height, width, channels), 0.0, 1.0)


def _background(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Muted colours mixed by smooth noise, under a lighting gradient, sometimes with faint stripes (float32 RGB)."""
    colors = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    colors = 0.5 * colors + 0.5 * colors.mean(axis=1, keepdims=True)  # desaturate: objects stand out by colour
    mix = _smooth_noise(rng, height, width, int(rng.integers(3, 14)), 3)
    rgb = colors[0] + (colors[1] - colors[0]) * mix
    u, _ = _grid(height, width, rng.uniform(0, 2 * np.pi))
    rgb *= (1 + rng.uniform(0, 0.6) * (u / max(height, width) - 0.5))[..., None]
    if rng.random() < 0.5:
        period = rng.uniform(8, 60) * scale + 2
        u, _ = _grid(height, width, rng.uniform(0, np.pi))
        rgb += (rng.uniform(5, 25) * np.sin(u * np.float32(2 * np.pi / period)))[..., None]
    return rgb


def _object_centre(rng: np.random.Generator, height: int, width: int,
                   centres: list[tuple[float, float]]) -> tuple[float, float]:
    """Anywhere in the image, or (half the time) near an earlier object so that objects overlap and occlude."""
    if centres and rng.random() < 0.5:
        cy, cx = centres[int(rng.integers(len(centres)))]
        cy, cx = cy + rng.normal(0, 0.15 * height), cx + rng.normal(0, 0.15 * width)
    else:
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    return float(np.clip(cy, 0, height - 1)), float(np.clip(cx, 0, width - 1))


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _radial_polygon(angles: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _unit_polygon(rng: np.random.Generator, name: str) -> np.ndarray:
    """The outline of a shape kind around (0, 0) at an arbitrary scale, as (K, 2) x, y vertices."""
    turn = rng.uniform(0, 2 * np.pi)
    if name == "rectangle":
        w, h = 1.0, rng.uniform(0.3, 1.0)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        c, s = np.cos(turn), np.sin(turn)
        return corners @ np.array([[c, s], [-s, c]])
    if name == "triangle":
        angles = turn + np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.5, 0.5, 3)
        return _radial_polygon(angles, rng.uniform(0.6, 1.0, 3))
    if name == "star":
        points = int(rng.integers(5, 8))
        angles = turn + np.arange(2 * points) * np.pi / points
        return _radial_polygon(angles, np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.38, 0.55)))
    if name == "polygon":
        k = int(rng.integers(6, 11))
        angles = turn + (np.arange(k) + rng.uniform(-0.35, 0.35, k)) * 2 * np.pi / k
        return _radial_polygon(angles, rng.uniform(0.55, 1.0, k))
    raise ValueError(f"unknown polygon shape {name!r}")


def _area_fraction(rng: np.random.Generator) -> float:
    if rng.random() < TINY_OBJECT_PROB:
        return float(np.exp(rng.uniform(*np.log(TINY_AREA_RANGE))))
    return float(rng.uniform(*LINEAR_SIZE_RANGE)) ** 2


def _draw_shape(rng: np.random.Generator, name: str, centre: tuple[float, float], area: float, height: int,
                width: int, scale: float) -> np.ndarray:
    """Rasterise one object of kind `name` and about `area` pixels around `centre` into a new H×W uint8 mask."""
    mask = np.zeros((height, width), np.uint8)
    cy, cx = centre
    if name == "ellipse":
        aspect = rng.uniform(0.35, 1.0)
        a = np.sqrt(area / (np.pi * aspect))
        cv2.ellipse(mask, (round(cx), round(cy)), (max(1, round(a)), max(1, round(a * aspect))),
                    rng.uniform(0, 180), 0, 360, 1, -1)
        return mask
    if name == "ring":
        inner = rng.uniform(0.45, 0.7)
        outer = np.sqrt(area / (np.pi * (1 - inner**2)))
        cv2.circle(mask, (round(cx), round(cy)), max(2, round(outer)), 1, -1)
        cv2.circle(mask, (round(cx), round(cy)), max(1, round(outer * inner)), 0, -1)
        return mask
    if name == "bar":  # thin: after the void band, little or nothing of it lies deep inside
        length = rng.uniform(0.25, 0.9) * max(height, width)
        thickness = rng.uniform(6, 18) * max(scale, 0.5)
        points = np.array([[-length, -thickness], [length, -thickness], [length, thickness], [-length, thickness]]) / 2
        turn = rng.uniform(0, np.pi)
        c, s = np.cos(turn), np.sin(turn)
        points = points @ np.array([[c, s], [-s, c]])
    else:
        points = _unit_polygon(rng, name)
        points = points * np.sqrt(area / _polygon_area(points))
    vertices = np.round((points + np.array([cx, cy])) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel outlines
    cv2.fillPoly(mask, [vertices], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _texture(rng: np.random.Generator, kind: str, height: int, width: int, scale: float) -> np.ndarray:
    """A class's texture over an H×W box: values in [0, 1] that mix its two colours."""
    u, v = _grid(height, width, rng.uniform(0, np.pi))
    size = rng.uniform(4, 12) * max(scale, 0.4) + 1
    if kind == "spots":
        t = 0.5 + 0.5 * np.sin(u / size * 2) * np.sin(v / size * 2)
    elif kind == "checker":
        t = ((np.floor(u / size) + np.floor(v / size)) % 2).astype(np.float32)
    elif kind == "stripes":
        t = 0.5 + 0.5 * np.sin(u * (2 * np.pi / size))
    elif kind == "noise":
        t = _smooth_noise(rng, height, width, max(2, round(max(height, width) / size)))[..., 0]
    elif kind == "rings":
        r = np.sqrt((u - u.mean()) ** 2 + (v - v.mean()) ** 2)
        t = 0.5 + 0.5 * np.sin(r * (2 * np.pi / size))
    elif kind == "gradient":
        t = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.broadcast_to(t, (height, width)).astype(np.float32)


def _paint(rng: np.random.Generator, rgb: np.ndarray, mask: np.ndarray, shape: ShapeClass, scale: float) -> None:
    """Paint the object's textured colours into `rgb` where `mask` is set (only its bounding box is computed)."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    jitter = rng.uniform(-25, 25, 3)  # colour varies a little per instance
    brightness = rng.uniform(0.75, 1.15)
    c1 = ((np.array(shape.color) + jitter) * brightness).astype(np.float32)
    c2 = ((np.array(shape.second_color) + jitter) * brightness).astype(np.float32)
    colours = c1 + (c2 - c1) * _texture(rng, shape.texture, h, w, scale)[..., None]
    np.copyto(rgb[y:y + h, x:x + w], colours, where=mask[y:y + h, x:x + w, None] > 0)


def _finish(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Soften edges like a camera would, add sensor noise, and quantise to uint8."""
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.7)
    # Uniform noise from raw random bytes (standard deviation of 0..255: 73.9) is several times cheaper than normal.
    gain = np.float32(rng.uniform(3, 10) / 73.9)
    noise = np.frombuffer(rng.bytes(rgb.size), np.uint8).reshape(rgb.shape)
    rgb += noise * gain - (127.5 * gain - 0.5)  # the 0.5 rounds in the conversion below
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def _index_maps(labels: np.ndarray, classes: np.ndarray, void_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Object and class maps from drawn labels: a void band over every label boundary, void objects, ids renumbered.

    The band covers the pixels within `void_width / 2` of a boundary (about half on each side), like VOC's. Objects
    left with no visible pixel disappear and the rest are renumbered 1..K in drawing order.
    """
    objects = labels.copy()
    if void_width > 0:
        objects[boundary_band(labels, void_width)] = VOID
    objects[classes[objects] == VOID] = VOID  # ambiguous objects are void as a whole
    visible = np.zeros(256, bool)
    visible[np.unique(objects)] = True
    visible[[0, VOID]] = False
    renumber = np.arange(256, dtype=np.uint8)
    renumber[visible] = np.arange(1, int(visible.sum()) + 1, dtype=np.uint8)
    return renumber[objects], classes[objects]


def boundary_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels within a `width`-pixel-wide band around every change of label (the image border is no boundary)."""
    edge = np.zeros(labels.shape, np.uint8)
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    radius = width // 2  # `edge` marks one pixel beside the boundary: dilating it by r gives 2r + 1 pixels
    offsets = np.arange(-radius, radius + 1)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius + radius).astype(np.uint8)
    return cv2.dilate(edge, disk).astype(bool)

