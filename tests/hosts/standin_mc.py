"""A stand-in for the `minio/mc` image: `mc mb [--ignore-existing] ALIAS/BUCKET` and the `admin` commands that
make a user with a policy, nothing else.

As mc does, it finds ALIAS's endpoint and credentials in `MC_HOST_<ALIAS>=http://user:password@host:port`,
so the compose file's variable and command are used exactly as written. Run inside the service's host.
`mb` creates the bucket on the S3 server; moto's server has no MinIO admin API, so `admin user add`, `admin
policy create` (the policy document is checked as MinIO would parse it) and `admin policy attach` are
recorded in `mc-admin.json` in the working directory, for tests to read; `admin user info` answers from it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3

STATE = Path("mc-admin.json")


def _alias(name: str) -> Any:
    host = os.environ.get(f"MC_HOST_{name}")
    if not host:
        raise SystemExit(f"mc: <ERROR> no alias {name!r}: MC_HOST_{name} is not set")
    return urlsplit(host)


def make_bucket(argv: list[str]) -> int:
    ignore_existing = "--ignore-existing" in argv or "-p" in argv
    targets = [a for a in argv if not a.startswith("-")]
    if len(targets) != 1 or "/" not in targets[0]:
        print(f"standin mc: expected ALIAS/BUCKET, got {targets}", file=sys.stderr)
        return 2
    alias, bucket = targets[0].split("/", 1)
    url = _alias(alias)
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


def _policy(path: str) -> dict[str, Any]:
    document = json.loads(Path(path).read_text())
    statements = document.get("Statement")
    if document.get("Version") != "2012-10-17" or not isinstance(statements, list) or not statements:
        raise SystemExit(f"mc: <ERROR> {path}: not a policy document")
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny") or not statement.get("Action"):
            raise SystemExit(f"mc: <ERROR> {path}: a statement needs Effect and Action")
        if not statement.get("Resource"):
            raise SystemExit(f"mc: <ERROR> {path}: a statement needs Resource")
    return document


def admin(argv: list[str]) -> int:
    state: dict[str, Any] = json.loads(STATE.read_text()) if STATE.exists() else {"users": {}, "policies": {}}
    words = [a for a in argv if not a.startswith("--")]
    match words:
        case ["user", "add", alias, user, password]:
            _alias(alias)
            state["users"].setdefault(user, {"policies": []})["password"] = password
            print(f"Added user `{user}` successfully.")
        case ["policy", "create", alias, name, path]:
            _alias(alias)
            state["policies"][name] = _policy(path)
            print(f"Created policy `{name}` successfully.")
        case ["policy", "attach", alias, name, user] if "--user" in argv:
            _alias(alias)
            if name not in state["policies"] or user not in state["users"]:
                print(f"mc: <ERROR> no policy {name} or no user {user}", file=sys.stderr)
                return 1
            if name in state["users"][user]["policies"]:
                print("mc: <ERROR> policy change already in effect", file=sys.stderr)
                return 1
            state["users"][user]["policies"].append(name)
        case ["user", "info", alias, user]:
            _alias(alias)
            if user not in state["users"]:
                print(f"mc: <ERROR> no user {user}", file=sys.stderr)
                return 1
            policies = ",".join(state["users"][user]["policies"])
            print(f"AccessKey: {user}\nStatus: enabled\nPolicyName: {policies}")
            return 0
        case _:
            print(f"standin mc: `admin {' '.join(argv)}` is not supported", file=sys.stderr)
            return 2
    STATE.write_text(json.dumps(state))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["mb"]:
        return make_bucket(argv[1:])
    if argv[:1] == ["admin"]:
        return admin(argv[1:])
    print(f"standin mc: only `mb` and the `admin` user/policy commands work here: {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
