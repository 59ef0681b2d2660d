"""Lineage of a run: which crops its numbers came from, in ``report.json`` and in W&B.

:func:`log_dataset` digests the run's manifest and crops (:mod:`forensics.data.digest`),
compares the digest with the one ``forensics preprocess`` wrote into ``summary.json`` (so a
crop changed since preprocessing is noticed), and, when W&B is on, declares the manifest as
the run's input: a ``dataset`` artifact holding a *reference* to the manifest file (nothing is
uploaded, least of all the crops) with the digest as metadata. The model artifact the run logs
at the end (``wandb.log_checkpoint``) is then linked to it in W&B's lineage graph, and carries
the digest too (:meth:`forensics.training.runlog.RunLogger.log_artifact`). W&B cannot use an
artifact offline: an offline run has the digest in its summary (``data/digest``) only.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from forensics.data.digest import manifest_digest

log = logging.getLogger(__name__)


def preprocess_summary(manifest: Path) -> dict[str, Any] | None:
    """The ``summary.json`` written beside ``manifest`` by ``forensics preprocess``, if any."""
    name = manifest.name.replace("manifest", "summary", 1).removesuffix(".csv") + ".json"
    path = manifest.parent / name
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def data_lineage(manifest: str | os.PathLike) -> dict[str, Any]:
    """The manifest (absolute path), its digest now, and whether preprocessing wrote the same one.

    ``matches_preprocess`` is ``None`` when there is no ``summary.json`` with a digest (a
    manifest made by hand or by another command), ``False`` when crops or manifest changed
    since ``forensics preprocess`` wrote it.
    """
    manifest = Path(manifest).resolve()
    lineage = {"manifest": str(manifest), **manifest_digest(manifest)}
    recorded = ((preprocess_summary(manifest) or {}).get("lineage") or {}).get("digest")
    lineage["matches_preprocess"] = None if recorded is None else recorded == lineage["digest"]
    if lineage["matches_preprocess"] is False:
        log.warning("%s: the crops or the manifest changed since forensics preprocess wrote it "
                    "(digest %s, summary.json says %s)", manifest, lineage["digest"][:19], recorded[:19])
    if lineage["missing"]:
        log.warning("%s: %d of %d crops listed are missing", manifest, lineage["missing"], lineage["files"])
    return lineage


def artifact_name(manifest: Path) -> str:
    """A W&B artifact name for a manifest: its folder and file name (W&B versions by content)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"data-{manifest.parent.name}-{manifest.stem}")[:120]


def log_dataset(logger, manifest: str | os.PathLike) -> dict[str, Any] | None:
    """Digest ``manifest`` and declare it the input of ``logger``'s W&B run (on rank 0).

    Returns the lineage record for ``report.json``; ``None`` on ranks that don't log.
    """
    if not logger.enabled:
        return None
    lineage = data_lineage(manifest)
    logger.lineage = lineage
    # In the summary in every mode: the runs table can show and filter by the data's digest.
    logger.summary({"data/digest": lineage["digest"], "data/files": lineage["files"]})
    if logger.run is not None and logger.run.offline:
        log.info("W&B offline: the dataset artifact can only be declared online (the digest is in the summary)")
    elif logger.run is not None:
        import wandb

        path = Path(lineage["manifest"])
        artifact = wandb.Artifact(artifact_name(path), type="dataset", metadata=lineage,
                                  description="crop manifest (by reference: crops are not uploaded)")
        artifact.add_reference(path.as_uri(), name=path.name)
        logger.run.use_artifact(artifact)
    return lineage
