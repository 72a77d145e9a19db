"""Close-match suggestions for misspelt names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    cands = list(candidates)
    lower = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean "x"?)' or '' when nothing is close."""
    hits = close_matches(word, candidates)
    if not hits:
        return ""
    return " (did you mean " + " or ".join(f'"{h}"' for h in hits) + "?)"
