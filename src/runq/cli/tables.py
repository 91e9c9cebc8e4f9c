"""The CLI's listings as tables that stay readable at 80 columns.

Each column says whether it is free text (a reason: it folds onto more lines) and, if it is
not essential, its rank for leaving it out when the terminal is too narrow (the highest rank
goes first). Values of the other columns are never cut: a table that cannot fit them leaves
out optional columns and says which, and `--json` prints everything for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

FOLD_MIN = 12  # free text never narrower than this


@dataclass(frozen=True)
class Column:
    header: str
    drop: int = 0  # 0: always shown; else left out on a narrow terminal, highest first
    fold: bool = False  # free text: folds onto more lines rather than widening the table
    right: bool = False  # numbers: right-aligned


GAP = 3  # between two columns: a space of padding each side and the (blank) rule


def layout(least: Sequence[int], natural: Sequence[int], width: int) -> list[int] | None:
    """Column widths for a table `width` wide: each column at least its `least`, then the
    spare width goes to the columns that want the least more first, up to their `natural`.
    None when even the least widths do not fit.

    >>> layout([8, 4, 12], [8, 10, 40], 40)  # 40 - 2 gaps of 3 = 34; 24 least, 10 spare
    [8, 10, 16]
    >>> layout([30, 30], [30, 30], 40) is None
    True
    """
    available = width - GAP * (len(least) - 1)
    if sum(least) > available:
        return None
    widths = list(least)
    spare = available - sum(least)
    for index in sorted(range(len(least)), key=lambda i: natural[i] - least[i]):
        more = min(spare, natural[index] - widths[index])
        widths[index] += more
        spare -= more
    return widths


def _sizes(
    column: Column, cells: Sequence[str], fold_all: bool
) -> tuple[int, int]:  # (least, natural)
    words = max((len(word) for word in column.header.split()), default=1)
    longest = max((len(cell) for cell in cells), default=0)
    natural = max(len(column.header), longest)
    if column.fold or fold_all:
        return max(words, min(FOLD_MIN, longest)), natural
    return max(words, longest), natural  # a value that must stay whole never wraps


def fitted(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> tuple[Table, list[str]]:
    """The table with as many columns as fit `console`'s width, and the headers left out.
    When even the essential columns do not fit whole, their values fold onto more lines."""
    keep = list(range(len(columns)))
    optional = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop)
    left_out: list[str] = []
    fold_all = False
    while True:
        sizes = [_sizes(columns[i], [row[i] for row in rows], fold_all) for i in keep]
        widths = layout([s[0] for s in sizes], [s[1] for s in sizes], console.width)
        if widths is not None or fold_all:
            break
        if optional:
            dropped = optional.pop(0)
            keep.remove(dropped)
            left_out.append(columns[dropped].header)
        else:
            fold_all = True
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for position, index in enumerate(keep):
        column = columns[index]
        table.add_column(
            column.header,
            overflow="fold",
            justify="right" if column.right else "left",
            width=widths[position] if widths is not None else None,
        )
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    return table, left_out


def show(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
) -> None:
    table, left_out = fitted(console, columns, rows)
    if title:
        table.title = title
    console.print(table)
    if left_out:
        console.print(
            f"({', '.join(left_out)} left out at {console.width} columns: a wider terminal "
            "shows them, --json prints everything)",
            style="dim",
            soft_wrap=False,
        )


def print_json(rows: Any) -> None:
    """Machine-readable: one JSON document on stdout, nothing else."""
    print(json.dumps(rows, indent=2, sort_keys=True))
