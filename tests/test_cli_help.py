"""The three commands' --help: rendered alike (typer's option panels), and `auxformer-train --help` shows the
options of its default command (--corpus, --demo, --resume), which the README uses without `fit`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from auxformer.export.cli import app as export_app
from auxformer.runtime.cli import app as infer_app
from auxformer.train.cli import app as train_app


def _help(app, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("app", [train_app, infer_app, export_app], ids=["train", "infer", "export"])
def test_every_command_renders_help_in_panels(app):
    text = _help(app)
    assert "╭─ Options" in text and "Usage:" in text


def test_train_help_shows_the_default_commands_options():
    text = _help(train_app)
    for option in ("--corpus", "--demo", "--demo-features", "--resume", "--out", "--epochs"):
        assert f" {option} " in text, option
    assert "fit " in text and "prepare " in text and "protocol " in text  # the subcommands stay listed
    # the default command's usage: `auxformer-train [OPTIONS]`, no subcommand
    usages = [line.strip() for line in text.splitlines() if line.strip().startswith("Usage:")]
    assert len(usages) == 2 and usages[1].endswith(" [OPTIONS]"), usages
