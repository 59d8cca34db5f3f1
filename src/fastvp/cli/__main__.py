"""``python -m fastvp.cli`` (and ``torchrun -m fastvp.cli``): the fastvp command line."""

import sys

from . import main

sys.exit(main())
