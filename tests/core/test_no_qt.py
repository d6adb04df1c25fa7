import subprocess
import sys


def test_core_never_loads_qt():
    code = (
        "import sys, tilesapp.core, tilesapp.core.export, tilesapp.core.merge, tilesapp.core.mosaic, "
        "tilesapp.core.demo, tilesapp.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6'))\n"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
