-- wrk script: SQ inserts spread over many scrolls (an insert appends, so one scroll would grow).
local i = 0
request = function()
  i = i + 1
  local scroll = (i % 999) + 1
  local section = (math.floor(i / 999) % 999) + 1
  return wrk.format("GET", "/api/v2/insert?p=bench&c=1.1.1/1.1.1/1." .. section .. "." .. scroll .. "&s=0123456789abcdef")
end
