"""The HTTP API (FastAPI): thin routers over the application services, with sessions and roles."""
