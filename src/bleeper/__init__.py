"""Bleeper: robust, auditable real-time messaging for clinical teams."""

__version__ = "0.1.0"
