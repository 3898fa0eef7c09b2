"""``damfleet codec-server``: decode encrypted payloads for the Temporal UI and CLI (:mod:`damfleet.codec`)."""

from __future__ import annotations

import base64
import os
from typing import Annotated

import typer

from damfleet.cli import app
from damfleet.settings import get_settings

__all__ = ["codec_server"]


@app.command("codec-server")
def codec_server(
    listen: Annotated[str, typer.Option(help="host:port (default DAMFLEET_TEMPORAL_CODEC_SERVER_LISTEN)")] = "",
    generate_key: Annotated[bool, typer.Option(help="Print a new key entry for DAMFLEET_TEMPORAL_CODEC_KEYS.")] = False,
) -> None:
    """Serve POST /encode and /decode with the keys in DAMFLEET_TEMPORAL_CODEC_KEYS until Ctrl-C.

    Point the Temporal UI's "Codec Server" setting, or the CLI's ``--codec-endpoint`` (with
    ``--codec-auth "Bearer <DAMFLEET_TEMPORAL_CODEC_SERVER_TOKEN>"``), at it.
    """
    from damfleet.codec import KEYS_SETTING, EncryptionCodec, make_codec_server
    from damfleet.errors import DamfleetError

    if generate_key:
        key_id = f"k{os.urandom(3).hex()}"
        typer.echo(f"{key_id}={base64.b64encode(os.urandom(32)).decode()}")
        raise typer.Exit(0)
    settings = get_settings().temporal
    try:
        codec = EncryptionCodec.from_settings(settings)
    except DamfleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if codec is None:
        typer.echo(f"error: {KEYS_SETTING} is not set: there is nothing to decode with", err=True)
        raise typer.Exit(2)
    token = settings.codec_server_token.get_secret_value()
    if not token:
        typer.echo("warning: DAMFLEET_TEMPORAL_CODEC_SERVER_TOKEN is not set: anyone who reaches this port can "
                   "decode", err=True)
    host, _, port = (listen or settings.codec_server_listen).rpartition(":")
    server = make_codec_server(codec, host or "127.0.0.1", int(port), token=token,
                               allow_origin=settings.codec_server_allow_origin)
    typer.echo(f"codec server on http://{server.server_address[0]}:{server.server_address[1]} "
               "(POST /encode, /decode)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
