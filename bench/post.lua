-- wrk script: POST /questions with a JSON body, a different user per thread.
local counter = 0
local questions = {
  "Qual o limite de garantia do FGC?",
  "Como funciona o Tesouro Selic?",
  "Quanto rende a poupança hoje?",
  "O que é come-cotas?",
}
request = function()
  counter = counter + 1
  local body = string.format('{"user_id":"bench%d","question":"%s (%d)"}', counter % 64,
    questions[(counter % #questions) + 1], counter)
  return wrk.format("POST", "/questions", {["Content-Type"] = "application/json"}, body)
end
