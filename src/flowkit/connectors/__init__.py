"""Connector plugins: the SDK (`base`), the registry and the built-in connectors."""
