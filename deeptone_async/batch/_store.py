"""Where a batch run's results go, and what an interrupted run already wrote.

Parquet: a folder of tables, each a folder of parts (``results/part-<id>.parquet``, ...).
Workers write the rows of their files; the driver then writes those files' rows of the
``files`` table, which marks them done. A part whose files were never marked done (the run
was interrupted between the two) is removed when the run is resumed, so every row is in the
dataset once. Parts are written under a hidden name and renamed, so readers (which skip
hidden files) never see half a part.

JSONL: one file, one document per line, appended and flushed by the driver as each chunk
of files comes back; a resumed run drops a torn last line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ._tables import FileRecord, files_schema
from ._work import Job, open_filesystem, write_part

__all__ = ["JsonlStore", "ParquetStore", "Store"]

#: The run's options, kept beside the tables so that ``--resume`` can refuse other options.
_RUN_FILE = "_batch.json"


class ParquetStore:
    """A Parquet dataset folder (a path or a pyarrow filesystem URI)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._fs, self._root = open_filesystem(job.output)
        self._parts: set[str] = set()  # the parts whose files are marked done

    def _describe(self) -> dict[str, Any]:
        o = self.job.options
        return {
            "format": 1,
            "models": list(o.models) if o.models is not None else None,
            "output_period": o.output_period,
            "channel": o.channel,
            "include_transitions": o.include_transitions,
            "include_raw_values": o.include_raw_values,
            "use_chunking": o.use_chunking,
            "volume_threshold": o.volume_threshold,
            "raw_labels": list(self.job.raw) if self.job.raw is not None else None,
        }

    def open(self, resume: bool) -> dict[str, FileRecord]:
        """Prepare the folder; returns the records of files already done (when resuming).

        Raises:
            ParameterError: the folder holds a run and ``resume`` is false, or it holds a
                run with other options.
            OSError: it cannot be read or written.
        """
        from pyarrow import fs

        info = self._fs.get_file_info(f"{self._root}/{_RUN_FILE}")
        if info.type == fs.FileType.NotFound:
            listing = self._fs.get_file_info(self._root)
            if listing.type == fs.FileType.File:
                raise ParameterError(f"{self.job.output} is a file: a Parquet output is a folder")
            if listing.type == fs.FileType.Directory and self._fs.get_file_info(fs.FileSelector(self._root)):
                raise ParameterError(f"{self.job.output} exists and is not a batch output: choose a new or empty folder")
            self._fs.create_dir(self._root, recursive=True)
            with self._fs.open_output_stream(f"{self._root}/{_RUN_FILE}") as out:
                out.write(json.dumps(self._describe(), indent=2).encode())
            return {}
        if not resume:
            raise ParameterError(f"{self.job.output} holds a batch run already: pass --resume (resume=True) to go on with it")
        with self._fs.open_input_stream(f"{self._root}/{_RUN_FILE}") as src:
            before = json.loads(src.read())
        if before != self._describe():
            changed = sorted(k for k in before.keys() | self._describe().keys() if before.get(k) != self._describe().get(k))
            raise ParameterError(f"{self.job.output} was written with other options ({', '.join(changed)}): resume with the same ones")
        done = self._done()
        self._parts.update(r.part for r in done.values() if r.part is not None)
        self.tidy()
        return done

    def _done(self) -> dict[str, FileRecord]:
        import pyarrow.parquet as pq
        from pyarrow import fs

        folder = f"{self._root}/files"
        if self._fs.get_file_info(folder).type == fs.FileType.NotFound:
            return {}
        table = pq.read_table(folder, filesystem=self._fs, schema=files_schema())
        return {row["file"]: FileRecord(**row) for row in table.to_pylist()}

    def tidy(self) -> None:
        """Remove temporary files, and parts whose files were never marked done (their
        chunk was interrupted, or its worker died after writing them). Call it when no
        worker is writing."""
        from pyarrow import fs

        kept = self._parts

        for table in ("results", "summary", "transitions", "files"):
            folder = f"{self._root}/{table}"
            if self._fs.get_file_info(folder).type == fs.FileType.NotFound:
                continue
            for entry in self._fs.get_file_info(fs.FileSelector(folder)):
                name = entry.base_name
                orphan = table != "files" and name.startswith("part-") and name[5:].removesuffix(".parquet") not in kept
                if name.endswith(".tmp") or orphan:
                    self._fs.delete_file(entry.path)

    def commit(self, records: Sequence[FileRecord], lines: Sequence[str]) -> None:
        """Mark ``records`` done: one part of the ``files`` table. Blocks on I/O."""
        import uuid

        import pyarrow as pa

        table = pa.Table.from_pylist([r.as_dict() for r in records], schema=files_schema())
        self._parts.update(r.part for r in records if r.part is not None)
        write_part(self._fs, self._root, "files", uuid.uuid4().hex, table)

    def close(self) -> None:
        pass


class JsonlStore:
    """One JSONL file: a ``process_file`` document per line with its ``file``, or
    ``{"file": ..., "error": {"type": ..., "message": ...}}``."""

    def __init__(self, job: Job) -> None:
        self.path = Path(job.output)
        self._out: Any = None

    def open(self, resume: bool) -> dict[str, FileRecord]:
        """Open the file for appending; returns the records of files it already holds.

        Raises:
            ParameterError: the file exists and ``resume`` is false.
        """
        done: dict[str, FileRecord] = {}
        if self.path.exists():
            if not resume:
                raise ParameterError(f"{self.path} exists: pass --resume (resume=True) to go on with it")
            done = self._done()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "a", encoding="utf-8")
        return done

    def _done(self) -> dict[str, FileRecord]:
        done: dict[str, FileRecord] = {}
        keep = 0
        with open(self.path, "rb") as src:
            for line in src:
                if not line.endswith(b"\n"):
                    break  # torn by an interruption: dropped below
                keep += len(line)
                doc = json.loads(line)
                error = doc.get("error")
                if error:
                    done[doc["file"]] = FileRecord(doc["file"], "error", error.get("type"), error.get("message"))
                else:
                    done[doc["file"]] = FileRecord(doc["file"], "ok")
        if keep < self.path.stat().st_size:
            os.truncate(self.path, keep)
        return done

    def commit(self, records: Sequence[FileRecord], lines: Iterable[str]) -> None:
        """Append the chunk's documents and flush them to disk. Blocks on I/O."""
        self._out.write("".join(line + "\n" for line in lines))
        self._out.flush()
        os.fsync(self._out.fileno())

    def tidy(self) -> None:
        """Nothing to tidy: only the driver writes the file."""

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


Store = ParquetStore | JsonlStore
