"""Helpers of tests/test_safety.py (issue 11): run the real ``tilesapp`` command in a child
process, with optional resource limits, and measure it; write the test data.

Only stable interfaces are used: the command line (exit code, stdout, stderr, files on disk,
manifest.json). Nothing here imports the engine.
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

#: The checkout under test: its ``tilesapp`` package is what the child processes run.
ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment (TILESAPP_LOG_DIR included), with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def tilesapp_command(*args) -> list[str]:
    """The ``tilesapp`` command of this checkout (same interpreter as the tests)."""
    return [sys.executable, "-m", "tilesapp", *map(os.fsdecode, args)]


@dataclass
class Run:
    """What a child process did."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int  # bytes, peak resident set size of this child alone

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


#: ``tilesapp`` as the installed console script runs it (``tilesapp._entry:main``), reporting at exit
#: the peak resident memory of its own program image (VmHWM: counted from exec, so neither the
#: test process it was forked from nor any other process is included).
_MEASURED = (
    "import atexit, os, sys\n"
    "def _peak():\n"
    "    with open('/proc/self/status') as f:\n"
    "        kb = next(l.split()[1] for l in f if l.startswith('VmHWM:'))\n"
    "    with open(os.environ['TILESAPP_TEST_PEAK'], 'w') as f:\n"
    "        f.write(kb)\n"
    "atexit.register(_peak)\n"
    "from tilesapp._entry import main\n"
    "sys.exit(main())\n"
)


def run_cli(*args, timeout: float = 120, address_space: int | None = None, file_size: int | None = None,
            measure: bool = False) -> Run:
    """Run ``tilesapp ARGS`` and wait for it.

    ``address_space`` caps the child's virtual memory (RLIMIT_AS: a huge allocation fails
    instead of exhausting the machine); ``file_size`` caps the size of any file it writes
    (RLIMIT_FSIZE: a write beyond fails with EFBIG, like a disk filling at that point).
    ``measure`` fills ``max_rss`` with the child's own peak resident memory (0 otherwise);
    ``os.wait4``/``RUSAGE_CHILDREN`` cannot give it: a forked child's maximum starts at the
    resident size of the process it was forked from (here pytest).
    """

    def limits() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    env = cli_env(OPENBLAS_NUM_THREADS="1") if address_space is not None else cli_env()
    command = tilesapp_command(*args)
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        if measure:
            env["TILESAPP_TEST_PEAK"] = str(peak_file)
            command = [sys.executable, "-c", _MEASURED, *command[3:]]
        start = time.monotonic()
        try:
            proc = subprocess.run(command, capture_output=True, env=env, timeout=timeout,
                                  preexec_fn=limits if (address_space or file_size) else None)
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            returncode, stdout, stderr = -9, exc.stdout or b"", (exc.stderr or b"") + b"\n[killed: timeout]"
        seconds = time.monotonic() - start
        max_rss = int(peak_file.read_text()) * 1024 if peak_file.is_file() else 0
    return Run(returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"), seconds, max_rss)


# --- test data ----------------------------------------------------------------------------------
def noise(shape=(200, 260), seed=0, dtype=np.uint16, low=100, high=4100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, shape).astype(dtype)


def write_calibrated(path, array: np.ndarray, pixel_size_um: float = 0.325) -> Path:
    """An ImageJ TIFF with its pixel size in µm (what a microscope export looks like)."""
    tifffile.imwrite(path, array, imagej=True, resolution=(1 / pixel_size_um, 1 / pixel_size_um),
                     metadata={"axes": "YX", "unit": "um"})
    return Path(os.fsdecode(path))


def strip_tiff(path, rows: int, cols: int, *, strips: str = "missing", rows_per_strip: int = 1) -> Path:
    """A classic little-endian uint8 TIFF (deflate strips) whose header claims ``rows`` × ``cols``
    pixels while the file holds almost nothing.

    ``strips="missing"``: every strip lies past the end of the file (a header with no data).
    ``strips="first-damaged"``: the first strip is garbage, every other strip points at one
    shared ~100-byte deflate stream of zeros (so the file stays under a megabyte).
    """
    n_strips = max(1, -(-rows // rows_per_strip))
    blob = zlib.compress(bytes(cols * rows_per_strip), 9)
    garbage = b"garbage!" * 8
    tags = {256: (4, [cols]), 257: (4, [rows]), 258: (3, [8]), 259: (3, [8]), 262: (3, [1]),
            273: (4, [0] * n_strips), 277: (3, [1]), 278: (4, [rows_per_strip]), 279: (4, [0] * n_strips)}
    ifd_size = 2 + 12 * len(tags) + 4
    arrays_at = 8 + ifd_size
    blob_at = arrays_at + sum(4 * len(v) for _, v in tags.values() if len(v) > 1)
    garbage_at = blob_at + len(blob)
    if strips == "missing":
        tags[273] = (4, [(1 << 24) + 100 * i for i in range(n_strips)])
        tags[279] = (4, [100] * n_strips)
    elif strips == "first-damaged":
        tags[273] = (4, [garbage_at] + [blob_at] * (n_strips - 1))
        tags[279] = (4, [len(garbage)] + [len(blob)] * (n_strips - 1))
    else:
        raise ValueError(strips)
    arrays = b""
    ifd = struct.pack("<H", len(tags))
    for tag in sorted(tags):
        kind, values = tags[tag]
        if len(values) == 1:
            value = struct.pack("<HH", values[0], 0) if kind == 3 else struct.pack("<I", values[0])
            ifd += struct.pack("<HHI", tag, kind, 1) + value
        else:
            ifd += struct.pack("<HHII", tag, kind, len(values), arrays_at + len(arrays))
            arrays += struct.pack(f"<{len(values)}I", *values)
    ifd += struct.pack("<I", 0)
    head = b"II*\x00" + struct.pack("<I", 8) + ifd + arrays
    assert len(head) == blob_at
    Path(path).write_bytes(head + (blob + garbage if strips == "first-damaged" else b""))
    return Path(path)


# --- reading results ----------------------------------------------------------------------------
def manifest(folder) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_bytes().decode("utf-8"))


def files_under(folder) -> set[str]:
    """Every file below ``folder``, as POSIX paths relative to it (hidden files included)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def snapshot(folder) -> dict[str, bytes]:
    """Name → bytes of every file below ``folder``."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def nothing_written(folder) -> bool:
    folder = Path(folder)
    return not folder.exists() or not any(folder.iterdir())


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def mentions(text: str, pattern: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None
