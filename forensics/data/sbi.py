"""Self-blended images (SBI): pseudo-fakes made from real crops, on the fly, in the loader.

Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022
(arXiv 2204.08376). A real face is blended with a slightly altered copy of *itself* inside a
mask around the face: the result has no identity or expression change, only the traces every
face-swap pipeline leaves at its blending step (a boundary, a colour mismatch, a resolution
mismatch, a small misalignment). A detector trained on reals and such pseudo-fakes learns
those generic traces rather than one method's fingerprints, and generalises to unseen
methods and datasets. Their recipe, as we follow it here (our own code, numpy/OpenCV on uint8):

* **Source and target**: two copies of the same crop; one of them (chosen at random) is
  altered in colour (RGB shift, hue/saturation/value, brightness/contrast) and in frequency
  (down-then-up sampling, or sharpening). The source is then moved a little (scale within
  [0.95, 1/0.95], translation within 3%).
* **Mask**: the convex hull of the face's landmarks. From MTCNN's five points (eyes, nose,
  mouth corners) we extend the hull to where a 68-point outline would be: eyebrows and temples
  above the eyes, cheeks beside them, jaw and chin below the mouth (:func:`face_hull`), with a
  random grow factor. It is deformed elastically, blurred twice with random kernels (the first
  blur, cut at 1, shrinks it; the second feathers its edge) and scaled by a blend ratio drawn
  from {0.25, 0.5, 0.75, 1, 1, 1}.
* **Blend**: ``fake = mask x source + (1 - mask) x target``; label 1, and the mask travels with
  the sample (for mask-supervised methods).

``data.pseudo_fakes: sbi_lowres`` narrows the alteration to one direction (:data:`RECIPES`): the
pasted face is always the altered copy, always down-then-up sampled, the surroundings the crop
itself, i.e. a face with less detail than the frame around it.

How pairs enter an epoch (:func:`add_pseudo_fakes`): every real row with usable landmarks gets a
twin row (``method`` ``sbi``, label 1) pointing at it; :class:`forensics.data.datasets.CropDataset`
turns a twin into the self-blended image of its real crop. A real and its twin draw the same
frames each epoch and sit side by side in the epoch's rows (:func:`pair_rows`);
:class:`~forensics.data.datasets.TrainSampler` shuffles such pairs whole and deals them whole to
the ranks (:func:`shuffle_blocks`), so a real and its fake share a batch, as in the paper's
batches of 16 reals and their 16 self-blends. They are two indices of the dataset, so the
engine, the batch collation, the task's targets and class weights and mid-epoch resume all work
unchanged; the blend is seeded by ``(seed, epoch, index)`` like every augmentation, and the pair
shuffle by ``seed + epoch``, so every rank and a resumed run draw the same pseudo-fakes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pandas as pd

from forensics.data.manifest import LANDMARK_COLUMNS, REAL_METHOD, landmarks_of
from forensics.errors import ConfigError, ManifestError

log = logging.getLogger(__name__)

#: ``data.pseudo_fakes`` values: the paper's recipe, and its low-resolution-face variant (:data:`RECIPES`).
PSEUDO_FAKES = ("sbi", "sbi_lowres")
#: The method name of self-blended rows (their ``video_key`` differs from their real's).
SBI_METHOD = "sbi"
#: Column of a pseudo-fake row: the position (in the same frame table) of its real row; -1 elsewhere.
SOURCE = "pseudo_source"
#: The paper's blend ratios: a third of the fakes are partial blends.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class BlendRecipe:
    """The choices of :func:`self_blend` that differ between :data:`RECIPES`.

    Attributes:
        altered_source: probability that the altered copy is the source (pasted inside the mask)
            rather than the target (the surroundings).
        downscale: probability that the frequency alteration is down-then-up sampling rather
            than sharpening.
        down_interpolation: OpenCV interpolation of the down-sampling step.
    """

    altered_source: float = 0.5
    downscale: float = 0.5
    down_interpolation: int = cv2.INTER_NEAREST


#: ``sbi``: the paper's recipe (either copy altered; down-up sampling or sharpening, half and half;
#: nearest-neighbour down-sampling, as in their code). ``sbi_lowres``: the pasted face is always the
#: altered, down-then-up sampled copy (area down-sampling, which removes the detail rather than
#: aliasing it): the mismatch of face swaps whose generated face is smaller than the frame's face
#: and upscaled into it, the trace of the synthetic dataset's FaceSwap (docs/generalisation.md).
#: The paper's two-way mix teaches a small model trained briefly from scratch "sharper *or*
#: blurrier face than its surroundings", half of it the opposite of that trace: on the synthetic
#: dataset it stays near chance (FaceSwap video AUC 0.47-0.78) where ``sbi_lowres`` learns.
RECIPES = {"sbi": BlendRecipe(),
           "sbi_lowres": BlendRecipe(altered_source=1.0, downscale=1.0, down_interpolation=cv2.INTER_AREA)}


# ----------------------------------------------------------------------------- rows

def usable_landmarks(points: np.ndarray, size: int) -> np.ndarray:
    """Per row of ``(N, 5, 2)`` crop-pixel landmarks: all finite and inside ``[0, size)``."""
    finite = np.isfinite(points).all(axis=(1, 2))
    inside = ((points >= 0) & (points < size)).all(axis=(1, 2))
    return finite & inside


def add_pseudo_fakes(frames: pd.DataFrame, kind: str | None, manifest: str, crop_size: int) -> pd.DataFrame:
    """``frames`` plus one self-blended twin per real row with usable landmarks.

    Args:
        frames: rows from :func:`forensics.data.datasets.load_frames`.
        kind: ``data.pseudo_fakes`` (``None``: ``frames`` unchanged).
        manifest: its path, for messages.
        crop_size: side of the crops on disk (landmarks outside it are unusable).

    Raises:
        ConfigError: an unknown ``kind``.
        ManifestError: the manifest has no landmark columns (made before preprocessing stored them).
    """
    if kind is None:
        return frames
    if kind not in PSEUDO_FAKES:
        raise ConfigError(f"data.pseudo_fakes must be one of {', '.join(PSEUDO_FAKES)} or empty, got '{kind}'")
    points = landmarks_of(frames)
    if points is None:
        raise ManifestError(f"{manifest}: data.pseudo_fakes=sbi needs facial landmarks (columns "
                            f"{LANDMARK_COLUMNS[0]}..{LANDMARK_COLUMNS[-1]}): re-run forensics preprocess to add them")
    real = (frames["method"] == REAL_METHOD).to_numpy()
    usable = usable_landmarks(points, crop_size)
    chosen = np.flatnonzero(real & usable)
    skipped = int(real.sum() - len(chosen))
    if skipped:
        log.warning("%s: %d of %d real crops have no usable landmarks (NaN or outside the crop): "
                    "no self-blended twin for them", manifest, skipped, int(real.sum()))
    if len(chosen) == 0:
        raise ManifestError(f"{manifest}: data.pseudo_fakes=sbi: no real crop with usable landmarks "
                            f"({int(real.sum())} reals)")
    twins = frames.iloc[chosen].copy()
    twins["original"] = twins["video"]
    twins["method"] = SBI_METHOD
    twins["label"] = 1
    twins["video_key"] = twins["dataset"] + "/" + SBI_METHOD + "/" + twins["compression"] + "/" + twins["video"]
    twins[SOURCE] = chosen
    out = pd.concat([frames.assign(**{SOURCE: -1}), twins], ignore_index=True)
    out.attrs = {**frames.attrs, "pseudo_fakes": kind}  # the recipe SelfBlender follows
    log.info("%d self-blended twins of %d real crops (Shiohara & Yamasaki, CVPR 2022)", len(chosen), int(real.sum()))
    return out


def share_draw(frames: pd.DataFrame, noise: np.ndarray) -> np.ndarray:
    """The per-row random keys of an epoch's frame draw, a twin taking its real's: both draw the same frames."""
    if SOURCE not in frames.columns:
        return noise
    source = frames[SOURCE].to_numpy()
    twin = source >= 0
    noise = noise.copy()
    noise[twin] = noise[source[twin]]
    return noise


def pair_rows(frames: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """An epoch's ``rows`` reordered so that each twin follows its real, and the index blocks
    (a pair, or one row) that :class:`~forensics.data.datasets.TrainSampler` shuffles whole;
    ``rows`` unchanged and ``None`` without twins."""
    if SOURCE not in frames.columns:
        return rows, None
    source = frames[SOURCE].to_numpy()
    served = set(rows.tolist())
    twin_of = {int(source[r]): int(r) for r in rows if source[r] >= 0 and int(source[r]) in served}
    ordered: list[int] = []
    blocks: list[np.ndarray] = []
    for r in rows:
        if source[r] >= 0 and int(source[r]) in served:
            continue  # placed after its real
        block = [int(r)] + ([twin_of[int(r)]] if int(r) in twin_of else [])
        blocks.append(np.arange(len(ordered), len(ordered) + len(block)))
        ordered += block
    return np.asarray(ordered, dtype=np.int64), blocks


def shuffle_blocks(blocks: list[np.ndarray], seed: int, rank: int, replicas: int, count: int) -> list[int]:
    """This rank's ``count`` indices: blocks shuffled by ``seed`` (as ``DistributedSampler`` seeds
    ``seed + epoch``) and dealt whole, each to the rank with the fewest indices so far, so a real
    and its twin share a rank and, in order, a batch, as the paper's batches of "16 real + 16 SBI"
    do. Ranks then differ by at most 2 indices: cycled to ``count`` (DistributedSampler's
    padding) or cut to it (at most one crop of the epoch left out)."""
    import torch

    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed)).tolist()
    dealt: list[list[int]] = [[] for _ in range(replicas)]
    for b in order:
        min(dealt, key=len).extend(int(i) for i in blocks[b])  # min: the first of equals
    mine = dealt[rank]
    if not mine:
        return []
    return (mine * (count // len(mine) + 1))[:count]


# ----------------------------------------------------------------------------- the blend

def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift (p 0.3), hue/saturation/value, brightness/contrast: a colour mismatch.

    Each step is a per-channel lookup table on uint8 (``cv2.LUT``): 3-4x cheaper than the same
    arithmetic in floats, and the loader pays it on every pseudo-fake.
    """
    levels = np.arange(256, dtype=np.float32)[:, None]
    shift = rng.uniform(-20, 20, 3) if rng.random() < 0.3 else np.zeros(3)
    out = cv2.LUT(image, _table(levels + shift.astype(np.float32)))
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    dh, ds, dv = rng.uniform(-5, 5), *rng.uniform(-15, 15, 2)
    hue = np.where(levels < 180, (levels + dh) % 180, levels)  # OpenCV's 8-bit hue runs 0..179
    hsv = cv2.LUT(hsv, _table(np.concatenate([hue, levels + ds, levels + dv], axis=1)))
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    alpha, beta, mean = 1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1) * 255, float(out.mean())
    return cv2.LUT(out, _table((levels - mean) * alpha + mean + beta))


def _table(values: np.ndarray) -> np.ndarray:
    """A ``cv2.LUT`` table (``256 x 1 x 3`` uint8) from ``256 x 1`` or ``256 x 3`` values."""
    values = np.broadcast_to(values, (256, 3))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _frequency(image: np.ndarray, rng: np.random.Generator, recipe: BlendRecipe = BlendRecipe()) -> np.ndarray:
    """Down-then-up sampling by 2 or 4, or sharpening: a resolution mismatch."""
    h, w = image.shape[:2]
    if rng.random() < recipe.downscale:
        r = int(rng.choice([2, 4]))
        low = cv2.resize(image, (max(1, w // r), max(1, h // r)), interpolation=recipe.down_interpolation)
        return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
    # The sharpening kernel albumentations' Sharpen uses: identity blended with a Laplacian boost.
    kernel = np.array([[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]], np.float32)
    ident = np.zeros((3, 3), np.float32)
    ident[1, 1] = 1
    kernel = (1 - alpha) * ident + alpha * kernel
    return np.clip(cv2.filter2D(image.astype(np.float32), -1, kernel), 0, 255).astype(np.uint8)


def face_hull(points: np.ndarray, grow: float = 1.0) -> np.ndarray:
    """An outline of the whole face from MTCNN's five landmarks (``(5, 2)``): ``(12, 2)`` points.

    A 68-point hull runs along the jaw from ear to ear and over the eyebrows. From five points
    we rebuild it in the face's own frame: ``across`` (eye to eye) and ``down`` (eyes to mouth)
    axes, eyebrows and temples above the eyes, cheeks level with the nose, the jaw and the
    chin below the mouth. ``grow`` scales the outline about the nose.
    """
    eyes, nose, mouth = points[:2].mean(0), points[2], points[3:].mean(0)
    across = points[1] - points[0]
    down = mouth - eyes
    if np.linalg.norm(down) < 1e-6:
        down = np.array([-across[1], across[0]])
    # (along across, along down) offsets from the eye centre, in units of the two axes.
    layout = [(-0.95, -0.55), (-0.4, -0.8), (0.4, -0.8), (0.95, -0.55),  # temples, eyebrows
              (1.05, 0.2), (1.0, 0.8), (0.7, 1.35), (0.0, 1.65),         # cheek, jaw, chin
              (-0.7, 1.35), (-1.0, 0.8), (-1.05, 0.2), (0.0, -0.9)]
    outline = np.array([eyes + a * across + d * down for a, d in layout])
    return nose + (outline - nose) * grow


def landmark_mask(points: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The binary (0/1 float32) face mask of :func:`face_hull`, grown at random and deformed elastically."""
    h, w = shape
    hull = face_hull(points, grow=rng.uniform(0.9, 1.1))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(hull).astype(np.int32)), 1)
    # Elastic deformation as albumentations' ElasticTransform(alpha=50, sigma=7) at 224 px (the
    # paper's): uniform noise blurred by sigma, times alpha, a wobble of a pixel or two. Drawn
    # at a quarter of the resolution (10x cheaper): a quarter of the sigma in those pixels, and a
    # quarter of the alpha since a blur of 16x fewer samples varies 4x more.
    qh, qw = max(1, h // 4), max(1, w // 4)
    sigma, alpha = 7 * w / 224 / 4, 50 * (w / 224) ** 2 / 4
    noise = rng.random((2, qh, qw), dtype=np.float32) * 2 - 1
    field = [cv2.resize(cv2.GaussianBlur(n, (0, 0), sigma) * alpha, (w, h), interpolation=cv2.INTER_LINEAR)
             for n in noise]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    deformed = cv2.remap(mask, gx + field[0], gy + field[1], cv2.INTER_NEAREST, borderValue=0)
    return deformed.astype(np.float32)


def _odd(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1)) // 2 * 2 + 1


def soften_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur twice with random kernels (the first, cut at 1, shrinks the mask inside the hull;
    the second feathers its edge), then scale by a ratio from :data:`BLEND_RATIOS`."""
    side = mask.shape[1] / 224
    k1, k2 = _odd(rng, round(5 * side), round(26 * side)), _odd(rng, round(5 * side), round(26 * side))
    blurred = cv2.GaussianBlur(mask, (k1, k1), 0)
    blurred[blurred < 0.999] = 0  # float rounding: a Gaussian of ones is 1 - 1e-7, not 1
    blurred = cv2.GaussianBlur(blurred, (k2, k2), 0)
    peak = blurred.max()
    if peak > 0:
        blurred /= peak
    return blurred * float(rng.choice(BLEND_RATIOS))


def _move(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small random scale and translation of the source (and its mask): a misalignment."""
    h, w = image.shape[:2]
    scale = rng.uniform(0.95, 1 / 0.95)
    tx, ty = rng.uniform(-0.03, 0.03, 2) * (w, h)
    m = np.float32([[scale, 0, (1 - scale) * w / 2 + tx], [0, scale, (1 - scale) * h / 2 + ty]])
    moved = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return moved, cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def self_blend(image: np.ndarray, points: np.ndarray, rng: np.random.Generator,
               recipe: BlendRecipe = RECIPES["sbi"]) -> tuple[np.ndarray, np.ndarray]:
    """One self-blended image of a real crop (Shiohara & Yamasaki, CVPR 2022).

    Args:
        image: ``H x W x 3`` uint8 RGB crop.
        points: its ``(5, 2)`` landmarks in crop pixels.
        rng: the draw (seeded per sample and epoch by the dataset).
        recipe: one of :data:`RECIPES` (the paper's by default).

    Returns:
        The fake (uint8 ``H x W x 3``) and its blend mask (uint8 ``H x W``, 255 = all source).
    """
    source, target = image.copy(), image.copy()
    altered = _frequency(_colour(image, rng), rng, recipe)
    if rng.random() < recipe.altered_source:
        source = altered
    else:
        target = altered
    mask = landmark_mask(points, image.shape[:2], rng)
    source, mask = _move(source, mask, rng)
    mask = soften_mask(mask, rng)
    base = target.astype(np.float32)
    fake = base + mask[..., None] * (source.astype(np.float32) - base)
    return np.clip(fake + 0.5, 0, 255).astype(np.uint8), np.round(mask * 255).astype(np.uint8)


class SelfBlender:
    """What :class:`~forensics.data.datasets.CropDataset` asks per sample: the crop of a real row
    as it is, or the self-blended image of a twin row, and the mask (zeros for every other row).
    """

    def __init__(self, frames: pd.DataFrame) -> None:
        self.source = frames[SOURCE].to_numpy()
        self.points = landmarks_of(frames)
        self.recipe = RECIPES[frames.attrs.get("pseudo_fakes") or "sbi"]

    def __call__(self, row: int, image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``image`` (``H x W x 3`` uint8 of row ``row``'s file) as served, and its mask."""
        if self.source[row] < 0:
            return image, np.zeros(image.shape[:2], np.uint8)
        return self_blend(image, self.points[row], np.random.default_rng(seed), self.recipe)


def transform_pair(transform: Any, image: Any, mask: Any) -> tuple[Any, Any]:
    """``transform`` on a ``3 x H x W`` crop and its ``1 x H x W`` mask together: geometric steps
    move both, pixel steps (colour, blur, JPEG, cut-out) change the image only.

    ``transform``: one with a ``pair(image, mask)`` method (the training transform,
    :class:`forensics.data.transforms.CropTransform`) or a torchvision v2 transform."""
    import warnings

    import torch
    from torchvision import tv_tensors

    pair = getattr(transform, "pair", None)
    if pair is not None:
        return pair(image, mask)
    with warnings.catch_warnings():  # RandomErasing says it leaves masks alone: that is what we want
        warnings.filterwarnings("ignore", message="RandomErasing.*passing through", category=UserWarning)
        image, mask = transform(image, tv_tensors.Mask(mask))
    return image, mask.as_subclass(torch.Tensor)


# ----------------------------------------------------------------------------- figures

def sample_pairs(dataset: Any, count: int = 8) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Up to ``count`` ``(real, fake, mask)`` uint8 triples of ``dataset``'s current epoch, before
    the crop augmentations (what the blend itself does)."""
    from forensics.media.crops import read_image

    frames = dataset.frames
    twins = [i for i, row in enumerate(dataset.rows) if frames[SOURCE].iat[int(row)] >= 0]
    picks = [twins[int(i)] for i in np.linspace(0, len(twins) - 1, min(count, len(twins))).round()] if twins else []
    out = []
    for index in picks:
        row = int(dataset.rows[index])
        real = read_image(frames["file"].iat[row])
        fake, mask = dataset.blend(row, real, index)
        out.append((real, fake, mask))
    return out


def save_pair_grid(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path) -> None:
    """Rows of real | self-blended fake | mask, one PNG."""
    from forensics.media.crops import write_png

    rows = [np.concatenate([real, fake, np.repeat(mask[..., None], 3, axis=2)], axis=1) for real, fake, mask in pairs]
    write_png(path, np.concatenate(rows, axis=0))


def log_pairs(logger: Any, dataset: Any, count: int = 8) -> None:
    """The sample-pair grid into the run folder (``sbi_pairs.png``) and W&B (``sbi/pairs``)."""
    frames = getattr(dataset, "frames", None)  # a plug-in task's dataset has no crop table
    if not logger.enabled or frames is None or SOURCE not in frames.columns:
        return
    pairs = sample_pairs(dataset, count)
    if not pairs:
        return
    path = Path(logger.run_dir) / "sbi_pairs.png"
    save_pair_grid(pairs, path)
    if logger.run is not None:
        import wandb

        logger.run.log({"sbi/pairs": wandb.Image(str(path), caption="real | self-blended | mask")}, step=0)
