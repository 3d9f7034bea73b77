"""Model → rich renderables (text) or plain dicts (JSON/YAML); never prints."""
