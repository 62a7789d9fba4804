"""The server's endpoints, one module per endpoint group, each with a FastAPI ``router``; :data:`ROUTERS` finds
them, so adding an endpoint is one module here (and its test)."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def _discover() -> dict[str, APIRouter]:
    found = {}
    for module_name in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        router = getattr(importlib.import_module(f"{__name__}.{module_name}"), "router", None)
        if router is not None:
            found[module_name] = router
    return found


ROUTERS: dict[str, APIRouter] = _discover()
ROUTES: tuple[str, ...] = tuple(route.path for router in ROUTERS.values() for route in router.routes)
"""Every path served (metrics label the rest ``other``)."""
