"""``python -m ambient_imaging``: the CLI.

``python -m`` puts the current folder first on ``sys.path``; a data folder holding a file named like
an installed module (``numpy.py``) would then run on import. The folder is dropped before anything
else is imported (the package itself is found where it is installed).
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from ambient_imaging.cli import main  # noqa: E402

sys.exit(main())
