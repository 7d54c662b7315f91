"""``python -m sessionhub``: the command-line interface."""

from sessionhub.cli import main

raise SystemExit(main())
