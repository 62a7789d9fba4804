"""``llembed serve --ray-replicas N``: the same FastAPI app as a Ray Serve deployment of N replicas.

Each replica builds the whole app from an :class:`AppSpec` (its own model copy and its own dynamic batcher), so
a replica behaves exactly like a one-process server; Ray Serve's proxy spreads requests across replicas. A
replica accepts up to ``max_ongoing_requests`` at once so that its batcher has company to merge.
"""

from __future__ import annotations

from llembed.errors import InputError
from llembed.integrations.ray import ensure_ray
from llembed.serving.assembly import AppSpec, build_app

APP_NAME = "llembed"


class LlembedReplica:
    """One replica: the app is built inside the replica process (``__serve_build_asgi_app__``), not pickled."""

    def __init__(self, spec: AppSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.spec = spec

    def __serve_build_asgi_app__(self):
        return build_app(self.spec)


def deploy(
    spec: AppSpec,
    replicas: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_replica: float = 1.0,
    max_ongoing_requests: int = 64,
):
    """Start (or join, with ``address``) Ray, and run ``replicas`` replicas of the app behind Serve's HTTP proxy
    at ``host:port``. Returns when every replica is up; the deployment lives until :func:`shutdown`."""
    from ray import serve

    if replicas < 1:
        raise InputError(f"--ray-replicas must be at least 1, not {replicas}")
    ensure_ray(address, num_cpus)
    serve.start(http_options={"host": host, "port": port})
    deployment = serve.deployment(
        serve.ingress()(LlembedReplica),
        name=APP_NAME,
        num_replicas=replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": cpus_per_replica},
    )
    threads = max(1, int(cpus_per_replica))
    serve.run(deployment.bind(spec, threads), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def running_replicas() -> int:
    from ray import serve

    status = serve.status().applications[APP_NAME].deployments[APP_NAME]
    return int(status.replica_states.get("RUNNING", 0))


def shutdown() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
