"""Shot cuts from colour histograms, and tracks that end at a cut."""

import numpy as np

from forensics.media.faces import track_faces
from forensics.media.shots import frame_signature, shot_distance, shot_starts


def _frame(colour, offset=0):
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:] = colour
    frame[40:80, 60 + offset:100 + offset] = (220, 180, 150)  # a "face" that moves a little
    return frame


def test_a_cut_is_a_colour_change_of_the_whole_frame_not_motion():
    blue, green = (30, 40, 140), (40, 150, 50)
    signatures = {i: frame_signature(_frame(blue, offset=2 * i)) for i in range(0, 10, 3)}
    signatures.update({i: frame_signature(_frame(green, offset=2 * i)) for i in range(10, 20, 3)})
    assert shot_starts(signatures) == [10]
    assert shot_distance(signatures[0], signatures[9]) < 0.1 < 0.9 < shot_distance(signatures[9], signatures[10])
    assert shot_starts({0: signatures[0]}) == [] and shot_starts({}) == []


def test_no_track_continues_across_a_cut():
    box = np.array([[60.0, 40.0, 100.0, 80.0, 0.99]])
    moved = box + [[4.0, 0.0, 4.0, 0.0, 0.0]]  # the same place and size after the cut: another person
    detections = {0: box, 5: box, 10: moved, 15: moved, 20: moved}
    assert len(track_faces(detections)) == 1  # what a position-only tracker does
    tracks = track_faces(detections, cuts=[10])
    assert [sorted(t.boxes) for t in tracks] == [[10, 15, 20], [0, 5]]
    # A cut between two sampled frames (at a frame that was not sampled) ends tracks too.
    assert [sorted(t.boxes) for t in track_faces(detections, cuts=[7])] == [[10, 15, 20], [0, 5]]
