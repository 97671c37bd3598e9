"""Allow ``python -m bleeper``."""

from bleeper.cli import main

raise SystemExit(main())
