"""Pretrained ImageNet weights of timm models, on clusters whose compute nodes have no internet.

timm fetches a model's weights from the Hugging Face Hub (``hf_hub_id``) into the HF cache
(``$HF_HOME/hub``), or, for older models, from a URL into torch's hub cache
(``$TORCH_HOME/hub/checkpoints``). Two workflows then work offline:

* a local file: ``model.pretrained_file=/path/to/weights.pth`` (or ``.safetensors``);
* the caches, filled on a machine with internet (a login node) by ``forensics weights NAME...``
  and read on the compute node with ``HF_HUB_OFFLINE=1`` (same ``HF_HOME``/``TORCH_HOME``).

Without either, :func:`require_weights` says so in one line *before* timm tries: the Hub
client retries an unreachable server for about a minute per file, then raises an error that
names neither workflow.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

#: Files timm looks for in a model's Hub repository, in its order of preference.
HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def offline_hint(name: str) -> str:
    """The two ways to get ``name``'s weights onto a machine without internet."""
    return (f"give a local file (model.pretrained_file=PATH), or fill the cache on a machine with internet "
            f"(`forensics weights {name}`) and run here with HF_HUB_OFFLINE=1 and the same HF_HOME")


def _source(name: str) -> tuple[str, str, str | None]:
    """``("hub", repo_id, filename)``, ``("url", url, None)`` or ``("none", "", None)`` as timm would load."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return "none", "", None
    if cfg.hf_hub_id:
        return "hub", cfg.hf_hub_id, cfg.hf_hub_filename
    if cfg.url:
        return "url", cfg.url, None
    return "none", "", None


def cached_weights(name: str) -> Path | None:
    """The cached weights file timm would load for ``name``, or ``None`` if not cached."""
    kind, location, filename = _source(name)
    if kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        for candidate in ((filename,) if filename else HUB_FILES):
            path = try_to_load_from_cache(location, candidate)
            if isinstance(path, str):
                return Path(path)
    elif kind == "url":
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(location).path)
        if path.is_file():
            return path
    return None


def _unreachable(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url``'s server can't be reached (one TCP connection attempt), or ``None`` if it can."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{parsed.hostname}:{port}: {error.strerror or error}"
    return None


def require_weights(name: str) -> None:
    """Stop with one line when ``name``'s pretrained weights are neither cached nor downloadable.

    Raises:
        ForensicsError: not cached, and offline mode is on or the server does not answer.
    """
    if cached_weights(name) is not None:
        return
    kind, location, _ = _source(name)
    if kind == "none":
        return  # timm says itself that there are no pretrained weights
    if kind == "hub":
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise ForensicsError(f"model '{name}': pretrained weights ({location}) are not in the Hugging Face "
                                 f"cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: {offline_hint(name)}")
        location = f"{constants.ENDPOINT}/{location}"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return  # a direct connection says nothing about the proxy's: let timm try
    reason = _unreachable(location)
    if reason is not None:
        raise ForensicsError(f"model '{name}': pretrained weights not cached and cannot be downloaded ({reason}); "
                             f"{offline_hint(name)}")


def download_error(name: str, error: Exception) -> ForensicsError:
    """timm's download failure as one line that names both offline workflows."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ForensicsError(f"model '{name}': pretrained weights could not be downloaded "
                          f"({type(error).__name__}: {first}); {offline_hint(name)}")


def first_mismatch(error: Exception) -> str:
    """The first tensor PyTorch's strict ``load_state_dict`` complained about, in a few words.

    ``Error(s) in loading state_dict for X:`` alone says nothing; the lines below it name the
    tensors: ``size mismatch for conv.weight: copying a param with shape torch.Size([8, 3])
    from checkpoint, the shape in current model is torch.Size([16, 3]).``, ``Missing key(s)
    in state_dict: "a", "b".`` or ``Unexpected key(s) in state_dict: ...``.
    """
    import re

    text = str(error)
    found = []
    size = re.search(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                     r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)", text)
    if size:
        found.append((size.start(), f"tensor {size[1]} has shape {size[2]} in the file, {size[3]} in the model"))
    missing = re.search(r'Missing key\(s\) in state_dict: "([^"]+)"', text)
    if missing:
        found.append((missing.start(), f"tensor {missing[1]} is missing from the file"))
    unexpected = re.search(r'Unexpected key\(s\) in state_dict: "([^"]+)"', text)
    if unexpected:
        found.append((unexpected.start(), f"the file has tensor {unexpected[1]}, which the model has not"))
    if found:
        return min(found)[1]  # in PyTorch's order: missing, unexpected, then shapes
    return (text.strip().splitlines() or [type(error).__name__])[0]


def download(name: str) -> Path:
    """Fetch ``name``'s pretrained weights into timm's cache (through timm itself); their path.

    Raises:
        ForensicsError: not a timm model, one without pretrained weights, or no network.
    """
    import timm

    if not timm.is_model(name):
        raise ForensicsError(f"'{name}' is not a timm model (our own models have no pretrained weights to fetch)")
    if _source(name)[0] == "none":
        raise ForensicsError(f"timm model '{name}' has no pretrained weights")
    require_weights(name)
    try:
        timm.create_model(name, pretrained=True)
    except (OSError, ConnectionError) as error:
        raise download_error(name, error) from None
    path = cached_weights(name)
    if path is None:
        raise ForensicsError(f"model '{name}': timm loaded weights but they are not in the cache it should use")
    return path
