"""`tripsage keys ...`: maintenance of the users' stored API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from core.crypto import ROTATE_BATCH_SIZE, keyring_for, rotate_all
from tripsage.cli.support import DEFAULT_DATA_DIR, DataDir, run_with_engine

app = typer.Typer(help="Stored API keys (encrypted with TRIPSAGE_ENCRYPTION_KEYS).", no_args_is_help=True)


@app.command()
def rotate(
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Keys per transaction.")] = (
        ROTATE_BATCH_SIZE
    ),
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Re-encrypt every stored API key with the first of TRIPSAGE_ENCRYPTION_KEYS.

    Put the new key first and keep the old ones after it; once this reports no failures, the
    old keys can be removed from the configuration.
    """
    result = run_with_engine(
        data_dir, lambda settings, engine: rotate_all(engine, keyring_for(settings), batch_size=batch_size), redis=False
    )
    typer.echo(f"re-encrypted {result.rotated} key(s) with the first configured key")
    if result.failed:
        typer.echo(f"{len(result.failed)} key(s) open with none of the configured keys:", err=True)
        for key_id in result.failed:
            typer.echo(f"  {key_id}", err=True)
        raise typer.Exit(code=1)
