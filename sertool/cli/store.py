"""`sertool store ...`: inspect and query the feature store."""

import typer

app = typer.Typer(help="Inspect and query the feature store.", no_args_is_help=True)
