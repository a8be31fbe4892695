"""`sertool ingest ...`: read a corpus into the catalog."""

import typer

app = typer.Typer(help="Read a corpus into the catalog.", no_args_is_help=True)
