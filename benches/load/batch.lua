-- wrk script: POSTs the browser tag's 20-event batch (a page view, a form view and 18 form
-- events, as benches/lib.rs builds it) with fresh event ids on every request.
-- Times are fixed at start: the collector corrects skew with sent_at, so they stay fresh.

local counter = 0
local prefix = 0
local template

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() + (thread_number or 0))
  prefix = math.random(0, 0x7fffffff)
  local ts = os.date("!%Y-%m-%dT%H:%M:%S.000Z", os.time() - 1)
  local sent_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local page = "https://shop.example/checkout"
  local events = {
    '{"id":"%s","type":"page_view","ts":"' .. ts .. '","page":"' .. page ..
      '?utm_source=news&session=abc","title":"Checkout — step 2 of 3","referrer":"https://search.example/?q=shoes"}',
    '{"id":"%s","type":"form_view","ts":"' .. ts .. '","page":"' .. page ..
      '","form":{"name":"checkout","id":"co","order":0,"title":"Your details","visible":true,"fields":[' ..
      '{"name":"email","label":"E-mail","id":"email","tag":"input","type":"email","order":0,"visible":true,"group":""},' ..
      '{"name":"phone","label":"Phone","id":"phone","tag":"input","type":"tel","order":1,"visible":true,"group":""}]}}',
  }
  for i = 3, 20 do
    events[i] = '{"id":"%s","type":"form_event","ts":"' .. ts .. '","page":"' .. page ..
      '","form":{"name":"checkout","id":"co","order":0},"event":"input","seq":' .. i ..
      ',"field":{"name":"email","id":"email","tag":"input","type":"email","order":0,"label":"E-mail"},"value":"*"}'
  end
  template = '{"site":"BENCH","sent_at":"' .. sent_at .. '","events":[' .. table.concat(events, ",") .. ']}'
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
end

function request()
  counter = counter + 1
  local ids = {}
  for i = 1, 20 do
    ids[i] = string.format("%08x-%04x-4000-8000-%012x", prefix, i, counter)
  end
  return wrk.format(nil, nil, nil, string.format(template, unpack(ids)))
end
