"""`python -m medtune VERB ...` (and `accelerate launch -m medtune train ...`): the same command line."""

import sys

from medtune.cli import main

sys.exit(main())
