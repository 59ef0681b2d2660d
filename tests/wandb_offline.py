"""Reading what an offline W&B run wrote, to check that the metrics really reached W&B.

wandb 0.31 ships no Python reader for its ``.wandb`` files any more (the internal datastore
moved to its Go core), so the tests parse the documented record format themselves.
"""

import json
import struct
from pathlib import Path


def wandb_history(run_dir: Path) -> list[dict]:
    """History rows of the offline W&B run under ``run_dir``, read from its ``.wandb`` file.

    The file is a LevelDB-style log (7-byte header, 32 KiB blocks of chunks with a 7-byte
    header: CRC, length, type) of protobuf ``Record`` messages.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    [path] = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    rows, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # block trailer padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4) and pending:  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows
