import sys

from ambient_imaging.cli import main

sys.exit(main())
