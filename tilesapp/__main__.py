import sys

from tilesapp.cli import main

sys.exit(main())
