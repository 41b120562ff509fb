// Package responses is the OpenAI Responses API (POST /v1/responses) as a
// client-facing surface: it parses and validates requests, writes OpenAI's
// error envelope, passes requests through to upstreams that speak the API
// and translates them to and from chat completions for the others,
// translates chat chunks into the typed Responses event stream, rebuilds
// answers from native event streams, replays stored answers as events, and
// keeps the responses it answered in a Store scoped to the client key, so
// previous_response_id, GET, DELETE and input_items work on every provider.
//
// Which way each translation goes is in the file name: tochat.go
// (Responses request -> chat request), fromchat.go (chat answer ->
// Response), stream.go (chat chunks -> Responses events), accumulate.go
// (native events -> Response), replay.go (Response -> events).
package responses
