"""``forensics weights NAME...``: fetch timm models' pretrained weights into the local cache.

Run it on a machine with internet (a cluster's login node); compute nodes sharing the same
``HF_HOME`` (and ``TORCH_HOME``) then load the weights with ``HF_HUB_OFFLINE=1`` and no
network. See :mod:`forensics.weights`.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

HELP = "download timm models' pretrained weights into the cache, for compute nodes without internet"


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="timm model names, e.g. legacy_xception efficientnet_b4")


def run(args) -> int:
    from forensics.weights import download

    for name in args.names:
        path = download(name)
        print(f"{name}: {path}")
    print("on a compute node sharing this cache: HF_HUB_OFFLINE=1 forensics train ... model.pretrained=true")
    return 0
