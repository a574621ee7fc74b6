-- Run by editors/nvim/test.sh: `nvim --headless --clean -c 'luafile editors/nvim/test.lua'`
-- with g:bma_file (a copy of examples/digits.bma) and g:bma_out (where the verdict goes).
-- Loads editors/nvim/bma.lua, opens the file, and checks diagnostics (before and after an
-- edit), hover, go to definition (in the file and into the stdlib). Every wait is bounded.
local out = vim.g.bma_out
local failures = {}
local function fail(msg) table.insert(failures, msg) end
local function finish()
  local f = io.open(out, "w")
  if f then
    f:write(#failures == 0 and "ok\n" or table.concat(failures, "\n") .. "\n")
    f:close()
  end
  for _, client in pairs(vim.lsp.get_active_clients()) do client.stop() end
  vim.cmd(#failures == 0 and "qall!" or "cquit! 1")
end
local ok, err = pcall(function()
  local published = 0
  local default = vim.lsp.handlers["textDocument/publishDiagnostics"]
  vim.lsp.handlers["textDocument/publishDiagnostics"] = function(e, result, ctx, config)
    published = published + 1
    return default(e, result, ctx, config)
  end
  dofile(vim.fn.fnamemodify(vim.g.bma_rtp, ":p") .. "bma.lua")
  vim.cmd("edit " .. vim.fn.fnameescape(vim.g.bma_file))
  local buf = vim.api.nvim_get_current_buf()
  if vim.bo[buf].filetype ~= "bma" then error("the filetype is '" .. vim.bo[buf].filetype .. "', not bma") end
  if not vim.wait(20000, function() return #vim.lsp.buf_get_clients(buf) > 0 end, 20) then
    error("no bma lsp client attached in 20 s")
  end
  if not vim.wait(20000, function() return published > 0 end, 20) then
    error("no diagnostics published for the example in 20 s")
  end
  local errors = vim.diagnostic.get(buf, { severity = vim.diagnostic.severity.ERROR })
  if #errors > 0 then fail("examples/digits.bma has errors: " .. vim.inspect(errors)) end

  local uri = vim.uri_from_bufnr(buf)
  local function request(method, line, character)
    local params = { textDocument = { uri = uri }, position = { line = line, character = character } }
    local res, e = vim.lsp.buf_request_sync(buf, method, params, 20000)
    if not res then error(method .. " got no answer in 20 s: " .. tostring(e)) end
    for _, r in pairs(res) do
      if r.err then error(method .. ": " .. vim.inspect(r.err)) end
      return r.result
    end
  end
  local function location(result)
    if result and result.uri == nil and result[1] then result = result[1] end
    if result and result.targetUri then return result.targetUri, result.targetSelectionRange end
    if result then return result.uri, result.range end
  end

  -- Hover on `depth` in `repeat depth {` (line 25): its domain.
  local hover = request("textDocument/hover", 24, 15)
  local text = hover and hover.contents and (hover.contents.value or hover.contents) or ""
  if type(text) ~= "string" or not text:find("depth: int in 1..=3", 1, true) then
    fail("hover on depth: " .. vim.inspect(hover))
  end
  -- Definition of `depth`: its declaration on line 12.
  local def_uri, range = location(request("textDocument/definition", 24, 15))
  if def_uri ~= uri or not range or range.start.line ~= 11 then
    fail("definition of depth: " .. vim.inspect({ def_uri, range }))
  end
  -- Definition of `dense_act`: the stdlib's text, written under the cache folder.
  def_uri = location(request("textDocument/definition", 24, 23))
  local path = def_uri and vim.uri_to_fname(def_uri)
  local f = path and io.open(path)
  local stdlib = f and f:read("*a") or ""
  if f then f:close() end
  if not stdlib:find("block dense_act", 1, true) then
    fail("definition of dense_act: " .. vim.inspect(def_uri))
  end

  -- An edit: `flatten` misspelled on line 24 gets an error there, as the buffer changes.
  vim.api.nvim_buf_set_lines(buf, 23, 24, true, { "        flaten" })
  local found = nil
  vim.wait(20000, function()
    for _, d in ipairs(vim.diagnostic.get(buf, { severity = vim.diagnostic.severity.ERROR })) do
      if d.lnum == 23 and d.message:find("flaten", 1, true) then found = d return true end
    end
    return false
  end, 20)
  if not found then
    fail("no error on line 24 for `flaten` in 20 s: " .. vim.inspect(vim.diagnostic.get(buf)))
  end
end)
if not ok then fail(tostring(err)) end
finish()
