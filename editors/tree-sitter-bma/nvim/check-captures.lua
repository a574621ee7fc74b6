-- Run by editors/tree-sitter-bma/test.sh in a headless Neovim: loads the parser
-- (g:bma_parser), compiles nvim/queries/bma/highlights.scm with Neovim's own query engine,
-- and for each line "FILE LINE COLUMN WANT" of g:bma_expect (1-based) finds the capture
-- Neovim's highlighter shows there: the innermost captured node's, and of the patterns
-- that capture it the last in iteration order (its extmarks, all of priority 100, are
-- drawn in that order). Writes "ok" or the mismatches to g:bma_out.
local out = {}
local ok, err = pcall(function()
  vim.treesitter.require_language("bma", vim.g.bma_parser)
  local query = vim.treesitter.parse_query("bma", table.concat(vim.fn.readfile(vim.g.bma_query), "\n"))
  for _, line in ipairs(vim.fn.readfile(vim.g.bma_expect)) do
    local file, l, c, want = line:match("^(%S+) (%d+) (%d+) (%S+)$")
    local r, col = tonumber(l) - 1, tonumber(c) - 1
    local buf = vim.fn.bufadd(file)
    vim.fn.bufload(buf)
    local root = vim.treesitter.get_parser(buf, "bma"):parse()[1]:root()
    local best, bs, be
    for id, node in query:iter_captures(root, buf, r, r + 1) do
      local r1, c1, r2, c2 = node:range()
      local inside = (r1 < r or (r1 == r and c1 <= col)) and (r < r2 or (r == r2 and col < c2))
      if inside then
        local s, e = r1 * 100000 + c1, r2 * 100000 + c2
        if not best or s > bs or (s == bs and e <= be) then
          best, bs, be = query.captures[id], s, e
        end
      end
    end
    if best ~= want then
      table.insert(out, ("%s:%s:%s is '%s' in Neovim, not '%s'"):format(file, l, c, tostring(best), want))
    end
  end
end)
if not ok then table.insert(out, tostring(err)) end
vim.fn.writefile(#out == 0 and { "ok" } or out, vim.g.bma_out)
vim.cmd("qall!")
