"""Shared fixtures: synthetic microscopy images written by tifffile, isolated logs and Qt."""

from __future__ import annotations

import os

# Before anything imports Qt: tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests that load onnxruntime themselves send no usage reports either (predict sets it too).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import microscopy, write_imagej, write_ome  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_logs(tmp_path_factory, monkeypatch):
    """Logs of a test go to a temporary folder, never the user's."""
    monkeypatch.setenv("TILESAPP_LOG_DIR", str(tmp_path_factory.mktemp("logs")))


@pytest.fixture
def folder(tmp_path) -> Path:
    """An input folder with three calibrated 16-bit images and one text file."""
    src = tmp_path / "input"
    src.mkdir()
    write_imagej(src / "a.tif", microscopy((300, 400), seed=1), 0.65)
    write_ome(src / "b.tif", microscopy((256, 256), seed=2), 650, unit="nm")
    write_imagej(src / "c.tif", microscopy((200, 500), seed=3), 0.325)
    (src / "notes.txt").write_text("not an image")
    return src
