"""Synthetic shapes: a generated dataset with exact class labels and masks, and no files.

Each image holds one shape on a textured, cluttered background. The class is the kind of shape
(disk, square, triangle, star, ...); everything else is a nuisance drawn at random: scale,
position, mirroring and a small rotation, fill colour and texture, background colour and
texture, clutter strokes and dots, pixel noise. The mask is exact: ``class + 1`` on the shape's pixels, 0 (background) elsewhere,
so segmentation has ``num_classes + 1`` classes.

With ``objects=K > 1`` an image holds K shapes of K different classes, each in its own fill colour
and texture, smaller than a lone shape and placed apart (their bounding discs do not overlap,
short of a crowded scene where the last resort is the least overlap). The image's ``label`` is
the class of the largest shape, the target: every other shape has a strictly smaller radius and
a strictly smaller area. The mask holds ``class + 1`` on every shape's visible pixels, the target
drawn on top, so the label's class has the most mask pixels. ``objects=1`` is the scene above.

``label="set"`` asks for every shape instead of the largest: the label is *which* K classes the
scene holds, one of the ``C(num_classes, K)`` sets (for two objects, the unordered pair), in the
order of ``itertools.combinations``, and the largest shape is any one of them at random. No one
region decides such a label, so it is the task on which tokens that each attend to their own
region could pay off (method §8); ``"largest"`` (default) is the single-concept task above.

Sample ``i`` is drawn from a generator seeded with ``(seed, split, i)`` alone, so it is the same in
every process (safe with DataLoader workers) and the same scene at every ``image_size``: all
geometry is drawn in units of the image side.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torchvision import tv_tensors

from vt.data.base import DatasetError, Sample, Transform, VTDataModule, VTDataset
from vt.data.transforms import synthetic_eval, synthetic_train

Array = np.ndarray
ShapeFn = Callable[[Array, Array], Array]  # (u, v) in the shape's unit frame -> inside, bool


def _star(points: int, inner: float) -> ShapeFn:
    """A star polygon of ``points`` tips on the unit circle and notches at radius ``inner``.

    With ``inner = cos(pi / points)`` the notches lie on the edges: a regular polygon.
    """
    sector = 2 * math.pi / points
    tip = np.array([1.0, 0.0])
    notch = inner * np.array([math.cos(sector / 2), math.sin(sector / 2)])
    edge = notch - tip

    def inside(u: Array, v: Array) -> Array:
        # Fold every point into the half sector between a tip (angle 0) and a notch.
        angle = np.mod(np.arctan2(v, u), sector)
        angle = np.minimum(angle, sector - angle)
        radius = np.hypot(u, v)
        x, y = radius * np.cos(angle) - tip[0], radius * np.sin(angle) - tip[1]
        # The origin is on the inner side of the tip-notch edge; so is every inside point.
        return edge[0] * y - edge[1] * x >= 0

    return inside


SHAPES: dict[str, ShapeFn] = {
    "disk": lambda u, v: u**2 + v**2 < 1,
    "square": _star(4, math.cos(math.pi / 4)),
    "triangle": _star(3, math.cos(math.pi / 3)),
    "star": _star(5, 0.45),
    "cross": lambda u, v: ((np.abs(u) < 0.3) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.3) & (np.abs(u) < 0.95)),
    "ring": lambda u, v: (u**2 + v**2 < 1) & (u**2 + v**2 > 0.55**2),
    "crescent": lambda u, v: (u**2 + v**2 < 1) & ((u - 0.55) ** 2 + v**2 > 0.8**2),
    "ellipse": lambda u, v: u**2 + (v / 0.5) ** 2 < 1,
    "semicircle": lambda u, v: (u**2 + v**2 < 1) & (v > -0.1),
    "ell": lambda u, v: (np.maximum(np.abs(u), np.abs(v)) < 0.7) & ((u < -0.1) | (v < -0.1)),
    "hexagon": _star(6, math.cos(math.pi / 6)),
    "pentagon": _star(5, math.cos(math.pi / 5)),
    "rhombus": lambda u, v: np.abs(u) + np.abs(v) / 0.55 < 1,
}
"""Shape classes in label order, the most distinct first (``num_classes`` takes a prefix). A
class is a shape up to mirroring, so a flip keeps the label."""

SPLITS = {"train": 0, "val": 1}
SCALE_RANGE = (0.25, 0.45)  # shape radius, in image sides, of a lone shape (see `_radius_scale`)
# Each non-target shape's area as a fraction of the target's; the top stays well below 1, a
# margin for rounding to pixels, so the target keeps the most mask pixels.
OTHER_AREA_RANGE = (0.25, 0.7)
OBJECT_CONTRAST = 0.3  # least RGB distance between two shapes' colours; 13 colours still fit
PLACEMENT_TRIES = 100  # centre draws per shape before it settles for the least overlap
COLOUR_TRIES = 1000  # colour draws before settling for the best, so a full palette cannot hang
# Shapes turn by up to 20 degrees either way: full rotation invariance takes a CNN far longer
# to learn than the couple of CPU minutes this set is meant to train in.
MAX_ROTATION = math.radians(20)
MAX_CLUTTER = 4  # strokes and dots under the shape
TEXTURE_CONTRAST = 0.25  # a texture varies its colour by up to this much per channel
SHAPE_CONTRAST = 0.5  # least RGB distance between the shape's colour and the mean background
NOISE = 0.03  # std of the per-pixel noise


def check_num_classes(num_classes: int) -> None:
    if not 2 <= num_classes <= len(SHAPES):
        raise DatasetError(f"synthetic num_classes must be in 2..{len(SHAPES)}, got {num_classes}")


LabelKind = Literal["largest", "set"]
LABEL_KINDS: tuple[str, ...] = LabelKind.__args__


def label_sets(num_classes: int, objects: int) -> list[tuple[int, ...]]:
    """The classes of each ``label="set"`` label, in label order: the ``objects``-subsets of ``num_classes``."""
    return list(itertools.combinations(range(num_classes), objects))


def check_label(label: str, objects: int) -> None:
    if label not in LABEL_KINDS:
        raise DatasetError(f"unknown synthetic label {label!r}; choose one of {', '.join(LABEL_KINDS)}")
    if label == "set" and objects < 2:
        raise DatasetError(f"synthetic label 'set' needs at least 2 objects per image, got {objects}; "
                           "set --data.objects 2 or more")


def check_objects(objects: int, num_classes: int) -> None:
    if not 1 <= objects <= num_classes:
        raise DatasetError(
            f"synthetic objects must be in 1..{num_classes} (one shape per class, so at most num_classes), "
            f"got {objects}; set --data.objects in that range"
        )


def _unit_area(inside: ShapeFn, samples: int = 256) -> float:
    """Area of a shape in its unit frame (the disk's is pi), counted on a ``samples``² grid over [-1, 1]²."""
    coords = (np.arange(samples) + 0.5) / samples * 2 - 1
    u, v = np.meshgrid(coords, coords)
    return 4 * float(inside(u, v).mean())


UNIT_AREAS = [_unit_area(inside) for inside in SHAPES.values()]
"""Each class's area at radius 1, in label order: radii of different shapes that give areas in a chosen ratio."""


Window = tuple[slice, slice]  # rows, columns of a rectangle of pixels
WHOLE: Window = (slice(None), slice(None))


def _window(low: Array, high: Array, image_size: int) -> Window:
    """The pixels whose centres lie in the box from ``low`` to ``high`` ``(x, y)`` (image sides), one to spare.

    Drawing a shape or a stroke on its box alone, rather than on the whole image, computes the
    same value for every pixel of the box: the pixel-wise work shrinks to the shape's area.
    """
    first = np.clip(np.floor(low * image_size).astype(int) - 1, 0, image_size)
    last = np.clip(np.ceil(high * image_size).astype(int) + 1, 0, image_size)
    return slice(first[1], last[1]), slice(first[0], last[0])


def _texture(rng: np.random.Generator, x: Array, y: Array, low: Array, high: Array, window: Window = WHOLE) -> Array:
    """A random fill between colours ``low`` and ``high``: flat, gradient, stripes, checks or noise.

    ``x, y``: ``(H, W)`` float32 pixel coordinates in image sides; returns the texture of the
    whole image on the pixels of ``window``, float32 ``(3, h, w)`` in [0, 1] (float32 halves the
    memory traffic of the per-pixel work, the generator's main cost).
    """
    kind = rng.integers(5)
    angle = rng.uniform(0, 2 * math.pi)
    along = x[window] * math.cos(angle) + y[window] * math.sin(angle)
    frequency = rng.uniform(3, 10)
    if kind == 0:
        weight = np.zeros_like(along)
    elif kind == 1:
        whole = x * math.cos(angle) + y * math.sin(angle)  # the gradient spans the image, not the window
        lowest = whole.min()
        weight = (along - lowest) / max(float(whole.max() - lowest), 1e-6)
    elif kind == 2:
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * frequency * along)
    elif kind == 3:
        across = -x[window] * math.sin(angle) + y[window] * math.cos(angle)
        weight = (np.floor(frequency * along) + np.floor(frequency * across)) % 2
    else:
        # A child generator, so the draws after this one do not depend on the image size.
        noise = np.random.default_rng(rng.integers(2**63)).uniform(0, 1, size=x.shape)
        weight = noise[window].astype(np.float32)
    return _blend(low.astype(np.float32), high.astype(np.float32), weight)


def _blend(low: Array, high: Array, weight: Array) -> Array:
    """``low + (high - low) * weight`` per channel: float32 ``(3, h, w)`` from ``(3,)`` colours and ``(h, w)``.

    One channel plane at a time: broadcasting ``weight[..., None]`` against ``(3,)`` instead
    runs numpy's inner loop over 3 elements, 40x slower at 224 px (1.16 against 0.03 ms) for the
    same float32 values.
    """
    out = np.empty((3, *weight.shape), np.float32)
    for channel, (start, step) in enumerate(zip(low, high - low)):
        np.multiply(weight, step, out=out[channel])
        out[channel] += start
    return out


def _shade(rng: np.random.Generator, colour: Array) -> Array:
    """A colour near ``colour``: the second colour of a texture."""
    return np.clip(colour + rng.uniform(-TEXTURE_CONTRAST, TEXTURE_CONTRAST, 3), 0, 1)


def _colour_far_from(rng: np.random.Generator, others: Array, distances: Array | float) -> Array:
    """A random RGB colour at least ``distances`` (Euclidean, [0, 1] cube) away from ``others``.

    ``others``: ``(3,)`` or ``(N, 3)`` colours; ``distances``: one for all, or ``(N,)``, one each.
    After `COLOUR_TRIES` draws it returns the draw that falls least short.
    """
    best, best_gap = np.full(3, 0.5), -math.inf  # the first draw replaces it
    for _ in range(COLOUR_TRIES):
        colour = rng.uniform(0, 1, size=3)
        gap = float(np.min(np.linalg.norm(colour - others, axis=-1) - distances))
        if gap >= 0:
            return colour
        if gap > best_gap:
            best, best_gap = colour, gap
    return best


def _segment_distance(x: Array, y: Array, a: Array, b: Array) -> Array:
    """Distance of every pixel ``(x, y)`` to the segment from ``a`` to ``b``."""
    ab = b - a
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0, 1)
    return np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])


def _radius_scale(objects: int) -> float:
    """What the radii of a scene of ``objects`` shapes are scaled by, relative to `SCALE_RANGE`.

    ``1 / sqrt(2K - 1)``: 1 for a lone shape, and room enough that rejection sampling nearly
    always places K discs apart. Plain ``1 / sqrt(K)`` keeps the area the shapes cover, but two
    discs that large barely fit side by side in the square, so K = 2 would often overlap.
    """
    return 1 / math.sqrt(2 * objects - 1)


def _place(rng: np.random.Generator, radius: float, centres: list[Array], radii: list[float]) -> Array:
    """A centre ``(2,)`` for a disc of ``radius`` inside the image and clear of the discs placed so far.

    Rejection sampling; after `PLACEMENT_TRIES` draws it settles for the draw that overlaps least.
    """
    best, best_overlap = np.full(2, 0.5), math.inf  # the first draw replaces it
    for _ in range(PLACEMENT_TRIES):
        centre = rng.uniform(radius, 1 - radius, size=2)
        overlap = max(
            (other_radius + radius - float(np.hypot(*(centre - other))) for other, other_radius in zip(centres, radii)),
            default=0.0,
        )
        if overlap <= 0:
            return centre
        if overlap < best_overlap:
            best, best_overlap = centre, overlap
    return best


def _layout(
    rng: np.random.Generator, label: int, objects: int, num_classes: int, others: Sequence[int] | None = None
) -> list[tuple[int, float, Array]]:
    """The ``(class, radius, centre)`` of each shape of a scene, target (class ``label``) first.

    The other classes are ``others``, or else distinct ones drawn from the first ``num_classes``;
    their radii make their areas a fraction `OTHER_AREA_RANGE` of the target's, and never exceed
    its radius.
    """
    radius = rng.uniform(*SCALE_RANGE) * _radius_scale(objects)
    classes, radii = [label], [radius]
    if objects > 1:
        if others is None:
            pool = [c for c in range(num_classes) if c != label]
            others = rng.choice(pool, objects - 1, replace=False).tolist()
        for other in others:
            area = rng.uniform(*OTHER_AREA_RANGE) * min(1.0, UNIT_AREAS[label] / UNIT_AREAS[other])
            classes.append(other)
            radii.append(radius * math.sqrt(area))
    centres: list[Array] = []
    for r in radii:
        centres.append(_place(rng, r, centres, radii[: len(centres)]))
    return list(zip(classes, radii, centres))


def _draw_shape(
    rng: np.random.Generator,
    x: Array,
    y: Array,
    label: int,
    radius: float,
    centre: Array,
    avoid: Array,
    distances: Array,
) -> tuple[Array, Array, Array, Window]:
    """Draws shape class ``label`` at ``radius`` and ``centre`` (image sides), in a random pose.

    Its fill colour keeps ``distances`` ``(N,)`` away from the colours ``avoid`` ``(N, 3)``.
    Every shape lies in the unit disc of its frame, so it is drawn on the ``window`` of that disc
    (`_window`). Returns where it is in the window, bool ``(h, w)``; its textured layer,
    ``(3, h, w)`` in [0, 1], to be shown there; its fill colour ``(3,)``; and the window.
    """
    window = _window(centre - radius, centre + radius, len(x))
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    dx, dy = (x[window] - centre[0]) / radius, (y[window] - centre[1]) / radius
    mirror = rng.choice([-1.0, 1.0])  # shown either way round, so a flip keeps the distribution
    u = mirror * (dx * math.cos(angle) + dy * math.sin(angle))
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    inside = list(SHAPES.values())[label](u, v)
    fill = _colour_far_from(rng, avoid, distances)
    return inside, _texture(rng, x, y, fill, _shade(rng, fill), window), fill, window


def render(
    rng: np.random.Generator, label: int, image_size: int, objects: int = 1, num_classes: int = len(SHAPES),
    others: Sequence[int] | None = None,
) -> tuple[Array, Array]:
    """Draws one scene whose target is shape class ``label``, among ``objects`` shapes in all.

    The other shapes' classes are ``others`` (``objects - 1`` distinct classes other than
    ``label``), or else drawn from the first ``num_classes`` (see the module docstring).
    Returns the image, uint8 ``(3, H, W)`` (channels first, as torch takes it), and its mask,
    uint8 ``(H, W)`` (``class + 1`` on each shape).

    The image is drawn one channel plane at a time (`_blend`): the same values as the
    channels-last drawing of earlier versions, pixel for pixel, in 3.6 instead of 5.0 ms at 224 px.
    """
    check_objects(objects, num_classes)
    coords = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    x, y = np.meshgrid(coords, coords)
    pixel = 1.0 / image_size

    base = rng.uniform(0, 1, 3)
    shade = _shade(rng, base)
    background = _texture(rng, x, y, base, shade)
    for _ in range(rng.integers(MAX_CLUTTER + 1)):
        colour = rng.uniform(0, 1, 3)
        if rng.uniform() < 0.5:
            ends = rng.uniform(0, 1, size=(2, 2))
            width = max(rng.uniform(0.005, 0.02), pixel / 2)
            window = _window(ends.min(axis=0) - width, ends.max(axis=0) + width, image_size)
            stroke = _segment_distance(x[window], y[window], ends[0], ends[1]) < width
        else:
            centre = rng.uniform(0, 1, 2)
            radius = max(rng.uniform(0.01, 0.05), pixel)
            window = _window(centre - radius, centre + radius, image_size)
            stroke = np.hypot(x[window] - centre[0], y[window] - centre[1]) < radius
        background[(slice(None), *window)][:, stroke] = colour[:, None]

    image, mask = background, np.zeros((image_size, image_size), np.uint8)
    avoid, distances = [(base + shade) / 2], [SHAPE_CONTRAST]
    # Painted last, the target is on top: nothing hides it, even where placement fell back to overlap.
    for shape, radius, centre in reversed(_layout(rng, label, objects, num_classes, others)):
        inside, layer, fill, window = _draw_shape(
            rng, x, y, shape, radius, centre, np.array(avoid), np.array(distances)
        )
        np.copyto(image[(slice(None), *window)], layer, where=inside)
        mask[window][inside] = shape + 1
        avoid.append(fill)
        distances.append(OBJECT_CONTRAST)
    # In place and in float32: at 224 px the per-pixel passes below cost as much as the drawing.
    # The noise is drawn channels last, the order every earlier version drew it in, and rounded to
    # float32 inside the addition: the same values as ``image += rng.normal(0, NOISE, shape)
    # .astype(np.float32)``, without a float32 copy of it, which took as long as the draw.
    noise = rng.standard_normal((image_size, image_size, 3))
    noise *= NOISE
    np.add(image, noise.transpose(2, 0, 1), out=image, dtype=np.float32)
    image *= 255
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8), mask


class SyntheticShapes(VTDataset):
    """Generated shapes; sample ``{"image": uint8 (3, S, S), "label": int, "mask": uint8 (S, S)}``.

    Without a ``transform`` the raw sample comes back, ready to plot. Labels are balanced: sample
    ``i`` has label ``i % num_labels`` (with several objects, the class of the largest, or with
    ``label="set"`` the index of the scene's set of classes in `label_sets`).

    Args:
        num_samples: length of the dataset.
        image_size: side ``S`` of the square images.
        num_classes: shape classes used, the first ``num_classes`` of `SHAPES`.
        seed: with ``split``, fixes every sample.
        split: ``"train"`` or ``"val"``: disjoint random streams under the same seed.
        transform: applied to each sample dict.
        objects: shapes per image, each of a different class, so 1 to ``num_classes``; the label
            is the largest one's (see the module docstring).
        label: "largest" (default) or "set": what the label names (module docstring).
    """

    def __init__(
        self,
        num_samples: int,
        image_size: int = 64,
        num_classes: int = 10,
        seed: int = 0,
        split: str = "train",
        transform: Transform | None = None,
        objects: int = 1,
        label: LabelKind = "largest",
    ) -> None:
        super().__init__(transform)
        check_num_classes(num_classes)
        check_objects(objects, num_classes)
        check_label(label, objects)
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.num_samples = num_samples
        self.image_size = image_size
        self.num_classes = num_classes
        self.seed = seed
        self.split = split
        self.objects = objects
        self.sets = label_sets(num_classes, objects) if label == "set" else None
        self.num_labels = num_classes if self.sets is None else len(self.sets)

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        label = index % self.num_labels
        if self.sets is None:
            image, mask = render(rng, label, self.image_size, self.objects, self.num_classes)
        else:  # any member of the set may be the largest
            target, *others = rng.permutation(self.sets[label]).tolist()
            image, mask = render(rng, target, self.image_size, self.objects, self.num_classes, others)
        return {
            "image": tv_tensors.Image(torch.from_numpy(image)),
            "label": label,
            "mask": tv_tensors.Mask(torch.from_numpy(mask)),
        }


class SyntheticDataModule(VTDataModule):
    """Generated shapes for both tasks: every batch has ``image``, ``label`` and ``mask``.

    The default dataset of every command: it needs no files and learns in minutes on a CPU.
    Augmentation keeps label and mask exact (see `vt.data.transforms.synthetic_train`).

    Args:
        image_size: side of the generated images.
        batch_size: samples per batch.
        num_workers: DataLoader workers; generation is cheap, so 0 is usually fastest on a CPU.
        recipe: ``"standard"`` (flip) or ``"advanced"`` (flip and colour jitter).
        skip_bad: accepted for a uniform interface; generated samples are never bad.
        seed: fixes the data (train and val are disjoint streams) and the shuffle order.
        num_train: training images.
        num_val: validation images.
        num_classes: shape classes (2-13); masks have ``num_classes + 1`` classes, 0 = background.
        objects: shapes per image (1 to ``num_classes``), each of a different class; the label is
            the class of the largest, and the mask marks every shape.
        label: "largest" (default) or "set": the label names the scene's set of ``objects``
            classes instead (`SyntheticShapes`); then the classifier has ``C(num_classes, objects)``
            outputs, the attribute ``num_classes`` (what the command line gives the model), and
            ``class_names`` join the shape names with "+" (``"disk+square"``).

    ``class_names`` are the shape names (the keys of `SHAPES`); ``seg_class_names`` add
    ``"background"`` in front, as mask id 0. ``num_shapes`` is the constructor's ``num_classes``.
    """

    def __init__(
        self,
        image_size: int = 64,
        batch_size: int = 32,
        num_workers: int = 0,
        recipe: str = "standard",
        skip_bad: bool = False,
        seed: int = 0,
        num_train: int = 4096,
        num_val: int = 1024,
        num_classes: int = 10,
        objects: int = 1,
        label: LabelKind = "largest",
    ) -> None:
        super().__init__(image_size, batch_size, num_workers, recipe, skip_bad, seed)
        self.save_hyperparameters()
        check_num_classes(num_classes)
        check_objects(objects, num_classes)
        check_label(label, objects)
        self.num_train = num_train
        self.num_val = num_val
        self.num_shapes = num_classes
        self.objects = objects
        self.label = label
        self.num_seg_classes = num_classes + 1
        shapes = list(SHAPES)[:num_classes]
        self.seg_class_names = ["background", *shapes]
        self.class_names = shapes if label == "largest" else [
            "+".join(shapes[c] for c in classes) for classes in label_sets(num_classes, objects)
        ]
        self.num_classes = len(self.class_names)
        self.has_labels = frozenset({"image", "label", "mask"})

    def make_dataset(self, split: str) -> VTDataset:
        train = split == "train"
        return SyntheticShapes(
            self.num_train if train else self.num_val,
            self.image_size,
            self.num_shapes,
            self.seed,
            split,
            synthetic_train(self.recipe) if train else synthetic_eval(),
            objects=self.objects,
            label=self.label,
        )
