"""The engine: plain Python + numpy/OpenCV/tifffile, never Qt (import-linter checks it).

Where things go (each seam is one new file, no edits across the engine):

- ``readers/``  a file format → its scenes (``readers/base.py`` is the contract)
- ``sinks/``    where tiles go and where merge reads them back (``sinks/base.py``)
- ``executors`` where per-image and per-band work runs
- ``normalize`` the normalization modes, as small objects
- ``cut``       the one per-image cut path (a whole image is one band); ``export`` runs it over a folder
- ``merge``     tiles back into images, on the manifest's grid
- ``folders``   every rule about input/export/annotation folders; ``manifest`` the typed records
"""
