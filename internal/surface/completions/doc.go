// Package completions is the OpenAI legacy Completions surface (POST
// /v1/completions) on the one pipeline: passed through to upstreams that
// serve it (OpenAI, vLLM, Ollama and other OpenAI-compatible servers),
// streamed as text_completion chunks, cached like chat (a stored answer is
// replayed as the chunk stream), priced from its usage. There is no
// translation: a model whose providers lack the API is a 400.
package completions
