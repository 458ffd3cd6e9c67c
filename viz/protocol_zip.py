"""An uploaded zip holding a time-based protocol and its parameter files, unpacked safely.

A time-based protocol names parameter files beside it (`vision_parameters_file:
aflibercept_2mg/vision.yaml`), so one uploaded YAML cannot carry it; a zip of the folder can.
The zip is unpacked into its own folder under the runs folder's `.uploads/`, refusing what
a hostile or broken archive could do: a member path outside the folder (absolute, `..`, a
link), more than `MAX_MEMBERS` members, or more than `MAX_UNPACKED_BYTES` unpacked (a zip
bomb). The protocol is the top-level YAML file that says `protocol_type`; the loader then
validates it and its files with `amdsim validate`'s messages.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

import yaml

from engine.errors import ProtocolError

__all__ = ["MAX_MEMBERS", "MAX_UNPACKED_BYTES", "is_zip", "unpack_protocol_zip"]

MAX_MEMBERS = 64
MAX_UNPACKED_BYTES = 8 << 20


def is_zip(data: bytes, filename: str) -> bool:
    return filename.lower().endswith(".zip") or data[:4] == b"PK\x03\x04"


def _safe_member(info: zipfile.ZipInfo, source: str) -> PurePosixPath:
    path = PurePosixPath(info.filename)
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    if path.is_absolute() or ".." in path.parts or "\\" in info.filename or is_link:
        raise ProtocolError(source, None, f"{info.filename!r} would unpack outside its folder")
    return path


def unpack_protocol_zip(data: bytes, source: str, folder: Path) -> Path:
    """Unpack `data` into `folder` (created); the protocol file's path in it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ProtocolError(source, None, f"not a readable zip file ({exc})") from exc
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise ProtocolError(source, None, f"{len(members)} files; at most {MAX_MEMBERS}")
        unpacked = sum(i.file_size for i in members)
        if unpacked > MAX_UNPACKED_BYTES:
            raise ProtocolError(
                source,
                None,
                f"{unpacked / 2**20:,.1f} MiB unpacked; at most {MAX_UNPACKED_BYTES >> 20} MiB",
            )
        paths = [(info, _safe_member(info, source)) for info in members]
        folder.mkdir(parents=True, exist_ok=True)
        for info, path in paths:
            target = folder.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as member:
                target.write_bytes(member.read(MAX_UNPACKED_BYTES + 1)[:MAX_UNPACKED_BYTES])
    protocols = [
        folder / p.name
        for _, p in paths
        if len(p.parts) == 1
        and p.suffix.lower() in (".yaml", ".yml")
        and _is_protocol(folder / p.name)
    ]
    if len(protocols) != 1:
        found = ", ".join(sorted(p.name for p in protocols)) or "none"
        raise ProtocolError(
            source,
            None,
            "the zip must hold one protocol YAML (with protocol_type) at its top level, "
            f"its parameter files beside it; found: {found}",
        )
    return protocols[0]


def _is_protocol(path: Path) -> bool:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(loaded, dict) and "protocol_type" in loaded
