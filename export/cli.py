"""`auxformer-export` (placeholder until the export issue lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Export a trained AuxFormer to ONNX and TensorRT.", add_completion=False)


@app.command()
def export() -> None:
    """Not built yet."""
    typer.echo("auxformer-export: not built yet")
    raise typer.Exit(2)


def main() -> None:
    app()
