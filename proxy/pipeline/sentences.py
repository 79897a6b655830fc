"""Sentence spans and light lexical helpers shared by the pipeline and the extractors."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace or by a capital letter
# glued to it ("deep.The" occurs in scraped text), or at a blank line / line that ends a paragraph.
_SPLIT = re.compile(r"""(?<=[.!?])(["')\]]*)(?:\s+|(?=[A-Z\[]))|\n\s*\n""")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'$%.,-]*[A-Za-z0-9%]|[A-Za-z0-9]")
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each few for from further had hadn't has hasn't have haven't having he he'd
    he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
    is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
    or other ought our ours ourselves out over own same shan't she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've this those through to too under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
    who who's whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves also just like one get got does did much many thing things say said says
    according author text document
    """.split()
)


def sentence_spans(text: str, max_chars: int = 600) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (whitespace trimmed; overlong ones cut at `max_chars`)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in [*_SPLIT.finditer(text), None]:
        end = m.start() + len(m.group(1) or "") if m else len(text)
        s, e = pos, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        while e - s > max_chars:
            cut = text.rfind(" ", s + 1, s + max_chars)
            cut = cut if cut > s else s + max_chars
            spans.append((s, cut))
            s = cut + 1 if text[cut : cut + 1] == " " else cut
        if e > s:
            spans.append((s, e))
        pos = m.end() if m else len(text)
    return spans


def content_words(text: str) -> list[str]:
    """Lower-cased words of `text` without stopwords (numbers kept): the units of lexical overlap."""
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def has_specifics(text: str) -> bool:
    """True when `text` holds a number, date, amount or a capitalised name after its first word."""
    if re.search(r"\d", text):
        return True
    words = text.split()
    return any(w[:1].isupper() and w.strip(".,;:\"'()").isalpha() and len(w) > 1 for w in words[1:])
