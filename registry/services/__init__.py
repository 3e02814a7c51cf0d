"""The rules of the registry: services take a session, a blob store and settings."""
