"""Every rule about the folders a run reads from and writes to, for the engine, the CLI and the window.

- The input folder is never written to; the export folder may not be it, nor lie inside it.
- A masks or labels folder is not the input folder, and does not lie inside the export folder
  (nor the export folder inside it).
- A non-empty export folder is used only when overwriting is allowed, and then only when every
  file in it was written by an earlier export (its manifest lists it): those files are removed
  first, so no tile of another run stays beside the new ones. Files no manifest explains are
  never deleted by an export.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tilesapp.core.errors import OutputError, SettingsError, TilesError
from tilesapp.core.manifest import MANIFEST_NAME, Manifest, read_manifest
from tilesapp.core.readers import image_folder_suffixes, image_suffixes, scan_folder
from tilesapp.core.writers import PARTIAL_SUFFIX

#: Files a run keeps in its export folder besides tiles: its lock and settings.
LOCK_NAME = ".tilesapp.lock"


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (symlinks resolved)."""
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def count_files(folder: str | Path) -> int:
    """Number of files in ``folder`` and its sub-folders (0 when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(len(files) for _, _, files in os.walk(folder))


# --- the export folder -----------------------------------------------------------------------
def check_output_folder(output: str | Path, inputs: Sequence[str | Path], overwrite: bool = False) -> None:
    """Refuse an export folder that breaks a safety rule; raises :class:`OutputError`.

    The export folder may not be an input folder nor lie inside one, may not be a file, and
    must be empty unless ``overwrite`` is set — and then hold only what earlier exports wrote.
    """
    check_output_place(output, inputs)
    check_output_contents(output, overwrite)


def check_output_place(output: str | Path, inputs: Sequence[str | Path], holds: str = "the tiles") -> None:
    """The export folder is neither an input folder nor inside one, nor a file (``holds``: what
    it is for, as the refusal says)."""
    out = Path(output).expanduser()
    for folder in inputs:
        if is_inside(out, folder):
            where = "is the input folder" if out.resolve() == Path(folder).resolve() else f"is inside the input folder {folder}"
            raise OutputError(f"The export folder {out} {where}; choose a folder outside it so the source images are never touched.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder; choose a folder for {holds}.")


def check_output_contents(output: str | Path, overwrite: bool = False, kind: str = "export folder") -> ExportContents | None:
    """The export folder is empty, or ``overwrite`` is set and it holds only what earlier
    exports wrote (returned, to be cleared before writing). ``kind``: how a refusal names it."""
    out = Path(output).expanduser()
    if not out.is_dir():
        return None
    entries = sum(1 for p in out.iterdir() if p.name != LOCK_NAME)
    if not entries:
        return None
    if not overwrite:
        raise OutputError(
            f"The {kind} {out} is not empty ({entries} item{'s' * (entries != 1)}); "
            f"empty it, choose another folder, or allow overwriting (--overwrite)."
        )
    contents = export_contents(out)
    if contents.other:
        shown = ", ".join(p.relative_to(out).as_posix() for p in contents.other[:3])
        more = f" and {len(contents.other) - 3} more" if len(contents.other) > 3 else ""
        raise OutputError(
            f"The export folder {out} holds {len(contents.other)} file{'s' * (len(contents.other) != 1)} that no "
            f"earlier export wrote ({shown}{more}); overwriting only replaces an earlier export — "
            f"choose an empty folder or move those files."
        )
    return contents


def prepare_output(out: Path) -> None:
    """Create the export folder and prove it can be written to (:class:`OutputError` otherwise)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = _exclusive_temp(out, ".tilesapp-write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"Cannot write to the export folder {out} ({exc.strerror or exc}); choose a folder you can write to.") from exc


def _exclusive_temp(folder: Path, prefix: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=prefix, suffix=PARTIAL_SUFFIX, dir=folder)


@dataclass
class ExportContents:
    """What an export folder holds: what earlier exports wrote there, and anything else."""

    folder: Path
    manifest: Manifest | None = None
    written: list[Path] = field(default_factory=list)  # files a manifest lists (the manifest included)
    folders: list[Path] = field(default_factory=list)  # folders those files are in, deepest first
    other: list[Path] = field(default_factory=list)  # files no manifest explains
    staging: list[Path] = field(default_factory=list)  # an interrupted run's private folders of staged tiles
    damaged: str | None = None  # why the manifest could not be read, when it could not


#: Leftovers of an interrupted run: temporary files with our suffix.
_LEFTOVER = re.compile(r"^\..*" + re.escape(PARTIAL_SUFFIX) + r"$")


def export_contents(folder: str | Path) -> ExportContents:
    """Sort the files of an export folder into written by an export (its manifest lists them,
    or they are tiles of its sources and temporary files an interrupted run left) and other."""
    folder = Path(folder)
    contents = ExportContents(folder)
    explained: set[Path] = set()
    stems: set[str] = set()
    if (folder / MANIFEST_NAME).is_file():
        try:
            contents.manifest = read_manifest(folder)
        except TilesError as exc:
            contents.damaged = str(exc)
        else:
            explained = {folder / name for name in contents.manifest.written_files()}
            explained.add(folder / MANIFEST_NAME)
            stems = {s.tile_stem for s in contents.manifest.sources}
    tile_name = re.compile(r"^(?P<stem>.+)_\d{3,}\.[A-Za-z0-9]+$")
    leftover_dirs: set[Path] = set()  # private folders of staged tiles (writers.TileWriter)
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(root)
        staged = here in leftover_dirs or any(p in leftover_dirs for p in here.parents)
        leftover_dirs.update(here / d for d in dirs if _LEFTOVER.match(d))
        for name in sorted(files):
            path = here / name
            match = tile_name.match(name)
            if name == LOCK_NAME and here == folder:
                continue  # a run's own lock, removed by the run
            if staged or path in explained or _LEFTOVER.match(name) or (match and match["stem"] in stems):
                contents.written.append(path)
            else:
                contents.other.append(path)
    contents.staging = sorted(leftover_dirs)
    written_dirs = {p.parent for p in contents.written if p.parent != folder} | leftover_dirs
    contents.folders = sorted(written_dirs | {d for p in written_dirs for d in p.parents if is_inside(d, folder) and d != folder},
                              key=lambda p: len(p.parts), reverse=True)
    return contents


def clear_export(contents: ExportContents, include_other: bool = False) -> int:
    """Delete what an earlier export wrote (and, with ``include_other``, the other files too),
    then the folders it made when they end empty; returns the number of files deleted."""
    removed = 0
    for path in contents.written + (contents.other if include_other else []):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    for folder in contents.folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: it holds files we did not write
            pass
    return removed


# --- inputs ------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """The images of a run: their common folder, the folders they lie in, what was skipped."""

    root: Path
    folders: list[Path]
    images: list[Path]
    skipped: list[Path]
    unsearched: list[tuple[Path, str]] = field(default_factory=list)  # sub-folders that cannot be read, why

    def unsearched_warnings(self) -> list[str]:
        """What to say of the sub-folders that could not be searched."""
        return [f"{self.name(path)}: this folder cannot be read ({why}); the images in it were not searched."
                for path, why in self.unsearched]

    def name(self, path: Path) -> str:
        """An image's name as manifests record it: relative to the common folder."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)


def collect_inputs(sources: str | Path | Sequence[str | Path], recursive: bool = False) -> Inputs:
    """Images to process from a folder, or from a list of image files (as dropped on the window)."""
    suffixes = image_suffixes()
    if isinstance(sources, (str, os.PathLike)):
        folder = Path(sources).expanduser().absolute()  # relative names are made against it
        if not folder.exists():
            raise SettingsError("input", f"The input folder {folder} does not exist; check the path.")
        if folder.is_file() or (folder.is_dir() and folder.suffix.lower() in image_folder_suffixes()):
            sources = [folder]  # an image file, or an image that is a folder (X.zarr)
        else:
            try:
                scan = scan_folder(folder, recursive)
            except PermissionError as exc:
                raise SettingsError("input", f"The input folder {folder} cannot be read ({exc.strerror or exc}); check "
                                             f"its permissions.") from None
            if not scan.images and scan.unsearched:
                path, why = scan.unsearched[0]
                raise SettingsError("input", f"The folder {folder} holds no images that can be read: {path} cannot be "
                                             f"read ({why}); check its permissions.")
            if not scan.images:
                raise SettingsError(
                    "input", f"The folder {folder} holds no images ({', '.join(suffixes)}); choose the folder that holds them."
                )
            return Inputs(folder, [folder], list(scan.images), list(scan.skipped), list(scan.unsearched))
    files = [Path(p).expanduser().absolute() for p in sources]
    missing = [p for p in files if not p.exists()]
    if missing:
        raise SettingsError("input", f"{missing[0]} does not exist; check the path.")
    images = [p for p in files if (p.is_file() and p.suffix.lower() in suffixes)
              or (p.is_dir() and p.suffix.lower() in image_folder_suffixes())]
    if not images and len(files) == 1:
        raise SettingsError("input", f"{files[0]} is not an image this program reads ({', '.join(suffixes)}); give a "
                                     f"folder of images, or an image.")
    if not images:
        raise SettingsError("input", f"None of the {len(files)} files is an image ({', '.join(suffixes)}).")
    folders = sorted({p.parent for p in images})
    root = Path(os.path.commonpath([str(f) for f in folders]))
    return Inputs(root, folders, images, [p for p in files if p not in images])


# --- annotation folders --------------------------------------------------------------------------
def folder_conflict(kind: str, folder: str | Path, export: str | Path) -> str:
    """Why a masks / labels ``folder`` and the ``export`` folder cannot go together ("" when they can)."""
    folder, export = Path(folder), Path(export)
    if is_inside(export, folder):
        same = export.resolve() == folder.resolve()
        where = f"is the {kind} folder" if same else f"is inside the {kind} folder {folder}"
        return f"The export folder {export} {where}; choose an export folder outside it so the {kind} are never touched."
    if is_inside(folder, export):
        return (f"The {kind} folder {folder} is inside the export folder {export}; exported tiles must never mix "
                f"with the {kind}. Choose another export folder, or move the {kind}.")
    return ""


def annotation_folder_problem(kind: str, folder: str | Path, inputs: Sequence[str | Path] = (),
                              export: str | Path | None = None) -> str:
    """Why ``folder`` cannot be the masks / labels folder of a run ("" when it can)."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"The {kind} folder {folder} does not exist or is not a folder; choose the folder that holds the {kind}."
    if any(folder.resolve() == Path(f).resolve() for f in inputs):
        return (f"The {kind} folder is the input folder, so every image would be its own {kind[:-1]}; "
                f"choose the folder that holds the {kind}.")
    return folder_conflict(kind, folder, export) if export is not None else ""


def check_annotation_folders(folders: dict[str, str | Path | None], inputs: Inputs, out: Path) -> dict[str, Path | None]:
    """Absolute masks/labels folders, or :class:`SettingsError` / :class:`OutputError` for a bad one."""
    checked: dict[str, Path | None] = {}
    for kind, folder in folders.items():
        if folder is None:
            checked[kind] = None
            continue
        folder = Path(folder).expanduser().absolute()
        problem = annotation_folder_problem(kind, folder, inputs.folders)
        if problem:
            raise SettingsError(kind, problem)
        problem = folder_conflict(kind, folder, out)
        if problem:
            raise OutputError(problem)
        checked[kind] = folder
    return checked


# --- one run at a time per export folder -------------------------------------------------------------
def lock_output(out: Path, overwrite: bool) -> ExportLock:
    """Check that ``out`` is empty unless ``overwrite`` (before anything is written in it), create
    it when missing, lock it for a run (:class:`ExportLock`, held when returned) and check it
    again under the lock: a run that wrote there since the first check is seen. Refused, a
    folder it created is removed again."""
    if not overwrite:
        check_output_contents(out, False, "output folder")
    created = not out.exists()
    prepare_output(out)
    lock = ExportLock(out)
    try:
        lock.acquire()
        if not overwrite:
            check_output_contents(out, False, "output folder")
    except BaseException:
        lock.release()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return lock


class ExportLock:
    """An exclusive lock on an export folder for the length of a run: a lock file holding the
    process id, locked by the operating system (so a run that died leaves no stale lock: its
    lock ends with its process), removed when the run ends."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> ExportLock:
        """Take the lock, or raise :class:`OutputError` saying which process holds it."""
        import datetime
        import socket

        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                _lock(fd)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError(f"Another run is writing into {self.path.parent}{holder}; wait for it to end, "
                                  f"or choose another folder.") from None
            try:  # its previous holder may have removed the file between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if not same:
                _unlock(fd)
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            when = datetime.datetime.now().isoformat(timespec="seconds")
            os.write(fd, f"{os.getpid()} {socket.gethostname()} {when}\n".encode())
            self._fd = fd
            return self
        raise OutputError(f"Could not lock the export folder {self.path.parent}; try again.")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.name == "nt":  # an open file cannot be removed there
                _unlock(fd)
                os.close(fd)
                self.path.unlink(missing_ok=True)
            else:
                self.path.unlink(missing_ok=True)
                _unlock(fd)
                os.close(fd)
        except OSError:
            pass

    def __enter__(self) -> ExportLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid, host, when = os.read(fd, 200).decode("utf-8", "replace").split()[:3]
        return f" (process {pid} on {host}, started {when.replace('T', ' ')})"
    except (OSError, ValueError):
        return ""
