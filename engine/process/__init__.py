"""The engine process: a warm model, a job queue with a journal, and a local versioned protocol.

`protocol` (the messages), `transport` (framing and the HMAC handshake), `connection_file` (one engine
per user), `journal` (SQLite), `server` (the engine itself), `settings` (its limits). Clients use
`engine.client`, never these modules' sockets directly. See docs/protocol.md.
"""
