"""2,000 mutated deployment files through validate and place, in process: each either plans or gives orch's own
error (a located problem, a user error), never a traceback, and none runs away (issue 20, "Done when").

Mutations are seeded, so a failure reproduces: the structure (fields replaced, deleted, duplicated, numbers
scaled to extremes) and the text (lines dropped, swapped or duplicated, characters flipped)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import OrchError
from orchestrator.spec.loader import load_spec_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = [EXAMPLES / n for n in ("quickstart.yaml", "hybrid.yaml", "multi-region.yaml")]
VALUES: list[Any] = [None, -1, 0, 1e9, 1e-9, 2**70, "x", "aws:nowhere", "", "*" * 500, [], {}, True, 0.5, "fp8",
                     "int4", "spot", [{"region": "aws:us-east-1", "share": 1.0}]]


def _leaves(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*prefix, i))
    return out


def _structural(rng: random.Random, data: Any) -> str:
    paths = _leaves(data)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            leaf = parent[path[-1]]
            roll = rng.random()
            if roll < 0.25:
                del parent[path[-1]]
            elif roll < 0.45 and isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
                parent[path[-1]] = leaf * rng.choice([0, -1, 1e-6, 1e3, 1e9])
            else:
                parent[path[-1]] = rng.choice(VALUES)
        except (KeyError, IndexError, TypeError):
            continue
    return yaml.safe_dump(data, sort_keys=False)


def _textual(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        roll = rng.random()
        if roll < 0.3:
            del lines[i]
        elif roll < 0.5:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif roll < 0.7:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif lines[i]:
            k = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:k] + rng.choice(":-[]{}#'\" \t9x&*!|>%@") + lines[i][k + 1:]
        if not lines:
            break
    return "\n".join(lines) + "\n"


def test_two_thousand_mutated_files_plan_or_say_why() -> None:
    from orchestrator.placement import place

    rng = random.Random(20261204)
    texts = [p.read_text() for p in SOURCES]
    planned = refused = 0
    slowest = (0.0, "")
    for n in range(2000):
        i = rng.randrange(len(SOURCES))
        text = _textual(rng, texts[i]) if n % 2 else _structural(rng, yaml.safe_load(texts[i]))
        t0 = time.monotonic()
        try:
            loaded = load_spec_text(text, SOURCES[i])  # relative paths resolve beside the example
            place(loaded, with_fallbacks=False, time_limit=8.0)
            planned += 1
        except OrchError:
            refused += 1
        except Exception as exc:  # noqa: BLE001 - what this test exists to catch
            raise AssertionError(f"mutation {n} of {SOURCES[i].name} raised {type(exc).__name__}: {exc}\n{text}")
        took = time.monotonic() - t0
        if took > slowest[0]:
            slowest = (took, f"mutation {n} of {SOURCES[i].name}")
    print(f"{planned} planned, {refused} refused with orch's own error; slowest {slowest[0]:.2f} s ({slowest[1]})")
    assert planned + refused == 2000 and planned > 50 and refused > 500, (planned, refused)
    assert slowest[0] < 10.0, slowest  # a hang detector, not a benchmark
