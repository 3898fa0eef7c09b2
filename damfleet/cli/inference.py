"""``damfleet inference serve`` and ``damfleet inference health``: the gRPC inference service.

Run the service on a GPU machine and point CPU-only AI workers at it with
``DAMFLEET_AI_INFERENCE_URL=host:port``; it loads the configured models once at start
and serves ``damfleet.v1.Inference`` plus the standard ``grpc.health.v1.Health``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Annotated

import typer

from damfleet.cli import app
from damfleet.errors import DamfleetError
from damfleet.settings import get_settings

__all__ = ["inference_app"]

inference_app = typer.Typer(
    help="The gRPC inference service hosting the whisper and YOLO models.", no_args_is_help=True
)
app.add_typer(inference_app, name="inference")


@inference_app.command("serve")
def serve(
    listen: Annotated[
        str, typer.Option(help="host:port to listen on (default DAMFLEET_AI_INFERENCE_LISTEN)")
    ] = "",
    grace_seconds: Annotated[float, typer.Option(help="seconds in-flight calls get on SIGTERM")] = 30.0,
) -> None:
    """Load the models and serve until SIGTERM/SIGINT."""
    from damfleet.ai.server import serve as serve_forever

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )
    try:
        asyncio.run(serve_forever(settings, listen=listen or None, grace_seconds=grace_seconds))
    except DamfleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@inference_app.command("health")
def health(
    url: Annotated[str, typer.Option(help="host:port (default DAMFLEET_AI_INFERENCE_URL)")] = "",
) -> None:
    """Print the service's models as JSON; exit 0 only when it is SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from damfleet.ai.security import call_metadata, channel_credentials, channel_options
    from damfleet.ai.server import SERVICE_NAME
    from damfleet.v1 import inference_pb2, inference_pb2_grpc

    ai = get_settings().ai
    target = url or ai.inference_url
    if not target:
        typer.echo("error: no --url and no DAMFLEET_AI_INFERENCE_URL", err=True)
        raise typer.Exit(2)
    credentials = channel_credentials(ai)
    options = channel_options(ai)
    try:
        with (grpc.secure_channel(target, credentials, options=options) if credentials is not None
              else grpc.insecure_channel(target, options=options)) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10
            )
            models = inference_pb2_grpc.InferenceStub(channel).Health(
                inference_pb2.HealthRequest(), timeout=10, metadata=call_metadata(ai))
    except grpc.RpcError as exc:
        typer.echo(json.dumps({"url": target, "serving": False, "error": exc.code().name,
                               "detail": exc.details() or ""}))
        raise typer.Exit(1) from exc
    serving = status.status == health_pb2.HealthCheckResponse.SERVING
    typer.echo(json.dumps({
        "url": target,
        "serving": serving,
        "version": models.version,
        "models": [
            {"name": m.name, "source": m.source, "configured": m.configured, "loaded": m.loaded,
             "load_seconds": round(m.load_seconds, 3)}
            for m in models.models
        ],
    }))
    sys.stdout.flush()
    raise typer.Exit(0 if serving else 1)
