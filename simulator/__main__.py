"""``python -m simulator`` does what the ``spinesim`` console script does."""

from simulator.cli import main

raise SystemExit(main())
