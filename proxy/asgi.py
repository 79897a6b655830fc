"""Module-level ASGI app for `uvicorn liquid_memory_proxy.asgi:app` (settings from the environment)."""

from liquid_memory_proxy.app import create_app

app = create_app()
