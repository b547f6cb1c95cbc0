"""Ready integrations with agent frameworks. Each imports its framework lazily, so
``import tokensieve`` never pulls one in."""
