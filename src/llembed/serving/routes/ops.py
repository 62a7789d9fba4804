"""Operations: the web playground (``/``), ``/health`` and Prometheus ``/metrics``."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def playground() -> str:
    return resources.files("llembed.serving").joinpath("static/playground.html").read_text(encoding="utf-8")


@router.get("/health")
def health(request: Request) -> dict:
    server = request.app.state.server
    return {
        "status": "ok",
        "models": list(server.models),
        "indexes": list(server.indexes),
        "rerankers": list(server.rerankers),
    }


@router.get("/metrics")
def prometheus(request: Request) -> Response:
    metrics = request.app.state.server.metrics
    return Response(metrics.render(), media_type=metrics.content_type)
