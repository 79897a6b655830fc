"""The product's one version number: read by setup.py (as text) and by every module that stamps or checks it.

A module of its own so that importing the version never runs the package's ``__init__`` (which imports the layer).
"""

__version__ = "0.1.0"
