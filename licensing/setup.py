"""The vendor tool as its own distribution: ``pip install ./licensing`` gives ``lm-vendor`` (package
``liquid_memory_vendor``) without it ever being part of a customer's release wheel.

It includes the DEVELOPMENT identity (public on purpose: ``lm-vendor --dev``); a vendor's real key lives in
their own ``LM_VENDOR_HOME``, never in a distribution.
"""

import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE.parent / "src/liquid_memory/version.py").read_text(), re.M)[1]


class BuildPy(build_py):
    """This file is the distribution's build script, not a module of the package."""

    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir) if m[1] != "setup"]


setup(
    name="liquid-memory-vendor",
    version=VERSION,
    description="Vendor tool of Liquid Memory (keys, licences, revocation, releases). Not for customers.",
    python_requires=">=3.11",
    package_dir={"liquid_memory_vendor": "."},
    packages=["liquid_memory_vendor"],
    package_data={"liquid_memory_vendor": ["dev_identity/*"]},
    cmdclass={"build_py": BuildPy},
    install_requires=[f"liquid-memory=={VERSION}", "build>=1.2,<2"],
    entry_points={"console_scripts": ["lm-vendor=liquid_memory_vendor.cli:main"]},
)
