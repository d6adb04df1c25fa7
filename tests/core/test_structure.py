"""Rules of the code's structure that import-linter cannot express."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tilesapp"


def _imports_of_private_names():
    for path in sorted(PACKAGE.rglob("*.py")):
        own = ".".join(path.relative_to(PACKAGE.parent).parent.parts)  # a package's private modules are its own
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tilesapp") \
                    and node.module != own:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        yield f"{path.relative_to(PACKAGE.parent)}: from {node.module} import {alias.name}"


def test_no_module_imports_another_modules_private_name():
    assert list(_imports_of_private_names()) == []


def test_no_function_of_the_engine_is_long():
    long = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 85:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_nothing_outside_the_readers_looks_at_image_suffixes():
    suffixes = ('".tif"', '".tiff"', '".png"', '".jpg"', '".jpeg"', '".bmp"', "TIFF_SUFFIXES", "IMAGE_SUFFIXES")
    found = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        if "readers" in path.parts or path.name == "writers.py":  # writers write the format a name asks for
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {s}" for s in suffixes if s in text]
    assert found == []
