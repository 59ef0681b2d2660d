"""Steganalysis features + SVM: the SRM subset's invariances, the fitted SVM folded into the head."""

import numpy as np
import pytest
import torch

from baselines.steganalysis import FEATURE_DIM, SUBMODELS, extract_features, srm_features
from forensics.errors import ForensicsError
from forensics.models import create_model


def images(n, seed, noisy):
    """Smooth random images; ``noisy`` ones get extra high-frequency noise (the 'fakes')."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 210, (n, 9, 9, 3))
    smooth = np.kron(coarse, np.ones((1, 8, 8, 1)))[:, :64, :64]
    smooth = smooth + rng.normal(0, 1.0, smooth.shape)
    if noisy:
        smooth = smooth + rng.normal(0, 4.0, smooth.shape)
    return np.clip(np.rint(smooth), 0, 255).astype(np.uint8)


def test_submodel_layout_and_normalisation():
    assert FEATURE_DIM == 1495 == 5 * 169 + 2 * 325 == sum(SUBMODELS.values())
    features = extract_features(images(3, 0, noisy=False))
    assert features.shape == (3, FEATURE_DIM) and features.dtype == np.float32
    start = 0
    for dim in SUBMODELS.values():
        np.testing.assert_allclose(features[:, start:start + dim].sum(axis=1), 1.0, rtol=1e-5)
        start += dim


def test_symmetries_of_the_rich_model():
    gray = np.random.default_rng(1).integers(0, 256, (2, 40, 37)).astype(np.float32)
    features = srm_features(gray)
    np.testing.assert_allclose(srm_features(255 - gray), features, atol=1e-6)            # sign symmetry
    np.testing.assert_allclose(srm_features(gray.transpose(0, 2, 1)), features, atol=1e-6)  # h/v merged


def test_flat_image_puts_all_mass_on_the_zero_pattern():
    features = srm_features(np.full((1, 16, 16), 80.0, dtype=np.float32))
    assert np.count_nonzero(features) == len(SUBMODELS)


def test_images_of_different_sizes_and_gray_inputs():
    a, b = images(1, 2, noisy=False)[0], images(1, 3, noisy=True)[0][:50, :60]
    assert extract_features([a, b]).shape == (2, FEATURE_DIM)
    assert extract_features(a[None, :, :, 0]).shape == (1, FEATURE_DIM)
    with pytest.raises(ForensicsError):
        extract_features(np.zeros((1, 4, 4)))


@pytest.fixture(scope="module")
def data():
    x = np.concatenate([images(30, 10, False), images(30, 11, True)])
    y = np.array([0] * 30 + [1] * 30)
    return x, extract_features(x), y


def test_fitted_svm_separates_and_matches_scikit_learn(data, tmp_path):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    pixels, features, y = data
    train = np.arange(len(y)) % 3 != 0
    model = create_model("steganalysis").fit(features[train], y[train])
    proba = model.predict_proba(features[~train])
    assert roc_auc_score(y[~train], proba[:, 1]) >= 0.9

    reference = make_pipeline(StandardScaler(), CalibratedClassifierCV(
        LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=0), method="sigmoid", cv=3, ensemble=False))
    reference.fit(features[train], y[train])
    np.testing.assert_allclose(proba, reference.predict_proba(features[~train]), atol=1e-4)

    # The nn.Module path (NCHW pixels 0..255, as the transforms feed it) gives the same probabilities.
    batch = torch.from_numpy(pixels[~train]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        np.testing.assert_allclose(torch.sigmoid(model(batch))[:, 0].numpy(), proba[:, 1], atol=1e-4)

    model.save(tmp_path / "svm.npz")
    loaded = type(model).load(tmp_path / "svm.npz")
    np.testing.assert_allclose(loaded.predict_proba(features[~train]), proba, atol=1e-6)


def test_multiclass_fit_softmax_equals_predict_proba(data):
    _, features, y = data
    y3 = np.where(y == 1, 1 + (np.arange(len(y)) % 2), 0)
    model = create_model("steganalysis", num_classes=3, task="multiclass").fit(features, y3)
    proba = model.predict_proba(features)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    logits = torch.from_numpy(model.decision_function(features))
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), proba, atol=1e-6)


def test_bad_fits_are_refused(data, tmp_path):
    _, features, y = data
    model = create_model("steganalysis")
    with pytest.raises(ForensicsError, match="not fitted"):
        model.predict_proba(features)
    with pytest.raises(ForensicsError, match="each class"):
        model.fit(features, np.zeros_like(y))
    with pytest.raises(ForensicsError, match="features"):
        model.fit(features[:, :10], y)
    with pytest.raises(ForensicsError, match="drop_rate"):
        create_model("steganalysis", drop_rate=0.5)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ForensicsError, match="not a saved steganalysis model"):
        type(model).load(tmp_path / "junk.npz")


def videos(n_videos: int, frames: int, seed: int, noisy: bool):
    """Frames of ``n_videos`` videos: each video one image, its frames near-duplicates of it."""
    rng = np.random.default_rng(seed)
    first = images(n_videos, seed, noisy).astype(np.float64)
    stack = np.repeat(first, frames, axis=0) + rng.normal(0, 0.6, (n_videos * frames,) + first.shape[1:])
    return np.clip(np.rint(stack), 0, 255).astype(np.uint8), np.repeat(np.arange(n_videos), frames)


@pytest.fixture(scope="module")
def video_data():
    """5 real and 15 fake videos of 4 frames: FaceForensics++'s imbalance, its near-duplicate frames."""
    real, real_ids = videos(5, 4, 20, noisy=False)
    fake, fake_ids = videos(15, 4, 21, noisy=True)
    features = extract_features(np.concatenate([real, fake]))
    y = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    return features, y, np.r_[real_ids, 100 + fake_ids]


def reference_svm(features, y, cv, sample_weight=None):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    z = StandardScaler().fit_transform(features)
    svm = LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=0)
    return CalibratedClassifierCV(svm, method="sigmoid", cv=cv, ensemble=False).fit(z, y, sample_weight=sample_weight), z


def test_calibration_folds_keep_each_video_together(video_data):
    from sklearn.model_selection import StratifiedGroupKFold

    from baselines.steganalysis import calibration_folds

    features, y, groups = video_data
    folds = calibration_folds(y, groups, 3, np.bincount(y))
    assert len(folds) == 3
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test]) and set(y[test]) == {0, 1}
    model = create_model("steganalysis").fit(features, y, groups=groups)
    by_video, z = reference_svm(features, y, list(StratifiedGroupKFold(3).split(features, y, groups)))
    np.testing.assert_allclose(model.predict_proba(features), by_video.predict_proba(z), atol=1e-4)
    by_frame, _ = reference_svm(features, y, 3)  # what fit did before: a video's frames in both folds
    assert np.abs(model.predict_proba(features) - by_frame.predict_proba(z)).max() > 3e-4
    with pytest.raises(ForensicsError, match="2 videos of each class"):
        create_model("steganalysis").fit(features, y, groups=np.where(y == 0, 0, groups))


def test_balance_weights_the_svm_and_its_calibration(video_data):
    from baselines.steganalysis import class_balance_weights

    features, y, groups = video_data
    np.testing.assert_allclose(class_balance_weights(np.array([0, 1, 1, 1]), "loss_weight", 2), [2, 2 / 3, 2 / 3, 2 / 3])
    assert class_balance_weights(y, "none", 2) is None
    weights = class_balance_weights(y, "sampler", 2)
    assert weights[y == 0].sum() == pytest.approx(weights[y == 1].sum())

    balanced = create_model("steganalysis").fit(features, y, balance="loss_weight")
    reference, z = reference_svm(features, y, 3, sample_weight=weights)
    np.testing.assert_allclose(balanced.predict_proba(features), reference.predict_proba(z), atol=1e-4)
    plain = create_model("steganalysis").fit(features, y, balance="none")
    assert np.abs(balanced.predict_proba(features) - plain.predict_proba(features)).max() > 1e-3
    with pytest.raises(ForensicsError, match="balance must be one of"):
        create_model("steganalysis").fit(features, y, balance="oversample")
