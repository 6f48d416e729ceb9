"""Local, stateful stand-ins for the APIs the recipes talk to (demo sandbox and test servers)."""
