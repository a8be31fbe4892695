"""The root command: help is instant and user errors become one line with exit code 2."""

import subprocess
import sys

from typer.testing import CliRunner

from sertool.cli import app


def test_help_lists_command_groups():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "ingest" in result.output and "store" in result.output


def test_help_does_not_import_heavy_libraries():
    code = "import sys; import sertool.cli; print(sorted(m for m in ('torch','transformers','mlflow','zarr') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
