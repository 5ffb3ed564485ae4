"""``python -m sbcard`` is the ``sbcard`` command (tests start it as a subprocess this way)."""

from sbcard.cli.main import main

main()
