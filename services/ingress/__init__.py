"""The HTTP ingress (Starlette)."""
