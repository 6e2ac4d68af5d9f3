#!/bin/sh
# The two type checks of `npm test`, side by side: the sources and tests (tsc --noEmit), and every doc snippet.
tsc --noEmit &
tsc_pid=$!
tsx scripts/check-docs.ts
docs=$?
wait "$tsc_pid"
tsc_status=$?
[ "$tsc_status" -eq 0 ] && [ "$docs" -eq 0 ]
