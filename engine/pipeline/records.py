"""What a streaming run leaves on record: its manifest and its entry in the registry.

The supervisor writes the manifest as ``running`` before any process starts; the writer
rewrites it when the run ends normally (completed, or cancelled with its files closed).
When the writer does not get that far, the supervisor records the end itself
(`record_abnormal_end`); when even that cannot be written (a disk that stays full), the last
good manifest stays, still saying ``running``, and `amdsim list` shows the run as
``interrupted`` once its supervisor is gone. The registry of the runs root lists the run; a registry problem
is logged and never fails a run.

Does not cover: the manifest's schema (`engine.manifest`), the registry (`engine.registry`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from importlib.metadata import PackageNotFoundError, version

import msgspec
import psutil

from engine.errors import AmdsimError
from engine.manifest import Manifest, write_manifest
from engine.model.interface import AnyProtocol, format_version_of
from engine.model.parameters import RunParameters
from engine.pipeline.options import PipelineOptions
from engine.registry import Registry
from engine.reproducibility import reproducibility_record
from engine.run_dir import RUN_ID_PATTERN, RunPaths

__all__ = [
    "record_abnormal_end",
    "record_in_registry",
    "remove_temporary_files",
    "running_manifest",
]

log = logging.getLogger(__name__)


class _Unnamed:
    name = notes = ""


_UNNAMED = _Unnamed()  # a run started afresh keeps no earlier name


def running_manifest(
    paths: RunPaths,
    protocol: AnyProtocol,
    params: RunParameters,
    options: PipelineOptions,
    metrics_address: str,
    checkpoint_every: int,
    previous: Manifest | None,
    restarted: Manifest | None = None,
) -> Manifest:
    """The manifest of a run this process is starting now (a resume passes its `previous`,
    whose reproducibility record it keeps: the run's inputs are those of its start; a restart
    passes the manifest it replaces as `restarted`, whose recorded input files it keeps)."""
    manifest = Manifest(
        format_version=format_version_of(protocol),
        run_id=paths.root.name,
        status="running",
        protocol=protocol,
        parameters=params,
        shard_count=params.shard_count,
        compression=options.compression,
        workers=options.workers,
        created=datetime.datetime.now(datetime.UTC),
        package_version=package_version(),
        supervisor_pid=os.getpid(),
        supervisor_started=psutil.Process().create_time(),
        metrics_address=metrics_address,
        slot_bytes=options.slot_bytes,
        checkpoint_every=checkpoint_every,
        name=options.name or (previous or restarted or _UNNAMED).name,
        notes=options.notes or (previous or restarted or _UNNAMED).notes,
        reproducibility=None
        if previous is not None
        else reproducibility_record(protocol, options.protocol_path, package_version()),
    )
    if restarted is not None and restarted.reproducibility is not None and manifest.reproducibility:
        # A restart runs the protocol stored in the manifest: its inputs are those recorded.
        record = msgspec.structs.replace(
            manifest.reproducibility, files=restarted.reproducibility.files
        )
        manifest = msgspec.structs.replace(manifest, reproducibility=record)
    if previous is not None:
        manifest = msgspec.structs.replace(
            manifest,
            created=previous.created,
            resumes=previous.resumes + 1,
            reproducibility=previous.reproducibility,
        )
    return manifest


def record_in_registry(
    paths: RunPaths, manifest: Manifest, register: bool = False, quiet: bool = False
) -> None:
    """List the run in the registry of its runs root; a registry problem never fails a run.

    Only directories named like run ids are listed (``--out some/name`` is not). A problem
    is logged as a warning, or only at info level when `quiet` (the run has already failed,
    and its error says why: a full disk fails both).
    """
    if not RUN_ID_PATTERN.match(paths.root.name):
        return
    try:
        registry = Registry(paths.root.parent)
        if register:
            registry.register(manifest)
        else:
            registry.update(manifest)
    except (AmdsimError, OSError) as exc:
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "could not record run %s in the registry: %s",
            paths.root.name,
            exc,
        )


def record_abnormal_end(paths: RunPaths, manifest: Manifest, status: str, error: str) -> None:
    """The writer did not finish: remove its temporaries and write the run's end status.

    Raises `OSError` if the manifest cannot be written (a disk that stays full): the last
    good manifest is left as it was, and no temporary file.
    """
    remove_temporary_files(paths)
    try:
        write_manifest(
            paths.manifest,
            msgspec.structs.replace(
                manifest,
                status=status,
                error=error,
                finished=datetime.datetime.now(datetime.UTC),
                bytes_on_disk=paths.bytes_on_disk(),
            ),
        )
    finally:
        remove_temporary_files(paths)  # the manifest's own, if writing it failed


def remove_temporary_files(paths: RunPaths) -> None:
    """Remove the files left under temporary names anywhere in the run."""
    for path in paths.temporary_files():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def package_version() -> str:
    """The installed amdsim's version, or ``unknown`` from a bare source tree."""
    try:
        return version("amdsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
