-- wrk script: POST a registration with a unique email and a valid Tanzanian phone per request.
-- Arguments (after --): <run prefix> <path> <responses per thread>.
-- Each thread stops after its budget of responses and prints "DONE"; the Python driver
-- interrupts wrk (SIGINT) once every thread is done, because wrk itself runs for a fixed
-- duration and would otherwise report that duration, not the time the requests took.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local prefix, path, budget = "run", "/", 1
counter, responses, bad, stopped = 0, 0, 0, false  -- globals: done() reads "bad" via thread:get
local names = {"Asha Juma Mwinyi", "Neema Mollel Said", "Baraka John Massawe", "Rehema Ali Mohamed",
               "Juma Hamisi Kombo", "Zawadi Peter Ngowi"}
local cadres = {"ict_officer", "director_or_head_of_ict", "other_officer", "accounting_officer"}

function init(args)
  prefix, path, budget = args[1], args[2], tonumber(args[3])
end

function request()
  counter = counter + 1
  local email = string.format("p.%s.%d.%d@bench.go.tz", prefix, tid, counter)
  -- +255 71x xxx xxx: a valid Tanzanian mobile number (varied, not necessarily unique)
  local phone = string.format("+25571%07d", (tid * 1000003 + counter) % 10000000)
  local body = string.format(
    '{"full_name":"%s","email":"%s","phone":"%s","institution":"e-Government Authority",' ..
    '"position":"ICT Officer","cadre":"%s","language":"%s","consent":{"accepted":true}}',
    names[(counter % #names) + 1], email, phone, cadres[(counter % #cadres) + 1],
    (counter % 2 == 0) and "sw" or "en")
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if stopped then return end
  responses = responses + 1
  if status ~= 201 then bad = bad + 1 end
  if responses >= budget then
    stopped = true
    io.write("DONE\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local non201 = 0
  for _, t in ipairs(threads) do non201 = non201 + (t:get("bad") or 0) end
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non_201":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_timeout":%d,"errors_status":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p95_us":%d,' ..
    '"lat_p99_us":%d,"lat_p999_us":%d}\n',
    summary.requests, summary.duration, non201, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency:percentile(99.9)))
end
