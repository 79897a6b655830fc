"""``dist_public/AOTI_METADATA.json``: what each encrypted artifact is and what it needs to run."""

from __future__ import annotations

import json
from dataclasses import dataclass

from liquid_memory.errors import ArtifactTampered

FORMAT = "lm-aoti-metadata-v1"


@dataclass(frozen=True)
class ArtifactInfo:
    name: str  # logical name, bound into the encryption AAD
    file: str  # path relative to the distribution root
    dtype: str
    head_dim: int
    chunk_size: int
    isa: str
    march: str
    max_batch: int
    max_heads: int
    max_length: int
    plaintext_sha256: str
    plaintext_size: int


@dataclass(frozen=True)
class Metadata:
    version: str
    torch: str
    source_commit: str
    content_key_id: str
    artifacts: tuple[ArtifactInfo, ...]


def parse_metadata(data: bytes) -> Metadata:
    """Parse (already hash-verified) metadata; a malformed file means the distribution was altered."""
    try:
        doc = json.loads(data)
        if doc["format"] != FORMAT:
            raise ValueError("format")
        arts = tuple(
            ArtifactInfo(
                name=str(a["name"]),
                file=str(a["file"]),
                dtype=str(a["dtype"]),
                head_dim=int(a["head_dim"]),
                chunk_size=int(a["chunk_size"]),
                isa=str(a["isa"]),
                march=str(a["march"]),
                max_batch=int(a["dynamic"]["batch"][1]),
                max_heads=int(a["dynamic"]["heads"][1]),
                max_length=int(a["dynamic"].get("length", [1, 64 << 16])[1]),
                plaintext_sha256=str(a["plaintext_sha256"]),
                plaintext_size=int(a["plaintext_size"]),
            )
            for a in doc["artifacts"]
        )
        return Metadata(str(doc["version"]), str(doc["torch"]), str(doc["source_commit"]),
                        str(doc["content_key_id"]), arts)  # fmt: skip
    except (ValueError, KeyError, TypeError, IndexError):
        raise ArtifactTampered("AOTI_METADATA.json is malformed", reason="bad-metadata") from None
