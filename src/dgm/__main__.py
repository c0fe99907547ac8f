"""``python -m dgm`` is the ``dgm`` command."""

import sys

from dgm.cli import main

sys.exit(main())
