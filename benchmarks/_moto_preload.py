"""Benchmark setup: a moto S3 server, served as :mod:`aiolode.testing.moto_server`
serves it (one request at a time), preloaded inside its own process with every
file below a directory::

    python benchmarks/_moto_preload.py ROOT BUCKET

Putting 100,000 objects through moto's HTTP front end takes minutes (it
serialises requests: ~150 puts/s on a busy 2-core machine); putting them into its
backend in-process takes seconds. The objects are then read, listed and deleted
over HTTP like any others. Prints the test server's ready line once listening.
"""

from __future__ import annotations

import os
import sys


def preload(root: str, bucket: str) -> int:
    """Create ``bucket`` and put every file below ``root`` in it (key: the relative
    path); return how many."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        # The FileStore's own bookkeeping (lock stripes) is not an object.
        dirnames[:] = [d for d in dirnames if not d.startswith(".aiolode")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as fh:
                backend.put_object(bucket, key, fh.read())
            n += 1
    return n


if __name__ == "__main__":
    count = preload(sys.argv[1], sys.argv[2])
    print(f"preloaded {count} objects", file=sys.stderr, flush=True)
    from aiolode.testing.moto_server import serve

    serve()
