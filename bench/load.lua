-- The request mix of the benchmark's load generator, wrk (driven by bench/loadgen.py).
--
-- Settings come from the environment, so no key shows in a process listing:
--   BENCH_MODE     post | get | list
--   BENCH_API_KEY  the bearer token
--   BENCH_BODY     the POST body (JSON)
--   BENCH_QUOTA    post only: the number of POSTs to make in all (0: run for -d)
--   BENCH_THREADS  wrk's -t (to share the quota out)
--   BENCH_IDS      get only: a file of event ids, one a line, requested in turn
--
-- With a quota, each thread makes its share of POSTs and then only light
-- `GET /health/live` requests (wrk must always send something) until the last
-- POST is answered; it then prints "THREAD_DONE" and stops. loadgen.py ends
-- wrk once every thread has, and done() prints one "BENCH ..." line.

local mode = os.getenv("BENCH_MODE") or "post"
local key = os.getenv("BENCH_API_KEY") or ""
local body = os.getenv("BENCH_BODY") or "{}"
local quota_total = tonumber(os.getenv("BENCH_QUOTA") or "0")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local ids_file = os.getenv("BENCH_IDS")

local auth = { ["Authorization"] = "Bearer " .. key }
local post_headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }

-- setup() and done() run in the main Lua state -------------------------------
local threads = {}

function setup(thread)
   local index = #threads
   local share = math.floor(quota_total / nthreads)
   if index < quota_total % nthreads then
      share = share + 1
   end
   thread:set("thread_index", index)
   thread:set("quota", share)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local codes = {}
   local posts = 0
   for _, thread in ipairs(threads) do
      posts = posts + (thread:get("posts_answered") or 0)
      for code, n in pairs(thread:get("codes") or {}) do
         codes[code] = (codes[code] or 0) + n
      end
   end
   local parts = {}
   for code, n in pairs(codes) do
      table.insert(parts, code .. ":" .. n)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%d "
         .. "posts=%d connect=%d read=%d write=%d timeout=%d codes=%s\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, posts, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")
   ))
end

-- The running phase: one Lua state per thread -------------------------------
-- (globals, so that done() can read them with thread:get)
quota = 0
thread_index = 0
codes = {}
posts_answered = 0
local posts_sent = 0
local verified = false
local ids = {}
local next_id = 1
local post_request, health_request, list_request

function init(args)
   post_request = wrk.format("POST", "/jobs", post_headers, body)
   health_request = wrk.format("GET", "/health/live")
   list_request = wrk.format("GET", "/jobs", auth)
   if mode == "get" then
      for line in io.lines(ids_file) do
         if #line > 0 then
            table.insert(ids, wrk.format("GET", "/jobs/" .. line, auth))
         end
      end
      -- threads start at different places in the list
      next_id = (thread_index * 7919) % #ids + 1
   end
end

function request()
   if mode == "get" then
      local r = ids[next_id]
      next_id = next_id % #ids + 1
      return r
   elseif mode == "list" then
      return list_request
   end
   if quota == 0 then
      return post_request
   end
   if thread_index == 0 and not verified then
      -- wrk calls request() once on the first thread to check the script before
      -- the run; that request is never sent
      verified = true
      return post_request
   end
   if posts_sent < quota then
      posts_sent = posts_sent + 1
      return post_request
   end
   return health_request
end

function response(status, headers, response_body)
   -- A POST's answer: a job (it names its event_id) or any non-200 (a problem);
   -- the health check's is a 200 without one.
   local is_post = mode == "post"
      and (status ~= 200 or string.find(response_body, '"event_id"', 1, true) ~= nil)
   if mode ~= "post" or is_post then
      codes[status] = (codes[status] or 0) + 1
   end
   if is_post then
      posts_answered = posts_answered + 1
      if quota > 0 and posts_answered == quota then
         io.write("THREAD_DONE\n")
         io.stdout:flush()
         wrk.thread:stop()
      end
   end
end
