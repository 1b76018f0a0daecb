"""uplift-capture-daemon: watch capture folders, reserve captures, upload .mov files."""

__version__ = "0.1.0"
