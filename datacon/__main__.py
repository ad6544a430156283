"""``python -m datacon``: the ``datacon`` command."""

from datacon.cli import main

if __name__ == "__main__":
    main()
