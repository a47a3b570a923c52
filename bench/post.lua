-- wrk script for bench/run.py: POST a fixed JSON body with a bearer token, count every status,
-- optionally stop after a number of responses, and print the figures as one JSON line.
--
--   BENCH_BODY_FILE=body.json BENCH_TOKEN=... [BENCH_STOP_AFTER=200000 BENCH_THREADS=2] \
--     wrk -t2 -c32 -d10s -s bench/post.lua http://127.0.0.1:8787/endpoint
--
-- BENCH_METHOD (default POST) and BENCH_CONTENT_TYPE (default application/json) serve the FHIR part:
-- a GET sends no body.
--
-- BENCH_STOP_AFTER splits that many responses over BENCH_THREADS threads (give wrk's -t); each
-- thread stops at its share and prints BENCH_THREAD_STOPPED, -d then being only a ceiling.
--
-- wrk runs one Lua state per thread plus one for setup()/done(); per-thread counters are
-- globals of the thread's state, read back in done() through the thread handles kept by setup().

local threads = {}
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0")
local thread_count = 0

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open BENCH_BODY_FILE " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = os.getenv("BENCH_METHOD") or "POST"
if wrk.method ~= "GET" then
  wrk.body = read_file(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set"))
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "none")

-- BENCH_BODY_LINES=1: the body file holds one body per line, sent in turn (each thread from its own
-- place); without it the request is static, wrk's fast path.
if os.getenv("BENCH_BODY_LINES") == "1" and wrk.body then
  local bodies = {}
  for line in wrk.body:gmatch("[^\n]+") do bodies[#bodies + 1] = line end
  local turn = 0
  function request()
    turn = turn % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[turn])
  end
end

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
  table.insert(threads, thread)
end

function init(args)
  ok, other, stopped = 0, 0, false
  statuses = {}  -- non-200 status -> count, for the error message
  quota = nil    -- responses this thread waits for before it stops; nil: run for wrk's duration
  if stop_after > 0 then
    -- Split the total over the threads; the first ones take the remainder.
    local n = tonumber(os.getenv("BENCH_THREADS") or "1")
    quota = math.floor(stop_after / n) + ((id <= stop_after % n) and 1 or 0)
  end
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
  if quota and not stopped and ok + other >= quota then
    stopped = true
    -- wrk's main thread sleeps out -d whatever the threads do: this line tells bench/run.py to
    -- SIGINT it, which makes wrk join the threads and report at once.
    io.write("BENCH_THREAD_STOPPED\n")
    io.flush()
    wrk.thread:stop()  -- requests still in flight on this thread's connections are abandoned
  end
end

function done(summary, latency, requests)
  local ok_total, other_total, merged, codes = 0, 0, {}, {}
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    other_total = other_total + t:get("other")
    for code, count in pairs(t:get("statuses")) do
      merged[code] = (merged[code] or 0) + count
    end
  end
  for code, count in pairs(merged) do
    codes[#codes + 1] = string.format('"%d": %d', code, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "ok": %d, "non_200": %d, ' ..
    '"non_200_statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, ' ..
    '"max": %d}, "stop_after": %d}\n',
    summary.requests, summary.duration, summary.bytes, ok_total, other_total, table.concat(codes, ", "),
    e.connect, e.read, e.write, e.status, e.timeout, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, stop_after))
end
