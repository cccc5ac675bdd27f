#!/usr/bin/env bash
# A throwaway Apache Kafka broker for tests and the demo: one node in KRaft mode
# (broker and controller in one JVM, no ZooKeeper), from the jars of Maven Central.
#
#   scripts/kafka.sh fetch       downloads the pinned Kafka jars (and their dependencies)
#                                into .cache/kafka/VERSION/ (gitignored) unless they are
#                                there; prints that folder. Needs Maven (`mvn`).
#   scripts/kafka.sh start DIR   formats a log folder in DIR and starts the broker there,
#                                listening on 127.0.0.1 on a free port, waits until it
#                                accepts connections and prints only its bootstrap address
#                                on stdout, e.g. 127.0.0.1:54321
#                                (if it is already running there, prints it again)
#   scripts/kafka.sh restart DIR stops the broker of DIR and starts it again on the same port
#                                with the same data (tests of a broker restart)
#   scripts/kafka.sh stop DIR    stops it and removes DIR
#
# Java 17 (openjdk-17-jre-headless) runs it. KAFKA_JARS=DIR uses jars from DIR instead.
set -euo pipefail

name=kafka.sh
marker=.stratalake-kafka
version=4.1.1  # Apache Kafka, pinned; org.apache.kafka:kafka_2.13 on Maven Central
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/server_common.sh
source "$(dirname "$0")/server_common.sh"

jar_dir() { echo "${KAFKA_JARS:-$root/.cache/kafka/$version}"; }

fetch() {
  local jars
  jars="$(jar_dir)"
  if [[ -f "$jars/kafka_2.13-$version.jar" || -n "${KAFKA_JARS:-}" ]]; then
    echo "$jars"
    return
  fi
  command -v mvn >/dev/null ||
    die "mvn not found; install Debian's 'maven' package (scripts/bootstrap.sh does)"
  local work
  work="$(mktemp -d)"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stratalake</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
</project>
EOF
  mkdir -p "$jars.tmp"
  if ! mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$jars.tmp" >&2; then
    rm -rf "$work" "$jars.tmp"
    die "could not fetch Kafka $version from Maven Central"
  fi
  rm -rf "$work" "$jars"
  mv "$jars.tmp" "$jars"
  echo "$jars"
}

# The pid in DIR/kafka.pid when that process is a live Kafka JVM of DIR.
server_pid() {
  local pid
  [[ -f "$dir/kafka.pid" ]] || return 1
  pid="$(cat "$dir/kafka.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    grep -q "kafka.Kafka" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

is_running() {
  [[ -f "$dir/port" ]] && server_pid >/dev/null && port_in_use "$(cat "$dir/port")"
}

start() {
  command -v java >/dev/null ||
    die "java not found; install 'openjdk-17-jre-headless' (scripts/bootstrap.sh does)"
  local jars
  jars="$(fetch)"
  claim_dir
  if is_running; then
    echo "127.0.0.1:$(cat "$dir/port")"
    return
  fi
  local cp="$jars/*"
  # Small heap, serial GC and C1 only: a test broker starts in about 2 s on 2 cores.
  local jvm=(java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
             -Djava.awt.headless=true -cp "$cp")
  local attempt port cport i cluster
  for attempt in 1 2 3 4 5; do
    port="$(random_free_port)"
    cport="$(random_free_port)"
    [[ "$cport" != "$port" ]] || continue
    rm -rf "$dir/data" "$dir/kafka.pid"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
EOF
    # A cluster id is 16 random bytes, URL-safe base64 without padding. One that starts
    # with '-' would read as an option to the tool's parser (Kafka's own Uuid.randomUuid
    # never makes one for that reason), so draw again until it starts otherwise.
    cluster=-
    while [[ "$cluster" == -* ]]; do
      cluster="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    if ! "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
      cat "$dir/format.log" >&2
      die "could not format the Kafka log folder (log above)"
    fi
    nohup "${jvm[@]}" -Dkafka.logs.dir="$dir" kafka.Kafka "$dir/server.properties" \
      >"$dir/kafka.log" 2>&1 </dev/null &
    echo $! >"$dir/kafka.pid"
    for i in $(seq 1 300); do
      if ! server_pid >/dev/null; then break; fi
      if port_in_use "$port"; then
        echo "$port" >"$dir/port"
        echo "127.0.0.1:$port"
        return
      fi
      sleep 0.1
    done
    local pid
    if pid="$(server_pid)"; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "kafka.sh: start on port $port failed (attempt $attempt), retrying" >&2
  done
  tail -n 30 "$dir/kafka.log" >&2 || true
  die "could not start Kafka (log above: $dir/kafka.log)"
}

# Stops the broker of $dir (TERM, then KILL after 15 s); keeps its files.
kill_broker() {
  local pid i
  if pid="$(server_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
      server_pid >/dev/null || break
      sleep 0.1
    done
    if server_pid >/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    ! server_pid >/dev/null || die "Kafka (pid $pid) in $dir is still running"
  fi
}

stop() {
  dir_to_stop || return 0
  kill_broker
  rm -rf "$dir"
}

restart() {
  dir="$(cd "$dir" && pwd)"
  [[ -f "$dir/$marker" && -f "$dir/port" ]] || die "no broker was started in $dir"
  kill_broker
  local jars port i
  jars="$(fetch)"
  port="$(cat "$dir/port")"
  nohup java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -cp "$jars/*" -Dkafka.logs.dir="$dir" kafka.Kafka \
    "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  for i in $(seq 1 300); do
    server_pid >/dev/null || break
    if port_in_use "$port"; then
      echo "127.0.0.1:$port"
      return
    fi
    sleep 0.1
  done
  tail -n 30 "$dir/kafka.log" >&2 || true
  die "could not restart Kafka on port $port (log above: $dir/kafka.log)"
}

case "${1:-}" in
  fetch) fetch ;;
  start | stop | restart)
    parse_args "$@"
    "$cmd"
    ;;
  *) usage ;;
esac
