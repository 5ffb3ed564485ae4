"""``python -m sbcard`` is the ``sbcard`` command (tests start it as a subprocess this way)."""

from sbcard.cli.main import main

if __name__ == "__main__":  # not when a worker process (the simulator's set-up) imports it
    main()
