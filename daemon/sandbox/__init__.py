"""The built-in sandbox: a local stand-in for the Uplift API and its S3 upload endpoint."""
