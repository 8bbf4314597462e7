"""coplay's shared core: frames, topics, config, tokens, the MQTT link, the relay service."""

__version__ = "0.1.0"
