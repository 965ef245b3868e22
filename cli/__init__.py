"""The `diarist` command: run the service on one machine or its parts one by one, or submit a file."""
from diarist.cli.main import main

__all__ = ["main"]
