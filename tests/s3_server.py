"""Placeholder: the moto S3 server fixture lives here (filled by the S3 adapter work)."""
