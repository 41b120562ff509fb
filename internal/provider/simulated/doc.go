// Package simulated is a built-in fake LLM provider that speaks the OpenAI
// Chat Completions, Anthropic Messages, Azure OpenAI, AWS Bedrock Converse
// and Google Gemini wire formats, for the demo, tests and load benchmarks.
//
// # Routes
//
//	POST /v1/chat/completions   OpenAI Chat Completions, JSON or SSE (stream: true)
//	POST /v1/messages           Anthropic Messages, JSON or SSE (stream: true)
//	GET  /v1/models             OpenAI model list; Anthropic's format when the
//	                            request carries an anthropic-version header
//	POST /openai/...            Azure OpenAI: chat, embeddings and Responses on the
//	                            per-deployment and v1 paths, with Azure's api-version,
//	                            deployment and api-key checks, errors and content
//	                            filter (see azure.go)
//	POST /model/{id}/converse   AWS Bedrock Converse; /converse-stream answers in
//	                            AWS's binary event-stream framing; /invoke serves
//	                            the Titan and Cohere embedding models. Every call
//	                            must be SigV4-signed with BedrockAccessKeyID and
//	                            BedrockSecretAccessKey (service bedrock, any
//	                            region, within 5 minutes), or gets Bedrock's 403
//	POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse,
//	     :embedContent, :batchEmbedContents       Google's Gemini API (AI Studio)
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent,
//	     :streamGenerateContent?alt=sse, :predict  Vertex AI
//	POST /oauth2/token          an OAuth2 token endpoint (JWT bearer grant) whose
//	                            tokens the Vertex AI routes accept (see gemini.go)
//
// # Answers
//
// Answers are deterministic: the same request always gets the same text,
// and different prompts get different text. The text starts with
// "Simulated answer to: " followed by the first 60 characters of the last
// user message, then filler words chosen by a hash of the messages, for a
// total of Options.Words words (24 by default). completion_tokens is the
// number of words; prompt_tokens is a quarter of the size in bytes of the
// messages, system prompt and tools. max_tokens (and OpenAI's
// max_completion_tokens) truncate the answer to that many words, with
// finish_reason "length" (OpenAI) or stop_reason "max_tokens" (Anthropic).
// OpenAI's n yields n choices with different filler.
//
// When the request offers tools, the answer is a call to the first tool
// (or the one tool_choice names: OpenAI "required" or {"type":"function",
// ...}; Anthropic {"type":"any"} or {"type":"tool",...}) unless tool_choice
// is "none", or tool_choice is auto (or absent) and the last message is not
// the user's text: a tool result as the last message gets a text answer,
// so agent loops end. The arguments are a deterministic value of the tool's
// parameters schema (see schemaGen for the keywords covered); a schema
// without properties gets {"query":"<first 60 characters of the last user
// message>"}, and so do plain string properties.
//
// response_format {"type":"json_schema","json_schema":{"schema":...}}
// (Anthropic: output_format {"type":"json_schema","schema":...}) makes the
// answer text a deterministic JSON value that satisfies the schema;
// {"type":"json_object"} makes it {"answer":"Simulated answer to: ..."}.
// Such answers are not cut by max_tokens. Streams carry them in pieces.
//
// # Magic words
//
// Tests steer a single request by putting one of these words in the last
// user message. They work with both formats.
//
//	SIM_ERROR_400     400 invalid_request_error whose message names the word
//	SIM_ERROR_429     429 rate limit error with Retry-After (Options.RetryAfter, 1s by default)
//	SIM_ERROR_500     500 server error (OpenAI server_error, Anthropic api_error)
//	SIM_CUT_STREAM    a streamed answer sends a few chunks, then the connection
//	                  is cut (no [DONE], no message_stop); a JSON answer is cut
//	                  half way through its body
//	SIM_STREAM_ERROR  a streamed answer sends a few chunks, then an error event
//	                  (OpenAI: data: {"error":{...}}; Anthropic: event: error
//	                  with overloaded_error) and ends; a JSON answer becomes a
//	                  500 (OpenAI) or 529 overloaded_error (Anthropic)
//	SIM_STALL         a streamed answer sends its first event, then waits until
//	                  the client goes away; a JSON answer never comes
//	SIM_SLOW_<ms>     time to first byte of <ms> milliseconds, e.g. SIM_SLOW_300,
//	                  replacing Options.TTFT and Jitter
//	SIM_WORDS_<n>     an answer of exactly <n> words (before max_tokens)
//	SIM_CACHE_READ_<n>  <n> prompt-cache read tokens in the usage: Anthropic's
//	                  cache_read_input_tokens (on top of input_tokens), OpenAI's
//	                  prompt_tokens_details.cached_tokens (inside prompt_tokens,
//	                  which grows to at least <n>)
//	SIM_CACHE_WRITE_<n> <n> prompt-cache write tokens: Anthropic's
//	                  cache_creation_input_tokens (OpenAI has no such count)
//	SIM_TOOL_CALL     a tool call, when the request offers tools (what
//	                  tool_choice auto does anyway; kept for older tests)
//	SIM_SAFETY        (Gemini only) finishReason SAFETY and no content
//
// Cut connections abort the handler with panic(http.ErrAbortHandler), which
// net/http turns into a dropped connection; call the Server through an
// http.Server (httptest.NewServer), not directly, when using SIM_CUT_STREAM.
//
// # Faults and latency
//
// Options.TTFT (plus or minus a uniform Options.Jitter) delays the first
// byte, Options.ChunkDelay separates stream events, and ErrorRate429 and
// ErrorRate500 answer that fraction of requests with an error. SetOptions
// changes all of them while the server runs. Every wait ends as soon as the
// client goes away.
package simulated
