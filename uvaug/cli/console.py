"""What every command shares: the console, one-line usage errors, the progress bar and the summary table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)

#: ``--workers`` of the stages that fan images out to worker processes (fit, render); None = CPU cores.
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", help="Worker processes \\[default: CPU cores].", min=1, show_default=False
    ),
]
USAGE_ERROR = 2


def reflow(epilog: str) -> str:
    """A help epilog with each prose paragraph on one line, so the terminal wraps it at its own width.

    Typer keeps single line breaks in rich markup mode: prose wrapped at the source's 110 columns comes out
    ragged in an 80-column terminal. Paragraphs with an indented line (the examples) keep their breaks.
    """
    paragraphs = epilog.strip("\n").split("\n\n")
    return "\n\n".join(
        p if any(line[:1].isspace() for line in p.splitlines()) else " ".join(p.split("\n"))
        for p in paragraphs
    )


def fail(message: str) -> NoReturn:
    """Stop with a one-line message and exit status 2 (bad usage or input that cannot be run at all)."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(USAGE_ERROR)


class RateColumn(TextColumn):
    """Items per second, the figure dataset users plan with."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # type: ignore[override]
        speed = task.finished_speed or task.speed
        return f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s"


def progress_bar(unit: str = "img") -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def summary_table(title: str, rows: Mapping[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def default_output(source: Path, suffix: str) -> Path:
    """``photos/`` -> ``photos-fit/`` beside it; ``a.jpg`` -> ``a-fit/``; ``list.txt`` -> ``list-fit/``."""
    source = source.resolve() if str(source) in ("", ".") else source
    base = source.name if source.is_dir() else source.stem
    return source.parent / f"{base}-{suffix}"
