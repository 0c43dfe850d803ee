-- wrk script: each request is a random line of the file named by
-- BENCH_REQUESTS, "<access token or ->\t<JSON body>" (a POST to /graphql)
-- or "GET\t<path>"; at the end it prints one JSON line of figures for
-- bench.py.

local requests = {}

function init(args)
  local path = os.getenv("BENCH_REQUESTS")
  for line in io.lines(path) do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    if token == "GET" then
      requests[#requests + 1] = wrk.format("GET", body)
    else
      local headers = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/graphql-response+json",
      }
      if token ~= "-" then
        headers["Authorization"] = "Bearer " .. token
      end
      requests[#requests + 1] = wrk.format("POST", "/graphql", headers, body)
    end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, _)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"errors_status": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
