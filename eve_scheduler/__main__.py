"""``python -m eve_scheduler demo``: the same commands as the ``eve-scheduler`` script."""

from eve_scheduler.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
