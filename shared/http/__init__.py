"""The HTTP edge every service shares: app factory, error shape, security, OpenAPI."""
