"""`auxformer-infer` (placeholder until the runtime issue lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Batched emotion recognition on video clips with an exported AuxFormer.", add_completion=False)


@app.command()
def infer() -> None:
    """Not built yet."""
    typer.echo("auxformer-infer: not built yet")
    raise typer.Exit(2)


def main() -> None:
    app()
