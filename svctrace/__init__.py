"""svctrace: how a Kubernetes Service is really implemented."""

__version__ = "0.1.0"
