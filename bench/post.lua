-- wrk script: POST /questions with a JSON body and a bearer token.
-- TORO_TOKENS (env): comma-separated bearer tokens (one per bench user),
-- used round-robin so that questions are spread over users.
local tokens = {}
for t in string.gmatch(os.getenv("TORO_TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local counter = 0
local questions = {
  "Qual o limite de garantia do FGC?",
  "Como funciona o Tesouro Selic?",
  "Quanto rende a poupança hoje?",
  "O que é come-cotas?",
}
request = function()
  counter = counter + 1
  local body = string.format('{"question":"%s (%d)"}', questions[(counter % #questions) + 1], counter)
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then headers["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1] end
  return wrk.format("POST", "/questions", headers, body)
end

local report = os.getenv("TORO_WRK_REPORT")
if report then dofile(report) end
