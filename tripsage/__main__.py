"""`python -m tripsage …`: the `tripsage` console script."""

from __future__ import annotations

from tripsage.cli import main

if __name__ == "__main__":
    main()
