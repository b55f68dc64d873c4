-- wrk script for the moderate-load runs of bench/run.sh: each connection waits DELAY_MS
-- (the first script argument, whole milliseconds: wrk's granularity) before each request, so
-- C connections offer at most C * 1000 / DELAY_MS requests per second. Latency is measured
-- from the moment each request is written.
local delay_ms = 1

function init(args)
   delay_ms = tonumber(args[1]) or 1
end

function delay()
   return delay_ms
end
