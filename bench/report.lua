-- wrk reporting hook shared by bench/run.sh: prints one JSON line at the end.
-- (post.lua appends this file's done() via dofile when TORO_WRK_REPORT is set.)
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"non2xx": %d, "socket_errors": %d}\n', summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
