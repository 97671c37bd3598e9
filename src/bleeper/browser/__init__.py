"""The text web browser: ``bleeper browse``."""
