"""The ``liquid-memory`` command line (``liquid_memory.cli:main``); one module per subcommand."""

from liquid_memory.cli.main import main

__all__ = ["main"]
