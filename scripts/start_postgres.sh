#!/usr/bin/env bash
# Make PostgreSQL server binaries available (Debian's postgresql package), idempotent and quick when
# already installed. The audit tests start their own throwaway server from these binaries.
#
#   scripts/start_postgres.sh                 install if missing; print the bin directory
#   scripts/start_postgres.sh --start DIR [PORT]
#                                             also start a throwaway cluster in DIR (as an unprivileged
#                                             user when run as root; DIR's parents must be open to it)
#                                             and print its URL; stop it with
#                                             pg_ctl -D DIR/data -m fast stop
set -euo pipefail

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_postgres() {
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "start_postgres: PostgreSQL is not installed and this user cannot apt-get install it" >&2
            return 1
        fi
    fi
    # no default cluster: tests and --start make their own
    $sudo mkdir -p /etc/postgresql-common
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold postgresql >/dev/null
}

bindir=$(find_bindir) || { install_postgres && bindir=$(find_bindir); } || {
    echo "start_postgres: no PostgreSQL server binaries after install" >&2
    exit 1
}

if [[ "${1:-}" != "--start" ]]; then
    echo "$bindir"
    exit 0
fi

dir=$(realpath -m "${2:?usage: start_postgres.sh --start DIR [PORT]}")
port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
mkdir -p "$dir"
run=()
if [[ $(id -u) -eq 0 ]]; then
    user=postgres
    id -u "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$dir"
    run=(runuser -u "$user" --)
fi
if [[ ! -e "$dir/data/PG_VERSION" ]]; then
    "${run[@]}" "$bindir/initdb" -D "$dir/data" -U credo --auth=trust -E UTF8 --no-locale >/dev/null
fi
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
echo "postgresql://credo@127.0.0.1:$port/postgres"
