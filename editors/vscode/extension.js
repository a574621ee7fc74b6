// The VS Code client: starts `bma lsp` over stdio for .bma files (diagnostics,
// hover, go to definition, completion, formatting). Highlighting is the TextMate
// grammar in syntaxes/, which works without the server.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("bma").get("path") || "bma";
  const server = { command, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient(
    "bma",
    "bma language server",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "bma" }, { scheme: "untitled", language: "bma" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
