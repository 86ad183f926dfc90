"""``python -m datatier`` runs the CLI."""

from datatier.cli import entry

entry()
