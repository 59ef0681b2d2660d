"""Facial keypoint regression: the second task of the codebase (``task: keypoints``).

A face image (1x96x96 grayscale in the Kaggle Facial Keypoints Detection data) goes in, K
``(x, y)`` keypoints in pixels come out. It trains and evaluates through the same
``forensics train`` / ``forensics evaluate`` commands, engine, configs, checkpoints and W&B
logging as the forgery detectors; this package holds only what is specific to keypoints:

* :mod:`~keypoints.table`: keypoint names, the left/right pairs a mirror swaps, the
  in-memory table of images and keypoints, and its checks (missing, outside the image);
* :mod:`~keypoints.kaggle`: reading and writing the Kaggle CSV format;
* :mod:`~keypoints.data`: the config section, the train/val/test tables of a
  Kaggle CSV or of a crop manifest with keypoint columns, and the dataset;
* :mod:`~keypoints.transforms`: keypoint-aware augmentation (torchvision v2);
* :mod:`~keypoints.task`: the regression task (masked MSE) and its metric; it registers the
  task (``forensics.tasks`` entry point) with its config section and hooks;
* :mod:`~keypoints.coords`: pixel and normalised coordinates;
* :mod:`~keypoints.training`: what ``forensics train`` asks the task for (data, checks, figures);
* :mod:`~keypoints.config`: the ``keypoints`` config section;
* :mod:`~keypoints.models`: a small CNN of our own and the ``dummy`` floor;
* :mod:`~keypoints.plot`: faces with true and predicted keypoints, PNG and W&B;
* :mod:`~keypoints.synth`: a labelled test set rendered from the synthetic faces
  (``forensics keypoints-synth``);
* :mod:`~keypoints.evaluate`: ``forensics evaluate`` for a keypoint checkpoint.

See ``docs/keypoints.md``.
"""
