"""What the shot-cut test costs beside face detection, on the same frames.

Preprocessing computes a colour histogram of every sampled frame
(:func:`forensics.media.shots.frame_signature`) to end face tracks at shot cuts. This
measures, in one process on one thread, milliseconds per frame of that signature and of
MTCNN detection (:class:`forensics.media.faces.FaceDetector`) on the same frames, and prints
their ratio.

Usage::

    python benchmarks/shots.py                    # scikit-image's astronaut, 640x480, 64 frames
    python benchmarks/shots.py --video clip.mp4   # the first 64 frames of a video
"""

from __future__ import annotations

import argparse
import time


def frames_from(video: str | None, count: int, size: tuple[int, int]) -> list:
    """``count`` RGB frames: a video's first ones, or the astronaut shifted a little each frame."""
    import cv2
    import numpy as np

    if video:
        from forensics.media.video import read_frames

        return [f for _, f in read_frames(video, range(count))]
    from skimage import data

    base = cv2.resize(data.astronaut(), size)
    return [np.ascontiguousarray(np.roll(base, 2 * i, axis=1)) for i in range(count)]


def per_frame_ms(fn, frames, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(frames)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", help="a video file (default: generated frames)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    args = parser.parse_args()

    import cv2
    import torch

    from forensics.media.faces import FaceDetector
    from forensics.media.shots import frame_signature, shot_starts

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames = frames_from(args.video, args.frames, tuple(args.size))
    detector = FaceDetector()
    signature = per_frame_ms(lambda fs: shot_starts({i: frame_signature(f) for i, f in enumerate(fs)}), frames)
    detect = per_frame_ms(lambda fs: detector.detect(fs), frames, repeat=1)
    h, w = frames[0].shape[:2]
    print(f"{len(frames)} frames of {w}x{h}, one thread")
    print(f"shot-cut test (signature + comparison): {signature:.3f} ms/frame")
    print(f"MTCNN detection:                        {detect:.2f} ms/frame")
    print(f"ratio: the cut test costs {100 * signature / detect:.2f}% of detection")


if __name__ == "__main__":
    main()
