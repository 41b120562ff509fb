// Package embeddings is the OpenAI Embeddings surface (POST /v1/embeddings):
// it validates a request, splits it into its inputs, keys each input for
// the cache on its own, builds the upstream request for the inputs the
// cache did not have, and reassembles the answer in the client's order from
// stored and fresh vectors, byte for byte as the upstream wrote them.
//
// Embeddings do not fit the one-answer-per-request pipeline of
// internal/surface (an answer is many cache entries), so the gateway serves
// them with a handler of their own (internal/gateway/embeddings.go) built
// from the pipeline's pieces and this package.
package embeddings
