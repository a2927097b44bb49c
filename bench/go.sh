#!/usr/bin/env bash
# Guarded-call overhead of Levee's Go SDK beside sony/gobreaker and failsafe-go, in one
# `go test -bench` run of the bench/go module, then the median of each benchmark and its ratio
# to the peer it stands beside. docs/benchmarks.md ("Go SDK: guarded-call overhead") holds the
# figures and says how to read them.
#
#   bench/go.sh                      # -count 5, the default benchtime (1s)
#   COUNT=10 BENCHTIME=2s bench/go.sh
#   BENCH='BreakerClosed$' bench/go.sh
#   OUT=/tmp/go-bench.txt bench/go.sh  # keep the raw output (benchstat reads it)
#
# Ratios: a Levee breaker row against gobreaker's row of the same shape (the pure core and
# levee.Do against Execute, Allow against the two-step breaker; Levee's count window against
# gobreaker's default counting, as gobreaker has no count window, and Levee's time window
# against its rolling 10 × 1 s window; none for the manual-clock rows, gobreaker always reads
# the wall clock), and against failsafe-go's TryAcquirePermit + RecordSuccess on the same window
# kind (levee.Do against its failsafe.With(breaker).Run);
# a Levee bulkhead row against failsafe-go's TryAcquirePermit + ReleasePermit; Levee's retry
# decision against an execution through failsafe-go's retry policy. Below 1 is faster.
set -euo pipefail
cd "$(dirname "$0")/go"

COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
BENCH=${BENCH:-.}
GO=${GO:-go}
OUT=${OUT:-$(mktemp "${TMPDIR:-/tmp}/levee-go-bench.XXXXXX")}

echo "bench/go: go test -run '^\$' -bench '$BENCH' -benchmem -count $COUNT -benchtime $BENCHTIME (raw output: $OUT)"
echo "bench/go: $("$GO" version), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$GO" test -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" -benchtime "$BENCHTIME" | tee "$OUT" |
	grep -E '^(Benchmark|ok|FAIL|panic)' | sed 's/^/  /' || { echo "bench/go: go test failed" >&2; exit 1; }

awk '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(row, ref) { return (ref in ns) && ns[ref] > 0 ? sprintf("%.2f", ns[row] / ns[ref]) : "-" }
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++rows] = name }
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "ns/op") t[name] = t[name] " " $i
		if ($(i + 1) == "B/op") b[name] = b[name] " " $i
		if ($(i + 1) == "allocs/op") a[name] = a[name] " " $i
	}
}
END {
	for (r = 1; r <= rows; r++) { n = order[r]; ns[n] = median(t[n]) }
	printf "\n%-62s %10s %7s %9s %12s %11s\n", "median of each benchmark", "ns/op", "B/op", "allocs/op", "/ gobreaker", "/ failsafe"
	for (r = 1; r <= rows; r++) {
		n = order[r]; group = n; sub(/\/.*/, "", group); impl = substr(n, length(group) + 2)
		gob = "-"; fs = "-"
		if (impl ~ /^levee_/) {
			if (group ~ /^BreakerClosed/) {
				w = impl; sub(/.*\//, "", w)
				peer = (impl ~ /^levee_allow/) ? "gobreaker_twostep" : "gobreaker_execute"
				# gobreaker always reads the wall clock: no ratio for the manual-clock rows.
				if (impl !~ /manualclock/) gob = ratio(n, group "/" peer "/" (w == "count" ? "default" : "rolling"))
				fs = ratio(n, group "/" (impl ~ /^levee_do/ ? "failsafe_run" : "failsafe_permit_record") "/" w)
			} else if (group ~ /^Bulkhead/) {
				fs = ratio(n, group "/failsafe_permit_release")
			} else if (group ~ /^RetrySuccess/) {
				fs = ratio(n, group "/failsafe_run")
			}
		}
		printf "%-62s %10.1f %7d %9d %12s %11s\n", n, ns[n], median(b[n]), median(a[n]), gob, fs
	}
}' "$OUT"

if command -v benchstat >/dev/null 2>&1; then
	echo
	benchstat "$OUT"
elif [ -x "$("$GO" env GOPATH)/bin/benchstat" ]; then
	echo
	"$("$GO" env GOPATH)/bin/benchstat" "$OUT"
else
	echo
	echo "bench/go: for confidence intervals: go install golang.org/x/perf/cmd/benchstat@latest && benchstat $OUT"
fi
