"""``python -m damfleet.ai.probe``: the Kubernetes exec probe of a TLS-secured inference service.

Kubernetes' built-in ``grpc:`` probe speaks plaintext only, so once the service serves TLS
(``DAMFLEET_AI_INFERENCE_TLS_CERT_PATH``) the pod probes itself with this command instead. It
checks what a real caller needs, with the caller's settings from the pod's environment:

1. the TLS handshake, trusting ``DAMFLEET_AI_INFERENCE_TLS_CA_PATH`` and expecting
   ``DAMFLEET_AI_INFERENCE_TLS_SERVER_NAME`` (the Service name in the certificate: the probe
   dials the loopback address, not that name), with ``DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH``
   / ``_KEY_PATH`` when the service requires client certificates;
2. ``grpc.health.v1.Health/Check`` for ``damfleet.v1.Inference`` is ``SERVING``;
3. ``damfleet.v1.Inference/Health`` answers, sent with ``DAMFLEET_AI_INFERENCE_TOKEN`` (a service that
   requires a token refuses a probe without it or with a wrong one).

It imports grpc, the two stubs and damfleet's settings and security helpers only (no models,
no typer): ``damfleet inference health`` does the same checks but takes about 1.5 s and 100 MB,
which an exec probe pays inside the pod's memory limit every few seconds.

``--liveness`` counts ``RESOURCE_EXHAUSTED`` as alive: the server answered over TLS and is only
busy (damfleet's service never counts health calls against ``DAMFLEET_AI_INFERENCE_MAX_WORKERS``,
but a gRPC proxy or transport limit in front of it may), and restarting a pod for being busy would
kill the calls it is serving.

Exit status 0 = healthy; 1 = not healthy (one line on stderr says why); 2 = bad settings.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from damfleet.ai.security import call_metadata, channel_credentials, channel_options
from damfleet.errors import DamfleetError
from damfleet.settings import AISettings, SettingsError, load_settings
from damfleet.v1 import inference_pb2, inference_pb2_grpc

__all__ = ["SERVICE_NAME", "check", "main"]

#: The name the service registers in grpc.health.v1 (damfleet.ai.server.SERVICE_NAME; not imported
#: from there, which would load the model code).
SERVICE_NAME = "damfleet.v1.Inference"


def _local_address(listen: str) -> str:
    """The loopback address of the port this pod's service listens on (``0.0.0.0:50051`` -> ``127.0.0.1:50051``)."""
    _host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise SettingsError(f"DAMFLEET_AI_INFERENCE_LISTEN must be host:port, got {listen!r}")
    return f"127.0.0.1:{port}"


def check(address: str, ai: AISettings, *, timeout: float, liveness: bool = False) -> str | None:
    """Probe the service at ``address`` as a client with ``ai``'s settings; ``None`` if healthy, else why not.

    ``timeout`` bounds both calls together (a probe must answer within the kubelet's timeoutSeconds).
    """
    deadline = time.monotonic() + timeout
    credentials = channel_credentials(ai)
    options = channel_options(ai)
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials is not None
               else grpc.insecure_channel(address, options=options))
    try:
        with channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout, wait_for_ready=False)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return f"{SERVICE_NAME} is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
            # Always made, with the token when one is set: a service that requires a token then
            # fails a probe that has none or the wrong one (grpc.health.v1 alone is exempt from it).
            inference_pb2_grpc.InferenceStub(channel).Health(
                inference_pb2.HealthRequest(), timeout=max(0.1, deadline - time.monotonic()), metadata=call_metadata(ai))
    except grpc.RpcError as exc:
        code = exc.code()
        if liveness and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return None
        return f"{address}: {code.name}: {exc.details() or ''}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m damfleet.ai.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="", help="host:port (default: loopback, port of DAMFLEET_AI_INFERENCE_LISTEN)")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline of the whole check, seconds")
    parser.add_argument("--liveness", action="store_true", help="a busy service (RESOURCE_EXHAUSTED) counts as alive")
    args = parser.parse_args(argv)
    try:
        ai = load_settings().ai
        address = args.address or _local_address(ai.inference_listen)
        problem = check(address, ai, timeout=args.timeout, liveness=args.liveness)
    except (SettingsError, DamfleetError) as exc:
        print(f"inference probe: {exc}", file=sys.stderr)
        return 2
    if problem:
        print(f"inference probe: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
