#!/usr/bin/env bash
# A local single-node Apache Kafka (KRaft) run from Apache Kafka's own jars, without Docker.
#
#   deploy/kafka/kafka.sh up      install Java/Maven if missing, fetch the jars once, format, start, wait
#   deploy/kafka/kafka.sh down    stop the broker this script started (no process is left behind)
#   deploy/kafka/kafka.sh status  print the bootstrap address if the broker answers
#
# Everything lives under $GRADESTREAM_LOCAL (default: <repo>/.local, git-ignored):
# libs/ (cached jars), data/, logs/, broker.pid. Every step is idempotent: a second `up`
# reuses the cached jars, the formatted storage and an already running broker.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
local_dir=${GRADESTREAM_LOCAL:-$repo/.local}
home="$local_dir/kafka"
libs="$home/libs"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
host=127.0.0.1
bootstrap="$host:$port"
pidfile="$home/broker.pid"

log() { echo "kafka: $*" >&2; }

ensure_tools() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_jars() {
  # The marker names the pom's checksum, so a version bump in pom.xml refetches.
  local sum marker
  sum=$(sha256sum "$here/pom.xml" | cut -c1-16)
  marker="$libs/.complete-$sum"
  [[ -f $marker ]] && return 0
  ensure_tools
  log "resolving Apache Kafka's jars from Maven Central (once)"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >"$local_dir/mvn.log" 2>&1 \
    || { log "maven failed; see $local_dir/mvn.log"; tail -n 20 "$local_dir/mvn.log" >&2; exit 1; }
  touch "$marker"
}

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

write_config() {
  mkdir -p "$home/data" "$home/logs"
  cat >"$home/server.properties" <<CONF
# Single-node KRaft: this process is broker and controller at once.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$controller_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$bootstrap
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$home/data
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
num.partitions=4
# Consumer groups form at once instead of waiting 3 s for more members (faster tests).
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
CONF
  cat >"$home/log4j.properties" <<CONF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$home/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
CONF
}

up() {
  if running_pid >/dev/null && answers; then
    log "already running at $bootstrap"
    echo "$bootstrap"
    return 0
  fi
  if answers; then
    log "port $port is taken by another process; set KAFKA_PORT or KAFKA_BOOTSTRAP_SERVERS"
    exit 1
  fi
  ensure_jars
  write_config
  local cp="$libs/*"
  local jvm=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$home/log4j.properties" "-Dkafka.logs.dir=$home/logs")
  if [[ ! -f $home/data/meta.properties ]]; then
    # --cluster-id=ID, not -t ID: an id may start with "-" (base64url), which the tool
    # would read as an option and fail on (a cluster.id written before the fix below).
    java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format \
      "--cluster-id=$(cat "$home/cluster.id" 2>/dev/null || uuidgen_short | tee "$home/cluster.id")" \
      -c "$home/server.properties" --ignore-formatted >"$home/logs/format.log" 2>&1
  fi
  nohup java "${jvm[@]}" -cp "$cp" kafka.Kafka "$home/server.properties" \
    >"$home/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if grep -q "Kafka Server started" "$home/logs/server.log" 2>/dev/null && answers; then
      log "started (pid $(cat "$pidfile")) at $bootstrap; logs in $home/logs"
      echo "$bootstrap"
      return 0
    fi
    if ! running_pid >/dev/null; then
      log "the broker exited; last lines of its log:"
      tail -n 30 "$home/logs/stdout.log" "$home/logs/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
  log "no answer after 60 s; see $home/logs"
  exit 1
}

# Kafka wants a base64url UUID as cluster id; StorageTool can make one, but that is a
# second JVM start, so derive it from the kernel's random UUID instead.
# One in 64 such ids starts with "-": draw again, so no tool can take it for an option.
uuidgen_short() {
  python3 -c 'import base64,uuid
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(i)'
}

down() {
  local pid
  if ! pid=$(running_pid); then
    log "not running"
    rm -f "$pidfile"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "did not stop in 30 s; killing"
    kill -9 "$pid"
  fi
  rm -f "$pidfile"
  log "stopped"
}

status() {
  if answers; then echo "$bootstrap"; else log "not running"; exit 1; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  jars) ensure_jars ;;
  *) echo "usage: $0 up|down|status|jars" >&2; exit 2 ;;
esac
