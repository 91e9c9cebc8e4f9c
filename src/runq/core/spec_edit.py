"""Edit an endpoint file's text in place: the dashboard's "change active/max workers".

The stored TOML is what a restart serves, so a change is written into that text, keeping the
user's comments and layout; only the two keys of `[scaling]` are touched.
"""

from __future__ import annotations

import re
import tomllib

from runq.errors import SpecError

_HEADER = re.compile(r"^\s*\[\s*scaling\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def check_workers(active: int, maximum: int) -> None:
    """Raises SpecError unless 0 <= active <= maximum and maximum >= 1."""
    if active < 0:
        raise SpecError(f"active workers must be 0 or more, not {active}")
    if maximum < 1:
        raise SpecError(f"max workers must be 1 or more, not {maximum}")
    if active > maximum:
        raise SpecError(f"active workers ({active}) must not exceed max workers ({maximum})")


def set_workers(text: str, active: int, maximum: int) -> str:
    """`text` with `[scaling]` active_workers and max_workers set (the table and keys are
    added when missing).

    Example: 'name = "a"\\n[scaling]\\nmax_workers = 3 # cap\\n' with (1, 5) gives
    'name = "a"\\n[scaling]\\nactive_workers = 1\\nmax_workers = 5\\n'.

    Raises:
        SpecError: bad counts, or a file whose scaling keys this edit cannot reach (a dotted
            key or an inline table): the message says to edit the file and deploy it.
    """
    check_workers(active, maximum)
    wanted = {"active_workers": active, "max_workers": maximum}
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        lines += ["", "[scaling]", *(f"{k} = {v}" for k, v in wanted.items())]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines)
        )
        missing = dict(wanted)
        for i in range(start + 1, end):
            key = lines[i].split("=", 1)[0].strip()
            if key in missing:
                lines[i] = f"{key} = {missing.pop(key)}"
        lines[start + 1 : start + 1] = [f"{k} = {v}" for k, v in missing.items()]
    edited = "\n".join(lines) + "\n"
    try:
        scaling = tomllib.loads(edited).get("scaling", {})
    except ValueError:  # e.g. an inline `scaling = {...}` next to the appended table
        scaling = {}
    if not isinstance(scaling, dict) or {k: scaling.get(k) for k in wanted} != wanted:
        raise SpecError(
            "this endpoint file sets [scaling] in a form the dashboard cannot edit: change "
            "active_workers and max_workers in the file and deploy it again"
        )
    return edited
