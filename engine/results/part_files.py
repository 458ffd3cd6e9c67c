"""The part files a `ParquetResults` reader opens: checked on opening, verified on reading.

A part file is opened only after its footer proves it is this run's and holds the shard
parts the index says (`engine.integrity.check_part_identity`); it is opened with page
checksum verification, so a damaged row group raises `ResultsFormatError` naming the file
and the row group, never wrong values. For lookups, the last `OPEN_FILES` files stay open
(least recently used dropped), shared by the reader's threads under a lock; a pass over
the run in order (`read_in_order`) keeps the last `ITERATION_OPEN_FILES` of its own.
Does not cover: which row groups hold a patient, caching decoded rows
(`engine.results.parquet`); the deep check of a whole run (`engine.integrity.verify_run`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import ResultsFormatError
from engine.integrity import check_part_identity, open_part_file
from engine.manifest import ShardLocation
from engine.run_dir import RunPaths

__all__ = ["OPEN_FILES", "PartFiles"]

# Part files kept open for lookups (each table's file counts once). The footers of a pair
# holding ~1M patients take ~6 MB in memory, so this bounds a reader at ~75 MB of footers
# however many files a run has; iteration keeps a few open (writer lanes interleave shards
# between files) and closes them as it moves on.
OPEN_FILES = 24
ITERATION_OPEN_FILES = 4


class PartFiles:
    """One run's part files, opened on demand and read with every page checksum verified.

    `by_file` lists, for each part file number, the shard parts the index puts in it: what
    a file must hold to be opened.
    """

    def __init__(
        self, paths: RunPaths, run_id: str, by_file: dict[int, list[ShardLocation]]
    ) -> None:
        self.paths = paths
        self.run_id = run_id
        self._by_file = by_file
        self._files: OrderedDict[tuple[str, int], pq.ParquetFile] = OrderedDict()
        self._files_lock = threading.Lock()

    def get(self, table: str, number: int) -> pq.ParquetFile:
        """An open part file, from the least-recently-used set of `OPEN_FILES`."""
        key = (table, number)
        with self._files_lock:
            handle = self._files.get(key)
            if handle is None:
                handle = self.open(table, number)
                self._files[key] = handle
                if len(self._files) > OPEN_FILES:
                    # Dropped, not closed: a reader thread may still be using it.
                    self._files.popitem(last=False)
            else:
                self._files.move_to_end(key)
            return handle

    def open(self, table: str, number: int) -> pq.ParquetFile:
        """Open a part file after checking it is this run's and holds what the index says.

        The caller owns the handle (it is not among the shared ones `get` keeps).
        """
        path = self.paths.part_file(table, number)
        handle = open_part_file(path)
        try:
            check_part_identity(
                path, handle.metadata, self.run_id, table, self._by_file.get(number, [])
            )
        except BaseException:
            handle.close()
            raise
        return handle

    def read_table(self, table: str, number: int, row_groups: list[int]) -> pa.Table:
        """Rows of `row_groups` of one part file (opened through `get`)."""
        handle = self.get(table, number)
        return self.read_row_groups(handle, table, number, row_groups)

    def read_row_groups(
        self, handle: pq.ParquetFile, table: str, number: int, row_groups: list[int]
    ) -> pa.Table:
        """Rows of `row_groups`, every page checksum verified; a damaged page raises
        `ResultsFormatError` naming the file and the row group(s)."""
        try:
            if len(row_groups) == 1:
                return handle.read_row_group(row_groups[0])
            return handle.read_row_groups(row_groups)
        except (OSError, pa.ArrowException) as exc:
            group, cause = row_groups[0], exc
            for group in row_groups:  # which one it is, when several were read at once
                try:
                    handle.read_row_group(group)
                except (OSError, pa.ArrowException) as single:
                    cause = single
                    break
            path = self.paths.part_file(table, number)
            raise ResultsFormatError(
                f"{path}: row group {group} cannot be read ({cause}); the file is damaged: "
                f"check the run with 'amdsim verify {self.run_id}'"
            ) from exc

    def read_in_order(
        self, table: str, reads: Iterable[tuple[int, list[int]]]
    ) -> Iterator[pa.Table]:
        """Rows of each (part file number, row groups) of `reads`, in order, as `read_row_groups`.

        The last `ITERATION_OPEN_FILES` files stay open (writer lanes interleave shards
        between files), their own handles (not the shared ones `get` keeps), closed as the
        pass moves on, so footers do not pile up over a long pass.
        """
        handles: OrderedDict[int, pq.ParquetFile] = OrderedDict()
        for number, row_groups in reads:
            handle = handles.get(number)
            if handle is None:
                handle = handles[number] = self.open(table, number)
                if len(handles) > ITERATION_OPEN_FILES:
                    handles.popitem(last=False)[1].close()
            else:
                handles.move_to_end(number)
            yield self.read_row_groups(handle, table, number, row_groups)
        for handle in handles.values():
            handle.close()

    def close(self) -> None:
        """Close the shared handles; idempotent. Handles from `open` are their caller's."""
        with self._files_lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
