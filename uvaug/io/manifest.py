"""Append-only JSON-lines manifest: one record per processed input (or per face of an input).

Appending survives a killed run (everything written before the kill stays readable), lets a
resumed or repeated run simply add its records, and :func:`compact_manifest` later folds the
history into one current record set.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import numpy as np

from uvaug.io.atomic import write_bytes_atomic

__all__ = ["MANIFEST_NAME", "ManifestWriter", "compact_manifest", "iter_manifest", "read_manifest"]

MANIFEST_NAME = "manifest.jsonl"


def _json_default(value: Any) -> Any:
    """Paths become strings; NumPy scalars/arrays (common in stage outputs) become plain JSON."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"manifest values must be JSON-serialisable, got {type(value).__name__}")


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(dict(record), ensure_ascii=False, separators=(",", ":"), default=_json_default)


class ManifestWriter:
    """Append records to a manifest, one compact JSON line each, flushed as it is written.

    Each record goes out in a single unbuffered ``write`` on a file opened for appending, so a
    line is either wholly in the file or (killed mid-write) a truncated last line, which
    :func:`read_manifest` skips and the next writer starts after on a fresh line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        self._lock = threading.Lock()
        self._needs_newline = _ends_mid_line(self.path)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (serialised before anything is written, so a bad value writes nothing)."""
        data = (_dumps(record) + "\n").encode("utf-8")
        with self._lock:
            if self._needs_newline:
                data = b"\n" + data
            view = memoryview(data)
            while view:  # a regular file takes it all at once; loop only for short writes
                written = self._file.write(view)
                if not written:
                    raise OSError(f"could not append to {self.path}")
                view = view[written:]
            self._file.flush()
            self._needs_newline = False

    def close(self) -> None:
        """Close the file; safe to call more than once."""
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    """True when a killed run left a partial last line (the file does not end with a newline)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return False
        f.seek(end - 1)
        return f.read(1) != b"\n"


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records in file order; ``[]`` if there is no manifest (see :func:`iter_manifest`)."""
    return list(iter_manifest(path))


def iter_manifest(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records one at a time, in file order, in constant memory (dataset-sized manifests).

    Blank lines, lines that are not valid JSON (such as the truncated last line of a killed run)
    and lines that are not JSON objects are skipped; no manifest yields nothing.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError
                continue
            if isinstance(record, dict):
                yield record


@dataclass
class _Block:
    """The records one run wrote for one input."""

    whole: bool  # a single record standing for the whole input (e.g. face None: no face / failed)
    records: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)


def compact_manifest(
    path: str | os.PathLike[str], key: Sequence[str] = ("input", "face"), whole_inputs: bool = True
) -> list[dict[str, Any]]:
    """Reduce the manifest to the latest run's records for every input; rewrite it atomically.

    With ``whole_inputs=False`` the rule is simply the latest record per ``key``: for stages whose
    reruns redo only some of an input's records (render redoes missing views) and must keep the rest.

    ``key[0]`` names the input; the remaining fields (``face``) name a record within it, and a
    record whose remaining fields are all null stands for the whole input (no face found, or
    failed). A run writes each key of an input at most once, so an input's records are split,
    in write order, into *blocks*, one per run: a new block starts when a key repeats within the
    current block, or when a whole-input record meets per-face records (either way round). Only
    the last block of each input is kept, so a re-run that finds 2 faces where an earlier run
    found 3 leaves no stale face 2, a re-run that now fails replaces the earlier faces, and a
    re-run that now succeeds replaces the earlier failure. Records of other inputs interleaved
    between them (parallel workers) do not split a block. Records lacking ``key[0]`` cannot be
    attributed and are dropped.

    The result is sorted by input, then by the other key fields with null first, written back
    with :func:`~uvaug.io.atomic.write_bytes_atomic` (do not run this while a writer is appending
    to the same file), and returned. A missing manifest gives ``[]`` and is not created.
    """
    input_field, sub_fields = key[0], tuple(key[1:])
    records = read_manifest(path)
    if not records and not Path(path).exists():
        return []

    latest: dict[str, _Block] = {}
    for record in records:
        if input_field not in record:
            continue
        input_key = _key_text(record[input_field])
        sub_values = [record.get(name) for name in sub_fields]
        sub_key = tuple(_key_text(v) for v in sub_values)
        whole = all(v is None for v in sub_values)
        block = latest.get(input_key)
        starts_run = whole or block is None or block.whole or sub_key in block.records
        if block is None or (whole_inputs and starts_run):
            block = latest[input_key] = _Block(whole=whole)
        block.records[sub_key] = record

    kept = [record for block in latest.values() for record in block.records.values()]
    kept.sort(key=lambda r: (_sort_key(r[input_field]), tuple(_sort_key(r.get(name)) for name in sub_fields)))
    write_bytes_atomic(path, "".join(_dumps(r) + "\n" for r in kept).encode("utf-8"))
    return kept


def _key_text(value: Any) -> str:
    """Hashable, type-aware identity for any JSON value (lists and dicts included)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Total order over mixed JSON values: null, then numbers, then strings, then the rest."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, _key_text(value))
