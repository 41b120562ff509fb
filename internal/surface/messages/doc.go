// Package messages is the Anthropic Messages API as a client-facing
// surface: it parses and validates POST /v1/messages, writes Anthropic's
// error envelope, translates requests and answers to and from the chat
// completions representation for upstreams that do not speak Messages,
// accumulates and replays Messages event streams, and reads usage by token
// kind for pricing. KeyBody gives the cache the request without its
// cache_control markers, which never change the answer.
//
// Which way each translation goes is in the file name: tochat.go
// (Messages request -> chat request), fromchat.go (chat answer -> Messages
// answer), stream.go (chat chunks -> Messages events). Passthrough to an
// Anthropic upstream needs none of them: the client's bytes go as sent.
package messages
