#!/bin/sh
# The worker: every 30 s, checks that its secret file is there. It says how
# long the secret is, never what it is.
while true; do
  if [ -s /srv/secret/token ]; then
    echo "tidy: token present ($(wc -c < /srv/secret/token) bytes)"
  else
    echo "tidy: no token at /srv/secret/token; set it with: lain secret set token"
  fi
  sleep 30
done
