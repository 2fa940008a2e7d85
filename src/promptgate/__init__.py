"""promptgate: immutable prompt versions, deployment labels and a dependency-aware eval gate."""

__version__ = "0.1.0"
