"""Steganalysis features + linear SVM: a subset of the spatial rich model (SRM).

Fridrich and Kodovsky, "Rich Models for Steganalysis of Digital Images", IEEE TIFS 7(3),
2012 (https://doi.org/10.1109/TIFS.2012.2190402). A FaceForensics++ baseline (Rössler et
al., ICCV 2019): hand-crafted SRM features, a linear SVM on top.

Input: 3x224x224 face crops in pixel units 0..255 (``mean=(0, 0, 0)``, ``std=(1/255,)*3``),
converted to luminance and rounded to integers: the SRM is defined on 8-bit grayscale and
its quantisation steps are in pixel units. The shared crop size is kept, unresampled, since
resampling smooths the noise residuals the features measure.

Features (all as in the SRM: residual -> quantise with step ``q`` -> truncate to
``[-T, T]``, ``T = 2`` -> co-occurrences of 4 neighbouring residual samples (5^4 = 625
bins) -> the SRM's sign and direction symmetrisation -> histogram normalised to sum 1):

=========  ======================================================  ===  =====
submodel   residual                                                q    dim
=========  ======================================================  ===  =====
spam1      1st order, horizontal and vertical                      1    169
spam2      2nd order, horizontal and vertical                      2    169
spam3      3rd order, horizontal and vertical                      3    169
square3    3x3 "KB" kernel                                         4    169
square5    5x5 "KV" kernel                                         12   169
minmax1    min and max of the four 1st-order residuals             1    325
minmax2    min and max of the horizontal/vertical 2nd-order ones   2    325
=========  ======================================================  ===  =====

1,495 features in all, against the full SRM's 34,671. Why this subset: it keeps every
residual order and both kernel shapes of the SRM (the linear, "spam" residuals) plus the
two simplest non-linear min/max submodels, which carry much of the SRM's gain over
SPAM-like features, at one quantisation step (the SRM's ``q = c``, "SRMQ1"). The full
model's 39 submodels at three steps are ~23x larger, too slow to extract for every frame of
a video dataset, and were designed for an ensemble classifier, whereas FaceForensics++ (and
we) put a linear SVM on top, for which thousands of highly redundant dimensions mostly add
fitting time. Directional residuals co-occur along their own direction (horizontal
residuals horizontally, vertical ones vertically), the non-directional ones along both;
the two directions are summed, as in the SRM.

The classifier is scikit-learn's ``LinearSVC`` on standardised features, with Platt scaling
(``CalibratedClassifierCV(method="sigmoid")``) for probabilities. Everything is folded into
an ``nn.Module`` so the model honours the same head contract as the networks: the
standardisation and the calibrated SVM become one ``nn.Linear`` whose logit, through a
sigmoid, is the calibrated fake probability. It is fitted, not trained by gradient descent:
``extract_features`` then :meth:`SteganalysisSVM.fit`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.build import PIXEL_MEAN, PIXEL_STD, check_request, default_cfg
from forensics.atomic import atomic_path
from forensics.errors import ForensicsError
from forensics.models import HeadModule, register_model

PAPER = "Fridrich & Kodovsky, Rich Models for Steganalysis of Digital Images, IEEE TIFS 2012"

T = 2                     # truncation threshold of the SRM
BINS = 2 * T + 1          # quantised values per residual sample
ORDER = 4                 # co-occurrence order (4 neighbouring samples)
LUMA = (0.299, 0.587, 0.114)

_KB = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], dtype=np.float32)
_KV = np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2],
                [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]], dtype=np.float32)


def _symmetry_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0/1 matrices merging the 625 co-occurrence bins into symmetry classes.

    Returns ``(spam, minmax, negate)``: ``spam`` (625 x 169) merges a bin with its sign flip
    and its reversal; ``minmax`` (625 x 325) merges a bin with its reversal; ``negate`` maps a
    bin to the bin of its sign flip (used to fold the max co-occurrence onto the min one).
    """
    codes = np.stack(np.unravel_index(np.arange(BINS ** ORDER), (BINS,) * ORDER), axis=1)
    weights = BINS ** np.arange(ORDER - 1, -1, -1)
    negate = ((BINS - 1 - codes) @ weights).astype(np.intp)
    reverse = (codes[:, ::-1] @ weights).astype(np.intp)

    def classes(*maps: np.ndarray) -> np.ndarray:
        canonical = np.arange(BINS ** ORDER)
        for m in maps:
            canonical = np.minimum(canonical, m)
        _, column = np.unique(canonical, return_inverse=True)
        out = np.zeros((BINS ** ORDER, column.max() + 1), dtype=np.float32)
        out[np.arange(BINS ** ORDER), column] = 1.0
        return out

    # The group {identity, negate, reverse, negate o reverse}: its orbit of a bin is the
    # smallest index among the four images.
    spam = classes(negate, reverse, negate[reverse])
    return spam, classes(reverse), negate


_SPAM, _MINMAX, _NEGATE = _symmetry_maps()
SUBMODELS: dict[str, int] = {"spam1": 169, "spam2": 169, "spam3": 169, "square3": 169, "square5": 169,
                             "minmax1": 325, "minmax2": 325}
FEATURE_DIM = sum(SUBMODELS.values())


def _quantise(residual: np.ndarray, q: float) -> np.ndarray:
    """Residual -> integers 0..2T: divide by ``q``, round half away from zero (as the
    reference MATLAB code does), truncate to [-T, T], shift to be non-negative."""
    r = residual / q
    r = np.sign(r) * np.floor(np.abs(r) + 0.5)
    return (np.clip(r, -T, T) + T).astype(np.intp)


def _cooc(q: np.ndarray, axis: int) -> np.ndarray:
    """(N, h, w) quantised residuals -> (N, 625) counts of 4 consecutive samples along
    ``axis`` (1: down the rows, 2: along the columns)."""
    n, length = q.shape[0], q.shape[axis]
    part = [np.take(q, np.arange(k, length - ORDER + 1 + k), axis=axis) for k in range(ORDER)]
    code = ((part[0] * BINS + part[1]) * BINS + part[2]) * BINS + part[3]
    code += (np.arange(n, dtype=np.intp) * BINS ** ORDER)[:, None, None]
    return np.bincount(code.ravel(), minlength=n * BINS ** ORDER).reshape(n, BINS ** ORDER).astype(np.float32)


def _normalise(hist: np.ndarray) -> np.ndarray:
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def srm_features(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) grayscale images in 0..255 -> (N, 1,495) SRM-subset features (float32).

    Residuals are computed on the interior (2-pixel border dropped) so that all of them are
    aligned and none reads outside the image.
    """
    x = np.asarray(gray, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] < 8 or x.shape[2] < 8:
        raise ForensicsError(f"steganalysis features need (N, H, W) images of at least 8x8, got shape {x.shape}")
    h, w = x.shape[1] - 4, x.shape[2] - 4

    def at(dy: int, dx: int) -> np.ndarray:
        return x[:, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]

    def kernel(k: np.ndarray) -> np.ndarray:
        r = k.shape[0] // 2
        return sum(k[i, j] * at(i - r, j - r) for i in range(k.shape[0]) for j in range(k.shape[1]) if k[i, j])

    def spam(horizontal: np.ndarray, vertical: np.ndarray, q: float) -> np.ndarray:
        hist = _cooc(_quantise(horizontal, q), 2) + _cooc(_quantise(vertical, q), 1)
        return _normalise(hist @ _SPAM)

    def minmax(residuals: Sequence[np.ndarray], q: float) -> np.ndarray:
        low = _quantise(np.minimum.reduce(residuals), q)
        high = _quantise(np.maximum.reduce(residuals), q)
        c_min = _cooc(low, 2) + _cooc(low, 1)
        c_max = _cooc(high, 2) + _cooc(high, 1)
        # max(R) = -min(-R): the max histogram, sign-flipped, counts like the min one.
        return _normalise((c_min + c_max[:, _NEGATE]) @ _MINMAX)

    centre = at(0, 0)
    right, left = at(0, 1) - centre, at(0, -1) - centre
    down, up = at(1, 0) - centre, at(-1, 0) - centre
    second_h, second_v = right + left, down + up
    third_h = at(0, -1) - 3 * centre + 3 * at(0, 1) - at(0, 2)
    third_v = at(-1, 0) - 3 * centre + 3 * at(1, 0) - at(2, 0)
    square3, square5 = kernel(_KB), kernel(_KV)
    features = [
        spam(right, down, 1),
        spam(second_h, second_v, 2),
        spam(third_h, third_v, 3),
        spam(square3, square3, 4),
        spam(square5, square5, 12),
        minmax([right, left, up, down], 1),
        minmax([second_h, second_v], 2),
    ]
    return np.concatenate(features, axis=1)


def _to_gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) -> (N, H, W) integer-valued luminance (float32)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 4:
        x = x @ np.asarray(LUMA, np.float32) if x.shape[-1] == 3 else x.mean(axis=-1)
    if x.ndim != 3:
        raise ForensicsError(f"steganalysis: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    return np.rint(x)


def extract_features(images: np.ndarray | Sequence[np.ndarray], chunk: int = 64) -> np.ndarray:
    """SRM-subset features of images with pixel values in 0..255.

    Args:
        images: (N, H, W) grayscale or (N, H, W, C) colour images (uint8 or float in 0..255;
            RGB is converted to luminance), or a sequence of (H, W[, C]) arrays whose sizes
            may differ.
        chunk: images processed at once (bounds memory).

    Returns:
        (N, 1,495) float32 array; see the module docstring for the layout.
    """
    if isinstance(images, np.ndarray) and images.ndim in (3, 4):
        stack = _to_gray(images)
        return np.concatenate([srm_features(stack[i:i + chunk]) for i in range(0, len(stack), chunk)], axis=0) \
            if len(stack) else np.zeros((0, FEATURE_DIM), np.float32)
    return np.concatenate([srm_features(_to_gray(np.asarray(image)[None])) for image in images], axis=0) \
        if len(images) else np.zeros((0, FEATURE_DIM), np.float32)


class SteganalysisSVM(HeadModule):
    """SRM-subset features and a Platt-calibrated linear SVM, behind the networks' head contract.

    ``forward_features`` extracts the features (no gradient: they are hand-crafted);
    ``num_features`` = ``head_hidden_size`` = 1,495; ``forward_head`` standardises them
    (``pre_logits``) and applies the linear head, which :meth:`fit` fills with the
    calibrated SVM. With ``num_classes=1`` the logit's sigmoid is the calibrated fake
    probability; with ``K >= 3`` classes (one-vs-rest SVMs) the output is the log of each
    class's calibrated sigmoid, so that its softmax equals scikit-learn's normalised
    probabilities.

    Args:
        num_classes: 1 (real/fake logit) or K classes (K = 2 gives two logits whose softmax
            is the binary probability).
        in_chans: input channels (3: RGB converted to luminance; 1: grayscale).
        C: the SVM's regularisation constant.
    """

    gradcam_layer = None  # SRM co-occurrence features: no spatial map

    def __init__(self, num_classes: int = 1, in_chans: int = 3, C: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.C = C
        self.num_features = self.head_hidden_size = FEATURE_DIM
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_scale", torch.ones(FEATURE_DIM))
        self.register_buffer("fitted", torch.tensor(False))
        self.fc = nn.Linear(FEATURE_DIM, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    # -- the head contract -------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in pixel units 0..255 -> (B, 1,495) features (no gradient)."""
        with torch.no_grad():
            if x.shape[1] == 3:
                gray = torch.einsum("bchw,c->bhw", x.float(), torch.tensor(LUMA, device=x.device))
            else:
                gray = x.float().mean(dim=1)
            feats = srm_features(torch.round(gray).cpu().numpy())
        return torch.from_numpy(feats).to(x.device)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features -> logits (see the class docstring), or the standardised features if ``pre_logits``."""
        x = (x - self.feature_mean) / self.feature_scale
        if pre_logits:
            return x
        out = self.fc(x)
        return F.logsigmoid(out) if self.num_classes >= 3 else out

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear head with an unfitted one of ``num_classes`` outputs (0: none)."""
        super().reset_classifier(num_classes)
        self.fitted.fill_(False)

    def init_classifier(self, fc: nn.Linear) -> None:
        nn.init.zeros_(fc.weight)
        nn.init.zeros_(fc.bias)

    # -- fitting and prediction ----------------------------------------------------------
    @staticmethod
    def extract_features(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """See :func:`extract_features`."""
        return extract_features(images)

    def _check_features(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != FEATURE_DIM:
            raise ForensicsError(f"steganalysis: expected (N, {FEATURE_DIM}) features, got shape {x.shape}")
        return x

    def fit(self, features: np.ndarray, targets: np.ndarray, cv: int = 3, groups: np.ndarray | None = None,
            balance: str = "none") -> SteganalysisSVM:
        """Fit the standardisation, the linear SVM and its Platt scaling; fold them into the head.

        Args:
            features: (N, 1,495) from :func:`extract_features`.
            targets: (N,) integer labels: 0 real / 1 fake for ``num_classes`` 1 or 2, else
                0..K-1.
            cv: folds of the Platt-scaling cross-validation (lowered to the smallest class size,
                in videos when ``groups`` are given).
            groups: (N,) the video of each sample. The calibration folds then keep a video's
                frames together: frames of one video are near-duplicates, so a fold that
                scores frames whose siblings the SVM was fitted on calibrates on scores far
                more confident than those of unseen videos.
            balance: ``data.balance``: ``loss_weight`` or ``sampler`` weight every sample by
                its inverse class frequency, in the SVM and in the Platt scaling (an SVM sees
                the whole training set at once, so equal class draws come to the same
                weights); ``none`` weighs every sample alike.
        """
        from sklearn.calibration import CalibratedClassifierCV  # local: sklearn is slow to import
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        if self.num_classes < 1:
            raise ForensicsError("steganalysis: a features-only model (num_classes=0) has no classifier to fit")
        x = self._check_features(features)
        y = np.asarray(targets).reshape(-1).astype(np.int64)
        if len(y) != len(x):
            raise ForensicsError(f"steganalysis: {len(x)} feature rows but {len(y)} targets")
        n_classes = max(self.num_classes, 2)
        counts = np.bincount(y, minlength=n_classes) if len(y) and y.min() >= 0 else None
        if counts is None or len(counts) != n_classes or counts.min() < 2:
            raise ForensicsError(f"steganalysis: fitting needs at least 2 samples of each class 0..{n_classes - 1}, "
                                 f"got counts {None if counts is None else counts.tolist()}")
        scaler = StandardScaler().fit(x)
        z = scaler.transform(x)
        # random_state: liblinear's dual solver shuffles; a fixed seed makes fits reproducible.
        svm = LinearSVC(C=self.C, dual="auto", max_iter=10_000, random_state=0)
        calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=calibration_folds(y, groups, cv, counts),
                                            ensemble=False)
        calibrated.fit(z, y, sample_weight=class_balance_weights(y, balance, n_classes))
        fitted = calibrated.calibrated_classifiers_[0]
        coef, intercept = fitted.estimator.coef_, fitted.estimator.intercept_
        a = np.array([c.a_ for c in fitted.calibrators])
        b = np.array([c.b_ for c in fitted.calibrators])
        # scikit-learn's Platt scaling is p = sigmoid(-(a * f + b)) with f = w.z + c: linear in z.
        weight = -a[:, None] * coef
        bias = -(a * intercept + b)
        if self.num_classes == 2:  # softmax([0, l]) = sigmoid(l)
            weight = np.concatenate([np.zeros_like(weight), weight])
            bias = np.concatenate([np.zeros_like(bias), bias])
        with torch.no_grad():
            self.feature_mean.copy_(torch.from_numpy(scaler.mean_))
            self.feature_scale.copy_(torch.from_numpy(scaler.scale_))
            self.fc.weight.copy_(torch.from_numpy(weight))
            self.fc.bias.copy_(torch.from_numpy(bias))
            self.fitted.fill_(True)
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """(N, 1,495) features -> (N, num_classes) outputs of :meth:`forward_head`."""
        if not bool(self.fitted):
            raise ForensicsError("steganalysis: the SVM is not fitted yet (call fit)")
        x = torch.from_numpy(self._check_features(features).astype(np.float32)).to(self.feature_mean.device)
        with torch.no_grad():
            return self.forward_head(x).cpu().numpy()

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, 1,495) features -> (N, n_classes) calibrated probabilities (binary: columns real, fake)."""
        out = self.decision_function(features)
        if self.num_classes == 1:
            p = 1.0 / (1.0 + np.exp(-out[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        out = out - out.max(axis=1, keepdims=True)
        e = np.exp(out)
        return e / e.sum(axis=1, keepdims=True)

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (``.npz``, no pickled objects), atomically."""
        meta = {"num_classes": self.num_classes, "in_chans": self.in_chans, "C": self.C,
                "feature_dim": FEATURE_DIM, "fitted": bool(self.fitted),
                "img_size": getattr(self, "pretrained_cfg", {}).get("input_size", (0, 224, 224))[-1]}
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta)),
                                  "feature_mean": self.feature_mean.cpu().numpy(),
                                  "feature_scale": self.feature_scale.cpu().numpy()}
        if self.num_classes > 0:
            arrays["weight"] = self.fc.weight.detach().cpu().numpy()
            arrays["bias"] = self.fc.bias.detach().cpu().numpy()
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SteganalysisSVM:
        """Read a model written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError) as error:
            raise ForensicsError(f"{path}: not a saved steganalysis model: {error}") from None
        if meta.get("feature_dim") != FEATURE_DIM:
            raise ForensicsError(f"{path}: saved with {meta.get('feature_dim')} features, "
                                 f"this version has {FEATURE_DIM}")
        model = steganalysis(num_classes=meta["num_classes"], in_chans=meta["in_chans"],
                             img_size=meta["img_size"], C=meta["C"])
        with torch.no_grad():
            model.feature_mean.copy_(torch.from_numpy(arrays["feature_mean"]))
            model.feature_scale.copy_(torch.from_numpy(arrays["feature_scale"]))
            if model.num_classes > 0:
                model.fc.weight.copy_(torch.from_numpy(arrays["weight"]))
                model.fc.bias.copy_(torch.from_numpy(arrays["bias"]))
            model.fitted.fill_(meta["fitted"])
        return model


BALANCE = ("loss_weight", "sampler", "none")


def class_balance_weights(y: np.ndarray, balance: str, n_classes: int) -> np.ndarray | None:
    """Per-sample weights for ``data.balance``: inverse class frequency (``n / (K * count)``), or ``None``."""
    if balance not in BALANCE:
        raise ForensicsError(f"steganalysis: balance must be one of {', '.join(BALANCE)}, got '{balance}'")
    if balance == "none":
        return None
    counts = np.bincount(y, minlength=n_classes)
    return (len(y) / (n_classes * counts))[y]


def calibration_folds(y: np.ndarray, groups: np.ndarray | None, cv: int, counts: np.ndarray):
    """The Platt-scaling folds: stratified by class and, with ``groups``, never splitting a group.

    Returns a fold count (no groups: scikit-learn's stratified folds of samples) or a list of
    ``(train, test)`` index pairs from ``StratifiedGroupKFold``.
    """
    if groups is None:
        return int(min(cv, counts.min()))
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ForensicsError(f"steganalysis: {len(groups)} groups for {len(y)} samples")
    per_class = [len(np.unique(groups[y == c])) for c in range(len(counts))]
    folds = int(min(cv, *per_class))
    if folds < 2:
        raise ForensicsError(f"steganalysis: calibration by video needs at least 2 videos of each class, "
                             f"got {per_class}")
    return list(StratifiedGroupKFold(n_splits=folds).split(np.zeros(len(y)), y, groups))


@register_model
def steganalysis(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
                 in_chans: int = 3, img_size: int = 224, C: float = 1.0, drop_rate: float | None = None,
                 task: str | None = None) -> SteganalysisSVM:
    """SRM-subset features + linear SVM. Binary and multi-class; not multi-label (the
    one-vs-rest SVM with Platt scaling takes one class per sample). ``drop_rate`` exists only
    to refuse it clearly: an SVM has no dropout."""
    check_request("steganalysis", pretrained=pretrained, pretrained_file=pretrained_file, task=task,
                  supported=("binary", "multiclass"))
    if drop_rate is not None:
        raise ForensicsError("model 'steganalysis': drop_rate does not apply to an SVM; leave model.drop_rate unset")
    model = SteganalysisSVM(num_classes=num_classes, in_chans=in_chans, C=C)
    model.pretrained_cfg = default_cfg(
        "steganalysis", in_chans=in_chans, img_size=img_size, mean=PIXEL_MEAN, std=PIXEL_STD, paper=PAPER,
        num_classes=num_classes, classifier="fc", first_conv=None)
    model.default_cfg = model.pretrained_cfg
    return model
