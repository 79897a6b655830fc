"""``python -m liquid_memory.cli ...`` (e.g. under ``torchrun`` for ``lm train``): the same as ``liquid-memory``."""

import sys

from liquid_memory.cli.main import main

sys.exit(main())
