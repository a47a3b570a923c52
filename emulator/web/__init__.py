"""The HTTP layer: Starlette routes that parse requests and render answers; no state of its own."""
