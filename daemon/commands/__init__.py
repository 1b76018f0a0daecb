"""The commands that change the job table beside the running service: `roots accept`
(roots.py), `athletes ...` (athletes.py). cli.py parses the command line and calls them."""
