"""The synthetic manipulations: what turns a real face patch into a fake one.

Each method edits the target's face patch once per video (its parameters are constant over
the video), and :mod:`forensics.synth.render` draws the edited patch with the target video's
own motion, lighting and noise, so every fake frame differs from its original frame only
inside the manipulated region, whose soft mask the method returns too.

``FaceSwap``
    A cross-identity swap in the manner of the graphics-based FaceSwap of FaceForensics++
    (Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial Images", ICCV
    2019): the face of the source identity, brows to chin (eyes, nose, mouth), is aligned
    onto the target's face box, colour-corrected towards the target's skin (Reinhard et al., "Color
    Transfer between Images", 2001; only partly, as real swaps leave a residual mismatch)
    and alpha-blended through a feathered ellipse. Fake ``a_b`` has target ``a`` (the video
    and everything outside the mask) and source ``b`` (the face inside the mask). The seam and the
    colour and sharpness mismatch at the blending boundary are the artefacts Face X-ray
    (Li et al., CVPR 2020) teaches detectors to look for.

``SelfBlend``
    Self-Blended Images (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images",
    CVPR 2022): the target is blended with a slightly transformed copy of *itself*: a colour
    shift (per-channel gains, brightness, contrast), a blur or a sharpening, and a small
    affine warp (scale, rotation, translation), through a randomly deformed, feathered mask
    at a random blend ratio. Fake ``a_a`` keeps the identity and only blending artefacts
    remain: training data for a detector (the random warp and colour are what SBI wants a
    detector to see). Not a pixel-aligned self-reenactment: aligned with its original
    outside the mask, but inside it the warp moves the face, so the original frame is not its
    ground truth there.

``SelfReenact``
    A self-reenactment in the manner of Face2Face (Thies et al., CVPR 2016) run with source ==
    target, as FaceForensics (Rössler et al., 2018) made the training pairs of its
    image-to-image model:
    the tracked face is re-rendered from a face model with the person's own expression, so
    the geometry is the original's and what differs is the renderer: a smoothed texture, the
    model's shading (flatter contrast, a warm colour bias, a brightness offset, much the same
    for every video, drawn with a small per-video jitter) and a render at a lower resolution
    than the video. Fake ``a_a`` is aligned with its original pixel for pixel outside the mask
    and feature for feature inside it: the training data of an image-to-image model learning to
    undo a manipulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forensics.synth import METHODS
from forensics.synth.faces import FACE_BOX, FACE_H, PATCH_H, PATCH_W, Identity, inner_face_mask

__all__ = ["METHODS", "Fake", "face_swap", "self_blend", "self_reenact", "manipulate"]


@dataclass(frozen=True)
class Fake:
    """A manipulated face patch.

    Attributes:
        rgb: ``PATCH_H x PATCH_W x 3`` float32, equal to the target's patch outside ``mask``.
        mask: ``PATCH_H x PATCH_W`` float32 in [0, 1], the blending weight of the manipulation.
        rerender: the manipulated region is drawn at this fraction of the frame's resolution
            (see :func:`forensics.synth.render._rerender`); 1 draws it sharp.
    """

    rgb: np.ndarray
    mask: np.ndarray
    rerender: float = 1.0


def _random_mask(rng: np.random.Generator, grow: tuple[float, float]) -> np.ndarray:
    """A randomly deformed inner-face mask, as SBI deforms its landmark hull."""
    scale = (rng.uniform(*grow), rng.uniform(*grow))
    offset = (rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))
    return inner_face_mask(scale=scale, offset=offset, angle=rng.uniform(-12, 12),
                           softness=rng.uniform(0.03, 0.07))


def _blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    # Where the mask is exactly zero the target is kept bit for bit: alignment of the fake
    # with its original outside the mask relies on it.
    return np.where(m > 0, target * (1 - m) + source * m, target).astype(np.float32)


def face_swap(target: Identity, source: Identity, rng: np.random.Generator) -> Fake:
    """Blend the inner face of ``source`` onto ``target`` (see the module docstring)."""
    # Larger than the inner face: like the landmark hull of FaceForensics++'s FaceSwap, it
    # takes brows to chin, so no feature of the target is left half-replaced beside the
    # source's (a doubled brow or eye would also hide the face from detectors).
    mask = _random_mask(rng, (1.12, 1.28))
    # Both patches share FACE_BOX, so the faces are aligned already, up to the small
    # residual error of a landmark-based alignment.
    shift = rng.uniform(-0.015, 0.015, 2) * FACE_H
    warp = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    src = cv2.warpAffine(source.rgb, warp, (PATCH_W, PATCH_H), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    # Colour transfer measured over the blended region.
    w = mask[..., None] / mask.sum()
    mu_s, mu_t = (src * w).sum((0, 1)), (target.rgb * w).sum((0, 1))
    sd_s = np.sqrt(((src - mu_s) ** 2 * w).sum((0, 1))) + 1e-3
    sd_t = np.sqrt(((target.rgb - mu_t) ** 2 * w).sum((0, 1))) + 1e-3
    # Contrast is matched only part way: a low-contrast target would otherwise flatten the
    # source's features until no detector finds a face.
    matched = (src - mu_s) * np.clip(sd_t / sd_s, 0.8, 1.25) + mu_t
    strength = rng.uniform(0.6, 0.9)
    src = np.clip(strength * matched + (1 - strength) * src, 0, 255)
    # A swapped face comes out of its renderer at a lower resolution than the video.
    return Fake(_blend(target.rgb, src, mask), mask, rerender=rng.uniform(0.15, 0.3))


def self_blend(target: Identity, rng: np.random.Generator) -> Fake:
    """Blend ``target`` with a transformed copy of itself (see the module docstring)."""
    src = target.rgb.copy()
    # Colour: per-channel gains (at least 5% off on one channel), offset and contrast. Gains
    # rather than SBI's offsets: the same shift is relative to the face, dark or light.
    gain = rng.uniform(0.9, 1.1, 3)
    k = int(rng.integers(3))
    gain[k] = 1 + np.sign(gain[k] - 1 or 1.0) * max(abs(gain[k] - 1), 0.05)
    contrast = rng.uniform(0.88, 1.12)
    mean = (src * target.inner[..., None]).sum((0, 1)) / target.inner.sum()  # the face's
    src = ((src - mean) * contrast + mean) * gain + rng.uniform(-8, 8)
    # Frequency: blur or sharpen.
    blurred = cv2.GaussianBlur(src, (0, 0), rng.uniform(0.8, 1.6))
    src = blurred if rng.random() < 0.5 else src + rng.uniform(0.5, 1.0) * (src - blurred)
    # Geometry: a small affine warp around the face centre.
    cx, cy = (FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2
    warp = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-3, 3), rng.uniform(0.95, 1.06))
    warp[:, 2] += rng.uniform(-0.035, 0.035, 2) * FACE_H
    warp[0, :2] *= rng.uniform(0.97, 1.03)  # anisotropic: aspect change
    src = cv2.warpAffine(np.clip(src, 0, 255).astype(np.float32), warp, (PATCH_W, PATCH_H),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = _random_mask(rng, (0.9, 1.15)) * rng.uniform(0.7, 1.0)
    return Fake(_blend(target.rgb, src, mask), mask, rerender=rng.uniform(0.2, 0.35))


#: The renderer's shading of :func:`self_reenact`: per-channel gain (RGB), contrast around the
#: face's mean, and brightness offset; each drawn per video within ``RENDER_JITTER`` of these.
RENDER_GAIN = (1.06, 0.98, 0.92)
RENDER_CONTRAST = 0.88
RENDER_OFFSET = 5.0
RENDER_JITTER = 0.015


def self_reenact(target: Identity, rng: np.random.Generator) -> Fake:
    """Re-render ``target``'s inner face as a face-model renderer would (see the module docstring)."""
    gain = np.array(RENDER_GAIN, np.float32) + rng.uniform(-RENDER_JITTER, RENDER_JITTER, 3)
    contrast = RENDER_CONTRAST + rng.uniform(-RENDER_JITTER, RENDER_JITTER)
    mean = (target.rgb * target.inner[..., None]).sum((0, 1)) / target.inner.sum()
    # A model texture holds less detail than the camera saw.
    src = cv2.GaussianBlur(target.rgb, (0, 0), rng.uniform(1.0, 1.5))
    offset = RENDER_OFFSET * (1 + 10 * rng.uniform(-RENDER_JITTER, RENDER_JITTER))  # +-15%
    src = ((src - mean) * contrast + mean) * gain + offset
    mask = _random_mask(rng, (1.0, 1.1))
    return Fake(_blend(target.rgb, np.clip(src, 0, 255).astype(np.float32), mask),
                mask, rerender=rng.uniform(0.35, 0.5))


def manipulate(method: str, target: Identity, source: Identity,
               rng: np.random.Generator) -> Fake:
    """Apply ``method`` (one of :data:`METHODS`) to ``target`` with ``source``'s face.

    ``source`` is ignored by the self-manipulations (``SelfBlend``, ``SelfReenact``), whose
    source is the target itself.
    """
    if method == "FaceSwap":
        return face_swap(target, source, rng)
    if method == "SelfBlend":
        return self_blend(target, rng)
    if method == "SelfReenact":
        return self_reenact(target, rng)
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
