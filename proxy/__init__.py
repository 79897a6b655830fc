"""Liquid Memory proxy: OpenAI-compatible long-document compression (see proxy/README.md).

Serve with `liquid-memory-proxy [--host 127.0.0.1] [--port 8000]`; build the ASGI app with
`liquid_memory_proxy.app.create_app()`. Kept import-light: nothing heavy is imported here.
"""

__version__ = "0.1.0"
