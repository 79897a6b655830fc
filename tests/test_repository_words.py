"""The repository speaks to its users: no tracked file (code, tests, docs, results, file names) tells the story of
its own development, and nothing points outside the repository.

Results are described by configuration and date. What the patterns below catch, and why they are narrow:

* numbered development steps: "issue", "round" or "session" followed by a number ("session-3", "issue10"),
  an issue reference ("see #12"), or a step tag at the start of a name ("s7_delta");
* a pilot as history ("pilot", "pilots/"), a person's role ("the lead", "helper-2", "3 helpers");
* paths of the development machine's worktrees and shared notes, and the developers' design note.

Words with an ordinary meaning stay legal: an HTTP or test-fixture "session", a "round trip", "rounding",
"alternated round by round", licence "issue" (``lm-vendor issue``), test "helpers".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

PROCESS_WORDS = [
    re.compile(r"\b(?:issues?|rounds?|sessions?)[ _-]?#?\d+", re.IGNORECASE),
    re.compile(r"\b(?:this|that|next|previous|earlier|last|every|one|later) session\b", re.IGNORECASE),
    re.compile(r"\b(?:issues?|pr|fixes|closes|see) ?#\d+", re.IGNORECASE),
    re.compile(r"(?<![A-Za-z0-9_/])s[1-9][0-9]?_(?!\d)"),
    re.compile(r"\bpilots?\b|\bpilot_|_pilot\b", re.IGNORECASE),
    re.compile(r"\bthe lead\b", re.IGNORECASE),
    re.compile(r"\bhelper-\d|\b(?:\d+|two|three|four|five|other|another) (?:[\w-]+ ){0,2}helpers?\b", re.IGNORECASE),
    re.compile(r"\bother engineers\b", re.IGNORECASE),
    re.compile(r"\ba helper\b", re.IGNORECASE),
    re.compile(r"/work/wt/|/work/shared"),
]
OUTSIDE_POINTERS = re.compile(r"DESIGN\.md|\.\./shared\b")
FILE_NAME_WORDS = re.compile(
    r"pilot|session|(?:^|[/_.-])(?:issue|round)[_-]?\d|(?:^|[/_.-])s[1-9]\d?[_.]", re.IGNORECASE
)


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("these checks read `git ls-files`: run them in a git checkout with git installed")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [name for name in out.decode().split("\0") if name]
    assert len(files) > 100, "git ls-files listed too few files to be this repository"
    return files


def _texts() -> list[tuple[str, str]]:
    texts = []
    for name in _tracked_files():
        path = ROOT / name
        if name == THIS or not path.is_file():
            continue
        try:
            texts.append((name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:  # images, encrypted artifacts
            continue
    return texts


def _hits(pattern: re.Pattern[str] | list[re.Pattern[str]]) -> list[str]:
    patterns = pattern if isinstance(pattern, list) else [pattern]
    found = []
    for name, text in _texts():
        for number, line in enumerate(text.splitlines(), 1):
            for p in patterns:
                found += [f"{name}:{number}: {m.group(0)!r}" for m in p.finditer(line)]
    return found


def test_no_development_process_words_in_tracked_files() -> None:
    hits = _hits(PROCESS_WORDS)
    assert not hits, "describe by configuration and date, not by development step:\n" + "\n".join(hits[:60])


def test_no_development_process_words_in_file_names() -> None:
    names = [name for name in _tracked_files() if FILE_NAME_WORDS.search(name)]
    assert not names, "rename descriptively:\n" + "\n".join(names)


def test_nothing_points_outside_the_repository() -> None:
    hits = _hits(OUTSIDE_POINTERS)
    assert not hits, "the project's own docs (docs/architecture.md) say what users need:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "text",
    ["session 7", "Session-3 hybrid", "issue 9's targets", "issue10-q", "round 7", "see #12", "s7_delta_100.json",
     "pilots/", "a pilot run", "the lead ran it", "helper-2", "3 helpers",
     "one other CPU-heavy helper", "3–4 other engineers' builds", "../shared/DESIGN.md"],
)  # fmt: skip
def test_patterns_catch_process_words(text: str) -> None:
    assert any(p.search(text) for p in [*PROCESS_WORDS, OUTSIDE_POINTERS])


@pytest.mark.parametrize(
    "text",
    ['@pytest.fixture(scope="session")', "keep the session", "Session-wide setup", "a round trip", "rounding error",
     "alternated round by round", "lm-vendor issue --dev", "test helpers",
     "Tiny random models and small helpers", "w64_s4 (window 64, 4 sinks)",
     "s0_grad", "v8 s8 = bc(0.0f);", "the leading dimension"],
)  # fmt: skip
def test_patterns_leave_ordinary_words_alone(text: str) -> None:
    assert not any(p.search(text) for p in [*PROCESS_WORDS, OUTSIDE_POINTERS])
