"""Small ASGI guards shared by the web tools (the demo now, the annotation tool next): a request body limit, allowed
hosts, a same-origin check for state-changing requests, bounded slots for heavy work, JSON-safe validation errors."""
