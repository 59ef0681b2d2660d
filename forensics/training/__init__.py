"""Learning: the run schema, the run session, one epoch (:mod:`~forensics.training.engine`),
the epoch loop (:mod:`~forensics.training.loop`), optimisation, tasks, metrics, checkpoints,
run logging (:mod:`~forensics.training.runlog`) and the scoring of a checkpoint
(:mod:`~forensics.training.evaluation`). Depends on the layers below it."""
