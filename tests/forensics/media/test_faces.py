"""Face detection (our MTCNN cascade = facenet-pytorch's boxes) and subject tracking."""

import math

import numpy as np
import pytest

from forensics.media.faces import (FACTOR, TOP_SCALE, FaceDetector, box_distance, box_iou, pyramid_scales,
                             subject_boxes, track_faces)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # 512x512, one face at about (181, 62, 268, 172)


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FaceDetector()


def test_pyramid_starts_on_facenets_own_levels_chosen_from_the_resolution():
    for h, w, k in [(480, 640, 3), (1080, 1920, 5), (240, 320, 1)]:
        scales = pyramid_scales(h, w)
        assert scales[0] == pytest.approx(TOP_SCALE * FACTOR ** k)
        assert 12 / scales[0] <= max(20, h / 8) + 1e-6  # finds faces of 1/8 of the short side
        assert min(h, w) * scales[-1] >= 12 and min(h, w) * scales[-1] * FACTOR < 12
    assert pyramid_scales(480, 640, min_face_size=20)[0] == pytest.approx(TOP_SCALE)  # facenet's default


def test_boxes_equal_facenet_mtcnn(astronaut, detector):
    from facenet_pytorch import MTCNN

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 64:576] = astronaut[16:496]
    blank = np.full_like(frame, 90)
    ours = detector.detect([frame, blank])
    # facenet-pytorch with the minimum face size whose pyramid our levels are.
    reference = MTCNN(keep_all=True, min_face_size=12 / pyramid_scales(480, 640)[0] * (1 - 1e-9))
    boxes, probs = reference.detect(frame)
    assert len(ours[0]) == 1 and len(ours[1]) == 0
    np.testing.assert_allclose(ours[0][0, :4], np.asarray(boxes, float)[0], atol=0.01)
    assert ours[0][0, 4] == pytest.approx(float(np.asarray(probs, float)[0]), abs=1e-4)
    x0, y0, x1, y1 = ours[0][0, :4]
    assert box_iou(ours[0][0], (181 + 64, 62 - 16, 268 + 64, 172 - 16)) > 0.7


def test_batches_equal_single_frames_and_weak_faces_are_dropped(astronaut, detector):
    frames = [astronaut, astronaut[:, ::-1].copy(), np.roll(astronaut, 40, axis=1)]
    batched = detector.detect(frames)
    for frame, dets in zip(frames, batched):
        np.testing.assert_allclose(detector.detect([frame])[0], dets, atol=1e-3)
    strict = FaceDetector(min_score=1.0 - 1e-12)
    assert all(len(d) == 0 for d in strict.detect(frames[:1]))


def _box(cx, cy, size, score=0.99):
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, score])


def test_tracking_keeps_the_subject_when_a_larger_face_passes_by():
    detections = {}
    for t in range(10):
        subject = _box(100 + 8 * t, 120, 80)  # moves right, 10% of its size per frame
        faces = [subject]
        if 4 <= t <= 6:  # a larger face crosses on the right for three frames
            faces.insert(0, _box(260, 110, 120))
        detections[t] = np.stack(faces)
    tracks = track_faces(detections)
    assert len(tracks) == 2
    assert sorted(tracks[0].boxes) == list(range(10))
    assert sorted(tracks[1].boxes) == [4, 5, 6]
    subject = subject_boxes(detections)
    assert all(box_distance(subject[t], _box(100 + 8 * t, 120, 80)) < 1e-9 for t in range(10))


def test_sparse_frames_still_link_one_person_and_extra_columns_survive():
    # 32 frames of a long video are far apart: the face moves half its size between them.
    detections = {t * 300: np.array([[*_box(100 + 40 * t, 100, 80), t]]) for t in range(5)}
    tracks = track_faces(detections)
    assert len(tracks) == 1 and len(tracks[0].boxes) == 5
    assert [int(d[5]) for _, d in sorted(tracks[0].boxes.items())] == list(range(5))
    assert track_faces({}) == [] and subject_boxes({0: np.zeros((0, 5))}) == {}


def test_box_geometry():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_distance((0, 0, 10, 10), (10, 0, 20, 10)) == pytest.approx(1.0)
    assert math.isinf(box_distance((0, 0, 0, 0), (0, 0, 0, 0)))


def test_landmarks_equal_facenet_mtcnn_and_leave_boxes_unchanged(astronaut, detector):
    from facenet_pytorch import MTCNN

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 64:576] = astronaut[16:496]
    with_points = detector.detect([frame], landmarks=True)[0]
    assert with_points.shape == (1, 15)
    np.testing.assert_array_equal(with_points[:, :5], detector.detect([frame])[0])
    reference = MTCNN(keep_all=True, min_face_size=12 / pyramid_scales(480, 640)[0] * (1 - 1e-9))
    _, _, points = reference.detect(frame, landmarks=True)
    np.testing.assert_allclose(with_points[0, 5:].reshape(5, 2), np.asarray(points[0], float), atol=0.01)
    left_eye, right_eye, nose, mouth_left, mouth_right = with_points[0, 5:].reshape(5, 2)
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image left/right
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert detector.detect([np.full_like(frame, 90)], landmarks=True)[0].shape == (0, 15)
