"""Learning: the run schema, the run session, one epoch (:mod:`~forensics.training.engine`),
the epoch loop (:mod:`~forensics.training.loop`), optimisation, tasks, metrics, checkpoints
and run logging (:mod:`~forensics.training.runlog`). Depends on the layers below it."""
