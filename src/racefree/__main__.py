"""``python -m racefree`` runs the CLI."""

from racefree.cli import main

raise SystemExit(main())
