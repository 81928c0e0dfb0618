"""warden-py: the Cloud Foundry container manager "warden", rebuilt in Python."""

__version__ = "0.1.0"
