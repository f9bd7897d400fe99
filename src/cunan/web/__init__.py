"""Server-rendered pages (no JavaScript needed), over the same application services as the API."""
