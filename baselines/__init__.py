"""The FaceForensics++ baseline detectors (Rössler et al., ICCV 2019).

Importing this package registers every baseline into the ``forensics`` model registry;
``forensics.models.create_model`` imports it through the ``forensics.models`` entry point.

=================  ==========================================  ===================
name               module                                      input
=================  ==========================================  ===================
``meso4``          :mod:`baselines.mesonet` (Afchar 2018)      3x256x256, 0..1
``mesoinception4`` :mod:`baselines.mesonet`                    3x256x256, 0..1
``bayar``          :mod:`baselines.bayar` (Bayar & Stamm 2016) 3x224x224, 0..255
``rahmouni``       :mod:`baselines.rahmouni` (Rahmouni 2017)   3x224x224, 0..1
``cozzolino``      :mod:`baselines.cozzolino` (Cozzolino 2017) 3x224x224, 0..255
``steganalysis``   :mod:`baselines.steganalysis` (SRM + SVM)   3x224x224, 0..255
=================  ==========================================  ===================

XceptionNet, the sixth FaceForensics++ detector, is timm's ``legacy_xception`` (299x299),
built by the same factory under its timm name. See ``docs/baselines.md``.
"""

from baselines import bayar, cozzolino, mesonet, rahmouni, steganalysis  # noqa: F401  (registers the models)

#: The registered baseline names, in the FaceForensics++ table's order.
BASELINES: tuple[str, ...] = ("steganalysis", "cozzolino", "bayar", "rahmouni", "meso4", "mesoinception4")
