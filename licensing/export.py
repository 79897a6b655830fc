"""A clean export of a checkout: the files git tracks (as they are in the working tree) plus the release's own
outputs, copied into a fresh folder that a release wheel is then built in.

Why: setuptools reuses whatever the checkout's ``build/`` holds, so a wheel built inside a working checkout
carries stale output of any earlier build there — after ``lm-vendor release --dev`` that was the plaintext
kernel library, the Triton sources, the vendor tool and the development identity, all signed by the vendor's
manifest. The export holds nothing git does not track: no ``build/``, no ``*.so``, no ``*.egg-info``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from liquid_memory.errors import UsageError

# Written by ``lm-vendor release`` itself just before the build (tracked in git, but newer in the work tree).
RELEASE_OUTPUTS = ("dist_public", "MANIFEST.md")


def _git(repo: Path, *args: str) -> bytes:
    try:
        res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, timeout=120)
    except FileNotFoundError:
        raise UsageError("git is needed: a release is built from the files git tracks in the checkout") from None
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()[:200]
        raise UsageError(f"{repo} is not a git checkout ({detail}); a release is built from the files git tracks "
                         "— commit the sources first") from None  # fmt: skip
    return res.stdout


def tracked_files(repo: Path) -> list[str]:
    """Tracked paths (stage 0), refusing symlinks and submodules: their targets would escape the export."""
    out = []
    for record in _git(repo, "ls-files", "--stage", "-z").split(b"\0"):
        if not record:
            continue
        meta, _, path_bytes = record.partition(b"\t")
        mode, path = meta.split(b" ")[0].decode(), path_bytes.decode("utf-8", errors="surrogateescape")
        if mode == "120000":
            raise UsageError(f"{path} is a symlink tracked by git; a release copies regular files only")
        if mode == "160000":
            raise UsageError(f"{path} is a git submodule; a release does not build from submodules")
        out.append(path)
    return out


def modified_tracked_files(repo: Path) -> list[str]:
    """Tracked files whose work-tree content differs from HEAD (the release's own outputs aside)."""
    raw = _git(repo, "status", "--porcelain", "-z", "--untracked-files=no", "--", ".",
               *(f":(exclude){p}" for p in RELEASE_OUTPUTS))  # fmt: skip
    return [r[3:].decode(errors="replace") for r in raw.split(b"\0") if len(r) > 3]


def _copy_regular(src: Path, dst: Path, rel: str) -> None:
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{rel} is not a regular file in the checkout (symlink, FIFO or device): not exported")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst, follow_symlinks=False)
    os.chmod(dst, 0o755 if st.st_mode & 0o111 else 0o644)


def export_tree(repo: Path, dest: Path) -> list[str]:
    """Copy the tracked files and the release outputs of ``repo`` into the empty folder ``dest``; return them."""
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty; an export goes into a fresh folder")

    def is_output(rel: str) -> bool:
        return rel.split("/", 1)[0] in RELEASE_OUTPUTS

    copied = []
    for rel in tracked_files(repo):
        if is_output(rel) or not os.path.lexists(repo / rel):  # deleted in the work tree: not part of it
            continue
        _copy_regular(repo / rel, dest / rel, rel)
        copied.append(rel)
    if (repo / "MANIFEST.md").exists():
        _copy_regular(repo / "MANIFEST.md", dest / "MANIFEST.md", "MANIFEST.md")
        copied.append("MANIFEST.md")
    dist = repo / "dist_public"
    for path in sorted(dist.rglob("*")) if dist.is_dir() else []:
        rel = path.relative_to(repo).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        _copy_regular(path, dest / rel, rel)
        copied.append(rel)
    return copied
