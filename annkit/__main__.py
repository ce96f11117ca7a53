"""``python -m annkit``: the same as the ``annkit`` command."""

from annkit.cli.main import main

if __name__ == "__main__":
    main()
