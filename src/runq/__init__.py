"""runq: self-hosted serverless GPU endpoints, wire-compatible with RunPod Serverless."""

__version__ = "0.1.0"
