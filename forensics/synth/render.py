"""Rendering of the synthetic videos: a person moving in front of a camera.

A video is a :class:`Scene`, every random choice of which is drawn up front from one
``numpy.random.Generator``: a blurred, tinted background larger than the frame, the camera
(pan and zoom over that background), the face's trajectory (position, size, in-plane
rotation), the lighting (colour gain and a horizontal light gradient drifting in time) and the
sensor noise. All motion is a sum of a few slow sinusoids, so it is smooth and the face is a
trackable, detectable object in every frame.

:func:`render_frames` then draws frame ``t`` of several *layers* at once: the same scene with
different face patches (the real face, and the manipulated ones). Every layer goes through
exactly the same arithmetic, so a fake frame equals its original frame bit for bit wherever
the face patches are equal, i.e. outside the manipulated region. That alignment is what the
fakes of FaceForensics++ (Rössler et al., ICCV 2019) have too: they are made from their target
video frame by frame.

The backgrounds are scikit-image's bundled sample images, never ``astronaut`` (it holds a
face); they are blurred like a shallow depth of field, which also washes out any face-like
structure a detector could pick up.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from forensics.synth.faces import FACE_BOX, FACE_H, PATCH_H, PATCH_W, Identity

#: Bundled scikit-image images used as backgrounds (none contains a face once blurred).
BACKGROUNDS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "coins",
               "horse", "moon", "hubble_deep_field")
#: A soft mask above this value counts as manipulated in the binary mask videos.
MASK_THRESHOLD = 0.1
#: Sensor grain: strength (grey levels, drawn per video) and correlation length (pixels).
NOISE_SIGMA = (4.0, 7.0)
NOISE_GRAIN = 0.8
# Pixels of slack around the frame in the noise bank, so that per-frame noise is a shifted view.
_NOISE_PAD = 32
# The canvas is this much larger than the frame, room for the camera to pan and zoom out.
_CANVAS = 1.3


@functools.lru_cache(maxsize=None)
def _background_image(name: str) -> np.ndarray:
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.uint8)
    image.setflags(write=False)
    return image


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random blurred, tinted crop of a bundled image, of size ``width x height`` (uint8)."""
    image = _background_image(BACKGROUNDS[rng.integers(len(BACKGROUNDS))])
    ih, iw = image.shape[:2]
    # Random crop with the canvas aspect ratio, between 60% and 100% of the largest one.
    aspect = width / height
    cw = min(iw, ih * aspect) * rng.uniform(0.6, 1.0)
    ch = cw / aspect
    x0, y0 = rng.uniform(0, iw - cw), rng.uniform(0, ih - ch)
    # Drawn at a quarter of the size, then blurred and upscaled: a defocused background has
    # no detail to lose, and a large blur at full size would cost more than a whole video.
    w, h = max(width // 4, 8), max(height // 4, 8)
    m = np.float32([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]])
    if rng.random() < 0.5:
        m[0] = -m[0]
        m[0, 2] += w - 1
    bg = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.012, 0.022) * max(w, h))
    mean = bg.mean(axis=(0, 1))
    bg = mean + rng.uniform(0.5, 0.9) * (bg - mean)  # a defocused background is low contrast
    tint = rng.uniform(0.7, 1.15, 3)
    bg = bg * tint + rng.uniform(-20, 30)
    bg = cv2.resize(bg, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(bg + 0.5, 0, 255).astype(np.uint8)


def smooth_curve(rng: np.random.Generator, n: int, fps: float, components: int = 3,
                 max_hz: float = 0.4) -> np.ndarray:
    """A smooth random curve of ``n`` samples in [-1, 1]: a sum of slow sinusoids."""
    t = np.arange(n, dtype=np.float64) / fps
    freq = rng.uniform(0.05, max_hz, components)
    phase = rng.uniform(0, 2 * np.pi, components)
    weight = rng.uniform(0.3, 1.0, components)
    curve = (weight[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])).sum(0)
    return curve / weight.sum()


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw one video, whatever the face patch.

    Attributes:
        width, height: frame size.
        canvas: uint8 background, larger than the frame.
        camera: ``(T, 2, 3)`` affine maps, canvas -> frame.
        face: ``(T, 2, 3)`` affine maps, face patch -> frame.
        gain: ``(T, 3)`` per-channel light gain.
        ramp: ``(T,)`` strength of a left-to-right light gradient.
        noise: float32 noise bank (``height + pad``, ``width + pad``, 3), 0.5 rounding bias
            included.
        noise_offset: ``(T, 2)`` where each frame's noise is read in the bank (x, y).
    """

    width: int
    height: int
    canvas: np.ndarray
    camera: np.ndarray
    face: np.ndarray
    gain: np.ndarray
    ramp: np.ndarray
    noise: np.ndarray
    noise_offset: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.face)

    def face_boxes(self) -> np.ndarray:
        """``(T, 4)`` axis-aligned boxes ``x0, y0, x1, y1`` around the rotated face box."""
        x0, y0, x1, y1 = FACE_BOX
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]])
        pts = np.einsum("tij,kj->tki", self.face, corners)
        return np.concatenate([pts.min(1), pts.max(1)], axis=1)

    def face_points(self, points: np.ndarray) -> np.ndarray:
        """``(T, K, 2)`` frame positions of ``(K, 2)`` patch points, e.g. the face's landmarks
        (:data:`forensics.synth.faces.FACE_LANDMARKS`)."""
        pts = np.concatenate([np.asarray(points, np.float64), np.ones((len(points), 1))], axis=1)
        return np.einsum("tij,kj->tki", self.face.astype(np.float64), pts)


def plan_scene(identity: Identity, width: int, height: int, num_frames: int, fps: float,
               rng: np.random.Generator) -> Scene:
    """Draw every random choice of one video of ``identity``."""
    n = num_frames
    cw, ch = int(np.ceil(width * _CANVAS)), int(np.ceil(height * _CANVAS))
    canvas = make_background(cw, ch, rng)

    # Camera: zoom in [1, 1.1] (the canvas is 1.3x the frame: never shows its border) and pan.
    zoom = 1.0 + 0.05 * (1 + smooth_curve(rng, n, fps))
    pan_x = 0.08 * width * smooth_curve(rng, n, fps)
    pan_y = 0.05 * height * smooth_curve(rng, n, fps)
    camera = np.zeros((n, 2, 3), np.float64)
    camera[:, 0, 0] = camera[:, 1, 1] = zoom
    camera[:, 0, 2] = width / 2 - zoom * (cw / 2 + pan_x)
    camera[:, 1, 2] = height / 2 - zoom * (ch / 2 + pan_y)

    # Face: box height ~22-47% of the frame height (105-225 px at 480p), breathing with the
    # zoom; centre drifting but keeping hair and chin inside the frame.
    face_h = identity.size * rng.uniform(0.25, 0.42) * height
    face_h = face_h * (zoom / zoom.mean()) * (1 + 0.06 * smooth_curve(rng, n, fps))
    x_room = np.maximum(width / 2 - 0.8 * face_h, 0)
    cx = width / 2 + x_room * np.clip(rng.uniform(-0.5, 0.5) + 0.5 * smooth_curve(rng, n, fps), -1, 1)
    y_lo, y_hi = 0.9 * face_h, height - 0.7 * face_h
    y_mid = (y_lo + y_hi) / 2
    cy = y_mid + np.maximum(y_hi - y_lo, 0) / 2 * np.clip(
        rng.uniform(-0.4, 0.4) + 0.4 * smooth_curve(rng, n, fps), -1, 1)
    angle = np.deg2rad(rng.uniform(-5, 5) + 6 * smooth_curve(rng, n, fps))
    scale = face_h / FACE_H
    px, py = (FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    face = np.zeros((n, 2, 3), np.float64)
    face[:, 0, 0], face[:, 0, 1] = cos, -sin
    face[:, 1, 0], face[:, 1, 1] = sin, cos
    face[:, 0, 2] = cx - (cos * px - sin * py)
    face[:, 1, 2] = cy - (sin * px + cos * py)

    # Lighting: a colour cast, a global drift and a drifting left-right gradient.
    cast = rng.uniform(0.9, 1.08, 3)
    gain = cast[None, :] * (1 + 0.08 * smooth_curve(rng, n, fps))[:, None]
    ramp = rng.uniform(-0.15, 0.15) + 0.1 * smooth_curve(rng, n, fps)

    # Sensor noise after demosaicing is correlated over a pixel or two: grain that survives
    # H.264 at c23, where independent per-pixel noise of the same strength is wiped out.
    sigma = rng.uniform(NOISE_SIGMA[0], NOISE_SIGMA[1])
    white = rng.normal(0.0, 1.0, (height + _NOISE_PAD, width + _NOISE_PAD, 3)).astype(np.float32)
    grain = cv2.GaussianBlur(white, (0, 0), NOISE_GRAIN)
    noise = 0.5 + grain * (sigma / grain.std())
    noise_offset = rng.integers(0, _NOISE_PAD + 1, (n, 2))
    return Scene(width, height, canvas, camera.astype(np.float32), face.astype(np.float32),
                 gain.astype(np.float32), ramp.astype(np.float32), noise, noise_offset)


@dataclass(frozen=True)
class Layer:
    """One version of the face to draw: a patch (the real one or a manipulated one).

    Attributes:
        rgb: ``PATCH_H x PATCH_W x 3`` float32 patch.
        mask: soft mask of its manipulated region (``PATCH_H x PATCH_W`` float32), or ``None``
            for the real face.
    """

    rgb: np.ndarray
    mask: np.ndarray | None = None
    rerender: float = 1.0


def _rerender(frame: np.ndarray, soft: np.ndarray, scale: float) -> np.ndarray:
    """The manipulated region as a face generator leaves it: rendered at ``scale`` of the
    frame's resolution and upsampled, so it lacks the camera's noise and fine detail.

    This resolution and noise mismatch between the pasted face and its surroundings is the
    trace most face forgeries share (FaceForensics++, Rössler et al. 2019; Face X-ray, Li et
    al. 2020), whatever the identity: it is what makes the fakes learnable across people.
    """
    h, w = frame.shape[:2]
    low = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    smooth = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # Only inside the binary mask (soft > MASK_THRESHOLD), ramping up from its edge: outside
    # the mask the fake stays bit for bit its original (alignment).
    a = np.clip((soft - MASK_THRESHOLD) / (1 - MASK_THRESHOLD), 0, 1)[..., None]
    return np.where(a > 0, frame * (1 - a) + smooth * a, frame)


def _face_roi(m: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    corners = np.array([[0, 0, 1], [PATCH_W, 0, 1], [PATCH_W, PATCH_H, 1], [0, PATCH_H, 1]], np.float32)
    pts = corners @ m.T
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def render_frames(scene: Scene, alpha: np.ndarray, layers: Sequence[Layer]
                  ) -> Iterator[list[tuple[np.ndarray, np.ndarray | None]]]:
    """Draw the scene once per layer, frame by frame.

    Args:
        scene: the video.
        alpha: ``PATCH_H x PATCH_W`` float32 alpha of the head, shared by every layer.
        layers: the face patches.

    Yields:
        For every frame, one ``(frame, mask)`` per layer: ``frame`` uint8 ``HxWx3`` RGB and
        ``mask`` uint8 ``HxW`` (255 where the layer's mask exceeds :data:`MASK_THRESHOLD`), or
        ``None`` for a layer without mask.
    """
    w, h = scene.width, scene.height
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    for t in range(scene.num_frames):
        bg = cv2.warpAffine(scene.canvas, scene.camera[t], (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        light = (1 + scene.ramp[t] * xs)[None, :, None] * scene.gain[t][None, None, :]
        ox, oy = scene.noise_offset[t]
        noise = scene.noise[oy:oy + h, ox:ox + w]
        base = np.clip(bg * light + noise, 0, 255).astype(np.uint8)

        roi = _face_roi(scene.face[t], w, h)
        if roi is None:  # the face left the frame entirely (not with plan_scene's motion)
            yield [(base, None if layer.mask is None else np.zeros((h, w), np.uint8))
                   for layer in layers]
            continue
        x0, y0, x1, y1 = roi
        m = scene.face[t].copy()
        m[:, 2] -= (x0, y0)
        size = (x1 - x0, y1 - y0)
        a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR)[..., None]
        bg_roi = bg[y0:y1, x0:x1] * (1 - a)
        light_roi, noise_roi = light[:, x0:x1], noise[y0:y1, x0:x1]
        out = []
        for layer in layers:
            face = cv2.warpAffine(layer.rgb, m, size, flags=cv2.INTER_LINEAR)
            frame = base.copy()
            drawn = np.clip((bg_roi + face * a) * light_roi + noise_roi, 0, 255)
            mask = None
            if layer.mask is not None:
                mask = np.zeros((h, w), np.uint8)
                soft = cv2.warpAffine(layer.mask, m, size, flags=cv2.INTER_LINEAR)
                mask[y0:y1, x0:x1] = (soft > MASK_THRESHOLD) * np.uint8(255)
                if layer.rerender < 1:
                    drawn = _rerender(drawn, soft, layer.rerender)
            frame[y0:y1, x0:x1] = np.clip(drawn, 0, 255)
            out.append((frame, mask))
        yield out
