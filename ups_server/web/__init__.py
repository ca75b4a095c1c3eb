"""The HTTP adapter: Starlette routes that parse requests, call the services and map outcomes."""
