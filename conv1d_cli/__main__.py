"""``python -m conv1d_cli`` runs the ``conv1d`` command line."""

from conv1d_cli.cli import cli

if __name__ == "__main__":
    cli(prog_name="conv1d")
