"""The pipeline manifest read back in constant memory per input: which inputs are finished, and the counts.

A dataset of 10^7 images must resume without holding 10^7 path strings: each input is known by a 64-bit
hash of its relative path, kept in NumPy arrays (8 bytes per input plus a status code).
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from uvaug.artifacts import STATUS_NO_FACE, STATUS_OK
from uvaug.io import iter_manifest

#: Outcomes a rerun keeps; anything else (errors) is retried.
FINAL_STATUSES = (STATUS_OK, STATUS_NO_FACE)


def input_key(rel: str) -> int:
    """64-bit key of an input's relative path (collisions: ~1e-6 chance in 10^7 inputs)."""
    return int.from_bytes(
        hashlib.blake2b(rel.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


@dataclass
class ManifestState:
    finished: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # sorted keys
    counts: Counter = field(default_factory=Counter)  # (status, reason) of each input's latest record
    inputs: int = 0

    @classmethod
    def scan(cls, path: str | os.PathLike[str]) -> ManifestState:
        keys, codes = array("Q"), array("I")
        table: dict[tuple[str, str], int] = {}
        for rec in iter_manifest(path):
            if not isinstance(rec.get("input"), str):
                continue
            outcome = (str(rec.get("status")), str(rec.get("reason") or ""))
            keys.append(input_key(rec["input"]))
            codes.append(table.setdefault(outcome, len(table)))
        if not keys:
            return cls()
        key_arr = np.frombuffer(keys, np.uint64)[::-1]  # latest first: np.unique keeps first occurrences
        code_arr = np.frombuffer(codes, np.uint32)[::-1]
        unique, first = np.unique(key_arr, return_index=True)
        latest = code_arr[first]
        outcomes = list(table)
        final = np.array([status in FINAL_STATUSES for status, _ in outcomes])
        tally = np.bincount(latest, minlength=len(outcomes))
        counts = Counter({outcomes[i]: int(n) for i, n in enumerate(tally) if n})
        return cls(finished=unique[final[latest]], counts=counts, inputs=len(unique))

    def is_finished(self, rel: str) -> bool:
        if not len(self.finished):
            return False
        key = np.uint64(input_key(rel))
        i = int(np.searchsorted(self.finished, key))
        return i < len(self.finished) and self.finished[i] == key
