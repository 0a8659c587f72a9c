"""The HTTP client adapter and the MCP server: httpx and mcp over the core (the verifying client).
Imports errors, tlog, protocol, statements, verifier; never server, storage, witness, api, cli."""
