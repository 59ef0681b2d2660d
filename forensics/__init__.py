"""forensics: a research codebase for face forgery detection.

The core package: configs, the crop manifest, datasets, the model registry, the training
engine, metrics, W&B logging, distributed helpers and the command line. The sibling packages
``preprocessing``, ``baselines`` and ``refiner`` build on it.
"""

__version__ = "0.1.0"
