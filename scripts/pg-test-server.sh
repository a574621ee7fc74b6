#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for bma's tests and benches.
#
#   eval "$(scripts/pg-test-server.sh start)"   # exports BMA_TEST_POSTGRES, BMA_PG_DIR
#   ... cargo test --test postgres ...
#   scripts/pg-test-server.sh restart "$BMA_PG_DIR"   # (the fault tests do this themselves)
#   scripts/pg-test-server.sh stop "$BMA_PG_DIR"
#
# `start` installs Debian's `postgresql` with apt-get when no server binaries are
# found (CI starts from a clean image), creates a data directory under a temporary
# directory, starts the server on 127.0.0.1 on a free port with trust
# authentication, creates the database `bma`, and prints shell `export` lines.
# The server also speaks TLS (plain connections are still accepted): `openssl` makes a
# throwaway CA, a server certificate it signs for the name `localhost` only (not
# 127.0.0.1, so that `verify-full` by address fails and by name passes), and a second,
# unrelated CA; under $BMA_PG_DIR/tls/: ca.crt, wrong-ca.crt (tests/postgres_tls.rs).
#   BMA_TEST_POSTGRES  postgres://bma@127.0.0.1:PORT/bma
#   BMA_PG_DIR         the temporary directory (data, log, socket)
#   BMA_PG_CTL         a command that runs pg_ctl as the server's owner:
#                      `$BMA_PG_CTL restart -D $BMA_PG_DIR/data -m fast -w`
# Everything except the export lines goes to stderr. PostgreSQL refuses to run as
# root, so as root the server runs as the `postgres` user (created by the package).
set -euo pipefail

die() { echo "pg-test-server: $*" >&2; exit 1; }

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_server() {
  echo "pg-test-server: no PostgreSQL server found; installing Debian's postgresql" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
}

# The test CA, the server's certificate and an unrelated CA, in "$1" (EC P-256, 30 days).
make_certs() {
  local d="$1"
  command -v openssl >/dev/null 2>&1 || {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >&2
  }
  mkdir -p "$d"
  local ca
  for ca in ca wrong-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=bma test $ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$d/$ca.key" -out "$d/$ca.crt" >/dev/null 2>&1 || die "openssl could not make the $ca certificate"
  done
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 || die "openssl could not make the server key"
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/server.ext" -out "$d/server.crt" >/dev/null 2>&1 || die "openssl could not sign the server certificate"
  rm -f "$d/server.csr" "$d/server.ext" "$d/ca.key" "$d/wrong-ca.key"
  chmod 600 "$d/server.key"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$d/server.key" "$d/server.crt"; fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Runs a command as the server's owner (the `postgres` user when we are root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

cmd_start() {
  local bindir
  bindir="$(find_bindir)" || { install_server; bindir="$(find_bindir)" || die "postgresql installed but initdb not found"; }
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/bma-pg.XXXXXX")"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run the server as"
    chown postgres "$dir"
    chmod 755 "$dir"
  fi
  make_certs "$dir/tls"
  local port
  port="$(free_port)"
  as_owner "$bindir/initdb" -D "$dir/data" -U bma --auth=trust --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  # Small and fast: no fsync (a test server), enough connections for 8 workers x N threads.
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
CONF
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2 \
    || { cat "$dir/server.log" >&2; die "the server did not start"; }
  as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U bma bma >&2 || die "createdb failed"
  local ctl
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then ctl="runuser -u postgres -- $bindir/pg_ctl"; else ctl="su postgres -c $bindir/pg_ctl"; fi
  else
    ctl="$bindir/pg_ctl"
  fi
  echo "pg-test-server: PostgreSQL ($("$bindir/postgres" --version)) on 127.0.0.1:$port, data in $dir" >&2
  echo "export BMA_TEST_POSTGRES='postgres://bma@127.0.0.1:$port/bma'"
  echo "export BMA_PG_DIR='$dir'"
  echo "export BMA_PG_CTL='$ctl'"
}

cmd_stop() {
  local dir="${1:-${BMA_PG_DIR:-}}"
  [ -n "$dir" ] || die "stop: give the directory printed by start (BMA_PG_DIR)"
  [ -d "$dir/data" ] || die "stop: $dir/data is not a data directory"
  local bindir
  bindir="$(find_bindir)" || die "no pg_ctl found"
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
}

cmd_restart() {
  local dir="${1:-${BMA_PG_DIR:-}}"
  [ -n "$dir" ] || die "restart: give the directory printed by start (BMA_PG_DIR)"
  local bindir
  bindir="$(find_bindir)" || die "no pg_ctl found"
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w restart >&2
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  *) echo "usage: $0 start | stop [DIR] | restart [DIR]" >&2; exit 2 ;;
esac
