"""Reading a small model's output: find the JSON, check it, and say why an example is dropped.

Every drop has a reason, counted in a :class:`Drops`, so a run reports what the generator got wrong instead
of crashing or silently shrinking.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _balanced(text: str, opener: str, closer: str) -> list[str]:
    """Every balanced ``opener … closer`` span (quotes respected), outermost first."""
    spans, depth, start, quoted, escaped = [], 0, None, False, False
    for i, ch in enumerate(text):
        if quoted:
            escaped = ch == "\\" and not escaped
            if ch == '"' and not escaped:
                quoted = False
            continue
        if ch == '"':
            quoted = depth > 0
        elif ch == opener:
            if depth == 0:
                start = i
            depth += 1
        elif ch == closer and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def extract_json(text: str, kind: type = dict):
    """The first JSON object (or list) in ``text``: plain, fenced in a code block, or surrounded by chatter."""
    opener, closer = ("{", "}") if kind is dict else ("[", "]")
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for span in [candidate.strip()] + _balanced(candidate, opener, closer):
            try:
                value = json.loads(span)
            except json.JSONDecodeError:
                continue
            if isinstance(value, kind):
                return value
    return None


def extract_fields(text: str, keys: tuple[str, ...]) -> dict | None:
    """The JSON object in ``text``; failing that, ``key: value`` lines naming ``keys`` (small models often
    drop the braces and quotes but keep the labels)."""
    value = extract_json(text)
    if value is not None:
        return value
    found = {}
    for line in text.splitlines():
        match = re.match(r'^\W*("?)(\w+)\1\s*[:=]\s*(.+?)\s*,?\s*$', line)
        if match and match.group(2) in keys and match.group(2) not in found:
            found[match.group(2)] = match.group(3).strip().strip('"').strip()
    return found if len(found) == len(keys) else None


def parse_list(text: str) -> list[str]:
    """A list of strings: a JSON list, or else the bulleted / numbered lines of the reply."""
    value = extract_json(text, list)
    if value is not None:
        return [str(v).strip() for v in value if isinstance(v, str | int | float) and str(v).strip()]
    items = []
    for line in text.splitlines():
        # "1. …", "2) …", "- …", "Task 3: …"; several numbered items on one line are split
        for piece in re.split(r"(?<=\S)\s+(?=\d+[.)]\s)", line):
            match = re.match(r"^\s*(?:[-*•]|\d+[.)]|task\s*\d+\s*:)\s*(.*\S)", piece, flags=re.IGNORECASE)
            if match:
                items.append(match.group(1).strip().strip('"').strip())
    return [item for item in items if item]


def normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


@dataclass
class Drops:
    """Counts of dropped generations by reason, and of kept ones."""

    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.reasons[reason] += 1

    def to_dict(self) -> dict:
        return {"kept": self.kept, "dropped": dict(self.reasons)}

    @classmethod
    def from_dict(cls, data: dict) -> Drops:
        return cls(data.get("kept", 0), Counter(data.get("dropped", {})))

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common()) or "none"
        return f"kept {self.kept}; dropped: {dropped}"


def validate(
    fields: dict | None,
    keys: tuple[str, str, str],
    min_words: tuple[int, int, int] = (2, 3, 3),
    max_words: int = 400,
    forbidden: set[str] | None = None,
) -> tuple[dict[str, str] | None, str | None]:
    """Map the generator's ``keys`` (query, positive, negative) to an example, or return the drop reason."""
    if fields is None:
        return None, "no JSON object in the reply"
    values = []
    for key in keys:
        value = fields.get(key)
        if not isinstance(value, str):
            return None, f"missing or non-string field '{key}'"
        value = value.strip()
        if not value:
            return None, "empty field"
        values.append(value)
    for value, least in zip(values, min_words, strict=True):
        words = len(value.split())
        if words < least:
            return None, "too short"
        if words > max_words:
            return None, "too long"
    query, positive, negative = (normalized(v) for v in values)
    if positive == negative:
        return None, "positive equals negative"
    if query in (positive, negative):
        return None, "query copied into a document"
    if forbidden and (query in forbidden or positive in forbidden):
        return None, "copied the prompt's example"
    return {"query": values[0], "positive": values[1], "negatives": [values[2]]}, None
