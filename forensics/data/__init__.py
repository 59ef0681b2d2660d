"""Crops in, batches out: the crop manifest (:mod:`~forensics.data.manifest`), datasets and
samplers (:mod:`~forensics.data.datasets`) and augmentation (:mod:`~forensics.data.transforms`).
Depends on the foundation and :mod:`forensics.media`."""
