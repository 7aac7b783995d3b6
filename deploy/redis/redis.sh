#!/usr/bin/env bash
# A local Redis server on loopback (Debian's redis-server, installed when missing).
#
#   deploy/redis/redis.sh up      start it (or find it running) and print its URL
#   deploy/redis/redis.sh down    stop the server this script started
#   deploy/redis/redis.sh status  print the URL if a server answers
#
# State lives under $GRADESTREAM_LOCAL/redis (default <repo>/.local, git-ignored).
# No persistence: the Redis view is rebuilt from the customer-grades topic.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
local_dir=${GRADESTREAM_LOCAL:-$repo/.local}
home="$local_dir/redis"
port=${REDIS_PORT:-6379}
url="redis://127.0.0.1:$port/0"
pidfile="$home/redis.pid"

log() { echo "redis: $*" >&2; }

ensure_server() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  log "installing redis-server from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # Debian's package may start a system service on 6379; ours is the one we manage.
  if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
}

answers() { redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; }

up() {
  ensure_server
  if answers; then
    log "already answering on port $port"
    echo "$url"
    return 0
  fi
  mkdir -p "$home"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$pidfile" \
    --dir "$home" --logfile "$home/redis.log" --save "" --appendonly no
  for _ in $(seq 1 50); do
    if answers; then
      log "started on port $port"
      echo "$url"
      return 0
    fi
    sleep 0.1
  done
  log "no answer after 5 s; see $home/redis.log"
  exit 1
}

down() {
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "stopped"
  else
    log "not running (or not started by this script)"
  fi
  rm -f "$pidfile"
}

status() {
  if command -v redis-cli >/dev/null 2>&1 && answers; then echo "$url"; else log "not running"; exit 1; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
