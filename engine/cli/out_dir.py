"""`amdsim run --out DIR [--overwrite]`: never mix new results with old ones in DIR.

A non-empty DIR is refused unless ``--overwrite`` is given, and only a directory of amdsim
results (``results.json`` or ``manifest.json``) is ever overwritten, so a mistyped path
cannot delete unrelated files. With ``--overwrite`` the new results are written beside DIR
and swapped in whole when they are complete (engine.durable.replace_directory), so DIR holds
either the old results or the new ones, never a mixture (no stale ``patients.parquet``
beside new ``.arrow`` files), and a run that fails or is cancelled leaves DIR as it was.

A streaming run is staged in ``.DIR.amdsim-new-xxxx/DIR`` (same name: a run's id is its
directory's name) and swapped in only once completed; an unfinished one stays there,
resumable, and the command says where.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from engine.cli.console import err_console
from engine.cli.run_lookup import RESULT_FILES
from engine.durable import replace_directory
from engine.errors import ParameterError
from engine.manifest import Manifest
from engine.results.memory import InMemoryResults, TableFormat

__all__ = ["check_out_dir", "needs_staging", "run_staged", "save_replacing"]


def check_out_dir(out: Path | None, overwrite: bool) -> None:
    """Refuse `out` before anything is simulated when the results could not go there.

    Raises `ParameterError` for a symbolic link, for a non-empty directory without
    `overwrite`, for one that holds no amdsim results even with it, and for `overwrite`
    without `out`.
    """
    if out is None:
        if overwrite:
            raise ParameterError("--overwrite replaces the results in --out; give --out DIR")
        return
    if out.is_symlink():  # replacing it would swap the link, never what it points to
        raise ParameterError(f"--out {out} is a symbolic link; name the directory itself")
    if not needs_staging(out):
        return
    if not overwrite:
        raise ParameterError(
            f"--out {out} is not empty; pass --overwrite to replace the results in it, or "
            "choose another directory"
        )
    if not any((out / name).is_file() for name in RESULT_FILES):
        raise ParameterError(
            f"--out {out} is not empty and holds no amdsim results; refusing to overwrite it"
        )


def needs_staging(out: Path) -> bool:
    """True if `out` holds something that new results must replace in one step."""
    return out.is_dir() and any(out.iterdir())


def save_replacing(results: InMemoryResults, out: Path, table_format: TableFormat) -> None:
    """Save `results` into `out`: directly if it is empty or absent, else staged and swapped."""
    if not needs_staging(out):
        results.save(out, table_format)
        return
    staged = _staging_path(out)
    try:
        results.save(staged, table_format)
        replace_directory(staged, out)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def run_staged(run: Callable[[Path], Manifest], out: Path) -> Manifest:
    """Run a streaming run into a staging directory beside `out`; swap it in once completed.

    An unfinished run (failed, cancelled, interrupted) is left where it ran, resumable, and
    `out` as it was; one line on stderr says where it is.
    """
    holder = _staging_path(out)
    holder.mkdir()
    staged = holder / out.name
    try:
        manifest = run(staged)
    except BaseException:
        _leave_unfinished(holder, staged, out)
        raise
    if manifest.status != "completed":
        _leave_unfinished(holder, staged, out)
        return manifest
    replace_directory(staged, out)
    shutil.rmtree(holder, ignore_errors=True)  # what the run left beside it (its registry)
    return manifest


def _leave_unfinished(holder: Path, staged: Path, out: Path) -> None:
    if not (staged / "manifest.json").is_file():  # it never started: nothing to keep
        with contextlib.suppress(OSError):
            shutil.rmtree(holder)
        return
    err_console.print(
        f"note: {out} was left as it was; the unfinished run is in {staged} (finish it with "
        f"'amdsim resume {staged}', then move it into place)",
        soft_wrap=True,
        markup=False,
        emoji=False,
        highlight=False,
    )


def _staging_path(out: Path) -> Path:
    """A fresh hidden name beside `out`, on its file system, for results being built."""
    return out.with_name(f".{out.name}.amdsim-new-{secrets.token_hex(4)}")
