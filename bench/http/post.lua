-- wrk: POST a 1 KiB JSON document (BENCH_BODY_FILE) to the given URL.
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
