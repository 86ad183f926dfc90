"""``python -m datatier`` runs the CLI."""

from datatier.cli import main

raise SystemExit(main())
