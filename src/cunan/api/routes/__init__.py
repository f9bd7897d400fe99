"""The API routers, one module per area; each handler calls one application service."""
