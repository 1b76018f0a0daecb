"""The commands that change the job table beside the running service: `roots accept`
(roots.py), `athletes ...` (athletes.py); and how any command prints a name (terminal.py).
cli.py parses the command line and calls them."""
