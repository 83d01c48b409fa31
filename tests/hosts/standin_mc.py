"""A stand-in for the `minio/mc` image: `mc mb [--ignore-existing] ALIAS/BUCKET`, nothing else.

As mc does, it finds ALIAS's endpoint and credentials in `MC_HOST_<ALIAS>=http://user:password@host:port`,
so the compose file's variable and command are used exactly as written. Run inside the service's host.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import unquote, urlsplit

import boto3


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "mb":
        print(f"standin mc: only `mb` is supported, not {argv}", file=sys.stderr)
        return 2
    ignore_existing = "--ignore-existing" in argv or "-p" in argv
    targets = [a for a in argv[1:] if not a.startswith("-")]
    if len(targets) != 1 or "/" not in targets[0]:
        print(f"standin mc: expected ALIAS/BUCKET, got {targets}", file=sys.stderr)
        return 2
    alias, bucket = targets[0].split("/", 1)
    host = os.environ.get(f"MC_HOST_{alias}")
    if not host:
        print(f"mc: <ERROR> no alias {alias!r}: MC_HOST_{alias} is not set", file=sys.stderr)
        return 1
    url = urlsplit(host)
    client = boto3.client(
        "s3",
        endpoint_url=f"{url.scheme}://{url.hostname}:{url.port or 80}",
        aws_access_key_id=unquote(url.username or ""),
        aws_secret_access_key=unquote(url.password or ""),
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket in existing:
        if ignore_existing:
            return 0
        print(f"mc: <ERROR> bucket {bucket} exists", file=sys.stderr)
        return 1
    client.create_bucket(Bucket=bucket)
    print(f"Bucket created successfully `{alias}/{bucket}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
