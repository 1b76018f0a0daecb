"""The network: API client, uploader, and the one place clients are built (proxy, trust,
deadlines, sockets). Called by the workers; owns no threads."""
