import sys

from tilesapp._entry import main

sys.exit(main())
