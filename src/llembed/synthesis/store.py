"""Append-only, resumable JSONL: a run that stops (killed or not) continues where it stopped, no duplicates.

Each record carries a key (``id``). Kept examples go to ``<name>.raw.jsonl``, dropped attempts to
``<name>.dropped.jsonl``; both are flushed and fsynced line by line. A torn last line (the process died
mid-write) is cut on reopen. Keys found in either file are done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class AppendLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        if path.exists():
            self._recover()
        self._handle = path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        good = data[: data.rfind(b"\n") + 1]  # whatever follows the last newline is a torn write
        if len(good) != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(len(good))
        for line in good.decode("utf-8").splitlines():
            if line.strip():
                self.records.append(json.loads(line))

    @property
    def keys(self) -> set[str]:
        return {record["id"] for record in self.records}

    def append(self, record: dict) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records.append(record)

    def close(self) -> None:
        self._handle.close()


class SynthesisStore:
    """The kept and dropped logs of one synthesis output ``out.jsonl``."""

    def __init__(self, output: str | Path) -> None:
        output = Path(output)
        stem = output.with_suffix("")
        self.output = output
        self.kept = AppendLog(stem.with_name(stem.name + ".raw.jsonl"))
        self.dropped = AppendLog(stem.with_name(stem.name + ".dropped.jsonl"))
        self.state_path = stem.with_name(stem.name + ".state.json")

    @property
    def done(self) -> set[str]:
        return self.kept.keys | self.dropped.keys

    def keep(self, key: str, example: dict, meta: dict | None = None) -> None:
        self.kept.append({"id": key, **example, **({"meta": meta} if meta else {})})

    def drop(self, key: str, reason: str, raw: str = "") -> None:
        self.dropped.append({"id": key, "reason": reason, "raw": raw[:2000]})

    def load_state(self) -> dict:
        return json.loads(self.state_path.read_text(encoding="utf-8")) if self.state_path.is_file() else {}

    def save_state(self, state: dict) -> None:
        from llembed.io_utils import atomic_write_text

        atomic_write_text(self.state_path, json.dumps(state, indent=2, ensure_ascii=False))

    def close(self) -> None:
        self.kept.close()
        self.dropped.close()
