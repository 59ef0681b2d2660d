"""Pixels in, faces out: video decoding and encoding (:mod:`~forensics.media.video`), the face
detector (:mod:`~forensics.media.faces`), the crop rule (:mod:`~forensics.media.crops`) and
frame sampling (:mod:`~forensics.media.sampling`). Depends on the foundation only."""
