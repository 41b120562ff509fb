package embeddings

import (
	"github.com/edge-agent/edge-agent/internal/cache"
)

// restIgnored are the fields left out of the key of what is common to every
// input: the inputs themselves, and the encoding, which each input's key
// holds in its normalized form (absent and "float" are one encoding). The
// cache's defaults leave out model and user.
var restIgnored = []string{"input", "encoding_format"}

// Keys appends to dst the cache key of each input, in the client's order.
// An input's entry is its own (a batch that shares it finds it): the key
// holds namespace, the surface, the route and upstream model, every
// request field but input and user (dimensions, and any field the gateway
// does not know, as they may change the vector), the encoding and the
// input's text or tokens. Identical inputs of one request get one key.
func (req *Request) Keys(dst []cache.Key, namespace, route, model string) ([]cache.Key, error) {
	rest, err := cache.ComputeKeyIgnoring("", "", "", req.Body, restIgnored)
	if err != nil {
		return dst, err
	}
	var hx [32]byte
	prefix := "embeddings\x00" + route + "\x00" + string(rest.AppendHex(hx[:0]))
	buf := make([]byte, 0, 64)
	for _, in := range req.Inputs {
		buf = append(buf[:0], `{"encoding_format":"`...)
		buf = append(buf, req.Encoding...)
		buf = append(buf, `","input":`...)
		buf = append(buf, in...)
		buf = append(buf, '}')
		k, err := cache.ComputeKey(namespace, prefix, model, buf)
		if err != nil {
			return dst, err
		}
		dst = append(dst, k)
	}
	return dst, nil
}
