#!/bin/sh
# `npm test`: the type checks (tsc --noEmit over sources and tests, and every doc snippet) side by side with the
# whole vitest suite. Both run to the end; the command fails if either fails. The type checks' output is printed
# after the suite's, under its own heading, so the two never interleave.
log=$(mktemp)
sh scripts/typecheck.sh > "$log" 2>&1 &
typecheck_pid=$!
vitest run "$@"
suite=$?
wait "$typecheck_pid"
typecheck=$?
echo
if [ "$typecheck" -eq 0 ]; then echo "type checks: passed"; else echo "type checks: FAILED"; fi
cat "$log"
rm -f "$log"
[ "$suite" -eq 0 ] && [ "$typecheck" -eq 0 ]
