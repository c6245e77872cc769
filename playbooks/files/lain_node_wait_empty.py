#!/usr/bin/env python3
"""Waits until no instance of any app is on a lain node.

Run by remove-node.yml on the control host, with the environment of the
admin's `lain` login. Every second it asks console, through the `lain` CLI,
for the node list (the node's instance count) and for every app's status
(each instance record names its node), and prints what is left when the
time is up. Exit status: 0 once the node is empty, 1 on timeout or error.
"""

import argparse
import json
import subprocess
import sys
import time


def lain(cli, *args):
    out = subprocess.run(
        [cli, *args, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def left_on(cli, node):
    """Instances still placed on `node`, as `app/proc#number (state)`."""
    left = []
    for entry in lain(cli, "node", "list"):
        if entry["name"] == node and entry.get("instances", 0) > 0:
            left.append(f"{entry['instances']} instance(s) counted on the node")
    for app in lain(cli, "app", "list"):
        status = lain(cli, "ps", "--app", app["name"])
        for proc in status.get("procs", []):
            for i in proc.get("instances", []):
                if i.get("node") == node:
                    left.append(f"{app['name']}/{proc['proc']}#{i['number']} ({i['state']})")
    return left


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lain", required=True, help="the lain binary")
    p.add_argument("--node", required=True)
    p.add_argument("--timeout", type=float, required=True, help="seconds")
    a = p.parse_args()
    deadline = time.monotonic() + a.timeout
    left = ["(not checked yet)"]
    while time.monotonic() < deadline:
        try:
            left = left_on(a.lain, a.node)
        except (subprocess.SubprocessError, ValueError, KeyError) as e:
            left = [f"cannot ask console: {e}"]
        if not left:
            print(f"node {a.node} runs no instance")
            return 0
        time.sleep(1)
    print(
        f"node {a.node} still has instances after {a.timeout:.0f} s: "
        + ", ".join(left[:20])
        + " (is there room elsewhere? `lain node list`, `lain ps --app APP`)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
