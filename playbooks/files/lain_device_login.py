#!/usr/bin/env python3
"""Logs the `lain` CLI in as sso's first admin, approving the device flow
with the admin's password as a browser would.

Run by bootstrap.yml on the control host when lain_cli_login is true, for
lab and test clusters (the Vagrantfile): an operator otherwise runs
`lain login` and approves the code in a browser. The environment selects
the login's config dir and cluster (LAIN_CONFIG_DIR, LAIN_CLUSTER).
Exit status 0 once `lain login` succeeded.
"""

import argparse
import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def approve(uri, code, user, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), NoRedirect
    )
    query = urllib.parse.urlencode({"user_code": code})
    page = opener.open(f"{uri}?{query}", timeout=30).read().decode()
    form = [
        (m.group(1), m.group(2).replace("&amp;", "&"))
        for m in re.finditer(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page
        )
        if m.group(1) != "user_code"
    ]
    form += [
        ("user_code", code),
        ("confirm_code", "yes"),
        ("username", user),
        ("password", password),
        ("action", "approve"),
    ]
    body = urllib.parse.urlencode(form).encode()
    answer = opener.open(uri, body, timeout=30).read().decode()
    if "Device approved" not in answer:
        raise RuntimeError("sso did not approve the login")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lain", required=True, help="the lain binary")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    with open(a.password_file, encoding="utf-8") as f:
        password = f.read().strip()
    login = subprocess.Popen(
        [a.lain, "login", "--no-browser"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + a.timeout
    try:
        # "To log in, open URL and enter the code CODE"
        for line in login.stderr:
            if "enter the code" in line:
                words = line.split()
                approve(words[words.index("open") + 1], words[-1], a.user, password)
                break
        else:
            raise RuntimeError("lain login did not show a code")
        out, err = login.communicate(timeout=max(1, deadline - time.monotonic()))
    except Exception as e:  # noqa: BLE001 - any failure ends the login
        login.kill()
        print(f"cannot log in: {e}", file=sys.stderr)
        return 1
    if login.returncode != 0:
        print(f"lain login failed: {err.strip()}", file=sys.stderr)
        return 1
    print(out.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
