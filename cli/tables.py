"""Tables that stay readable at the terminal's width (80 columns and up).

Rich squeezes every column of a table that is too wide, down to ``…``: an id, a state or
an actor shown as one character. A ``FittedTable`` decides when it is printed, at the
console's width: key columns are never wrapped nor cut (they are as wide as their
longest value), the other columns fold, and when that does not fit, the least useful
columns are left out (lowest ``drop`` first), which the caption says; ``--json`` has
everything. Key values too long for the width even alone fold rather than be cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "FittedTable"]

_FOLDED_WIDTH = 10
"""The narrowest a folding column is planned at (a date, a short name on one line)."""


@dataclass(frozen=True)
class Column:
    header: str
    key: bool = False
    """A key column: never left out, never wrapped, never cut."""
    drop: int = 0
    """Above 0: may be left out at narrow widths, the lowest first."""
    justify: JustifyMethod = "left"
    style: str = ""


class FittedTable:
    """A rich renderable: a ``Table`` of the columns that fit the width it is printed at."""

    def __init__(self, title: str, columns: Sequence[Column]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        """Cells are rich markup (escape values), one per column."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def _widths(self) -> list[int]:
        """The width each column is planned at: its longest value, a folding one at most
        ``_FOLDED_WIDTH``."""
        widths = []
        for index, column in enumerate(self.columns):
            cells = [Text.from_markup(row[index]).cell_len for row in self.rows]
            longest = max([Text(column.header).cell_len, *cells])
            widths.append(longest if column.key else min(longest, _FOLDED_WIDTH))
        return widths

    def table(self, width: int) -> Table:
        """The table for a console ``width`` columns wide."""
        widths = self._widths()
        shown = list(range(len(self.columns)))
        droppable = sorted(
            (i for i, column in enumerate(self.columns) if column.drop > 0 and not column.key),
            key=lambda i: self.columns[i].drop,
        )
        for index in droppable:
            # Each column adds its two padding cells and a border; the table one more border.
            if sum(widths[i] + 3 for i in shown) + 1 <= width:
                break
            shown.remove(index)
        left_out = [self.columns[i].header for i in range(len(self.columns)) if i not in shown]
        # Key values longer than the whole width allows fold too: wrapped, never cut.
        whole = sum(widths[i] + 3 for i in shown if self.columns[i].key) + 1 <= width
        table = Table(title=self.title, title_justify="left")
        if left_out:
            table.caption = f"left out at this width: {', '.join(left_out)} (--json has all)"
            table.caption_justify = "left"
        for index in shown:
            unwrapped = self.columns[index].key and whole
            table.add_column(
                self.columns[index].header,
                justify=self.columns[index].justify,
                style=self.columns[index].style or None,
                no_wrap=unwrapped,
                min_width=widths[index] if unwrapped else None,
                overflow="ellipsis" if unwrapped else "fold",
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table
