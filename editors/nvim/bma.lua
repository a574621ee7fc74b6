-- bma for Neovim 0.7 and later: the filetype, and `bma lsp` through the built-in client
-- (`vim.lsp.start_client`, one server for every .bma buffer). docs/editors.md shows this
-- file; editors/nvim/test.sh runs it in a headless Neovim (Debian's 0.7.2).
vim.cmd([[autocmd BufRead,BufNewFile *.bma setfiletype bma]])
local bma_client = nil
vim.api.nvim_create_autocmd("FileType", {
  pattern = "bma",
  callback = function(args)
    if not (bma_client and vim.lsp.get_client_by_id(bma_client)) then
      bma_client = vim.lsp.start_client({
        name = "bma",
        cmd = { "bma", "lsp" },
        root_dir = vim.fn.fnamemodify(args.file, ":p:h"),
      })
    end
    if bma_client then
      vim.lsp.buf_attach_client(args.buf, bma_client)
    end
  end,
})
