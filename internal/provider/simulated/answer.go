package simulated

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/internal/api"
)

// vocabulary supplies the filler words; it is read-only.
var vocabulary = [...]string{
	"the", "edge", "gateway", "caches", "answers", "close", "to", "users",
	"so", "repeated", "prompts", "return", "quickly", "while", "fresh", "ones",
	"reach", "a", "provider", "through", "pooled", "connections", "and", "streams",
	"flow", "back", "token", "by", "with", "latency", "kept", "low",
	"every", "request", "is", "routed", "priced", "counted", "logged", "traced",
	"simulated", "models", "reply", "deterministically", "for", "tests", "benchmarks", "demos",
	"cheap", "fast", "steady", "reliable", "bounded", "careful", "quiet", "plain",
	"river", "mountain", "signal", "harbor", "lantern", "orchard", "meadow", "compass",
}

// wordsPerChunk is how many words one stream event carries.
const wordsPerChunk = 3

// buildText writes the answer text of choice into x.text, with word start
// offsets in x.starts (each word after the first starts at its leading
// space, so consecutive slices concatenate to the text). It returns the
// number of words and whether max_tokens cut the answer short.
func (x *exchange) buildText(choice int) (words int, truncated bool) {
	req := &x.req
	if req.format != formatText {
		return x.buildStructured(), false
	}
	want := x.c.Words
	if req.words >= 0 {
		want = req.words
	}
	if req.maxTokens > 0 && int64(want) > req.maxTokens {
		want, truncated = int(req.maxTokens), true
	}
	t, starts := x.text[:0], x.starts[:0]
	add := func(w string) {
		starts = append(starts, int32(len(t)))
		if len(t) > 0 {
			t = append(t, ' ')
		}
		t = append(t, w...)
	}
	for _, w := range [...]string{"Simulated", "answer", "to:"} {
		if len(starts) == want {
			break
		}
		add(w)
	}
	p := echo(req.prompt)
	for len(p) > 0 && len(starts) < want {
		var w string
		w, p = nextField(p)
		if w != "" {
			add(w)
		}
	}
	state := req.seed + uint64(choice)*0x9e3779b97f4a7c15
	for len(starts) < want {
		state += 0x9e3779b97f4a7c15
		add(vocabulary[mix64(state)%uint64(len(vocabulary))])
	}
	x.text, x.starts = t, starts
	return len(starts), truncated
}

// nextField splits off the first whitespace-separated word of s.
func nextField(s string) (word, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'
}

// chunkCount is how many stream events the current text takes.
func (x *exchange) chunkCount() int {
	return (len(x.starts) + wordsPerChunk - 1) / wordsPerChunk
}

// chunk returns the k-th stream piece of the current text.
func (x *exchange) chunk(k int) string {
	from := int(x.starts[k*wordsPerChunk])
	to := len(x.text)
	if next := (k + 1) * wordsPerChunk; next < len(x.starts) {
		to = int(x.starts[next])
	}
	return api.View(x.text[from:to])
}

// structuredPiece is the size in bytes of the pieces a JSON answer is
// streamed in (wordsPerChunk of them an event).
const structuredPiece = 8

// buildStructured writes a JSON answer into x.text: a value satisfying
// response_format's schema, or {"answer": ...} for json_object. x.starts
// cuts it into pieces for streaming. It returns the token estimate.
func (x *exchange) buildStructured() int {
	req := &x.req
	g := schemaGen{root: req.schema, text: echo(req.prompt)}
	t := x.text[:0]
	if req.format == formatJSONSchema && req.schema.Exists() {
		t = g.appendValue(t, req.schema, 0, 0)
	} else {
		t = append(t, `{"answer":`...)
		t = api.AppendString(t, "Simulated answer to: "+g.text)
		t = append(t, '}')
	}
	starts := x.starts[:0]
	for i := 0; i < len(t); {
		starts = append(starts, int32(i))
		i += structuredPiece
		for i < len(t) && !utf8.RuneStart(t[i]) {
			i++
		}
	}
	x.text, x.starts = t, starts
	return len(t)/4 + 1
}

// buildArgs writes the tool call arguments into x.args, a value of the
// tool's parameters schema, and returns their token estimate.
func (x *exchange) buildArgs() int {
	g := schemaGen{root: x.req.toolSchema, text: echo(x.req.prompt)}
	x.args = g.appendArgs(x.args[:0], x.req.toolSchema)
	return len(x.args)/4 + 1
}

// argPieces splits the arguments into the stream pieces a real provider
// would send: up to the first key's colon, then the rest in two halves.
// Empty pieces are not sent.
func (x *exchange) argPieces() [3]string {
	a := api.View(x.args)
	key := strings.IndexByte(a, ':') + 1
	if key == 0 {
		key = len(a) / 3
	}
	mid := key + (len(a)-key)/2
	for mid > key && !utf8.RuneStart(a[mid]) {
		mid--
	}
	return [3]string{a[:key], a[key:mid], a[mid:]}
}

// appendHex appends v as 16 lowercase hex digits.
func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}

// stream writes events, flushing each one, and paces content events.
type stream struct {
	ctx   context.Context
	w     http.ResponseWriter
	rc    *http.ResponseController
	delay time.Duration
	paced int // content events sent
}

// send writes one event; content events after the first wait ChunkDelay.
// It reports false when the client is gone.
func (st *stream) send(event []byte, content bool) bool {
	if content {
		if st.paced > 0 && !sleep(st.ctx, st.delay) {
			return false
		}
		st.paced++
	}
	if _, err := st.w.Write(event); err != nil {
		return false
	}
	if err := st.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	return true
}

// faultDue reports whether a mid-stream fault should fire now: after two
// content events, or at the end of a shorter answer.
func (x *exchange) faultDue(st *stream, end bool) bool {
	return x.req.magic&(magicCutStream|magicStreamError) != 0 && (st.paced == 2 || end)
}

// cut drops the connection; net/http recognises the sentinel and closes it
// without logging.
func cut(st *stream) {
	_ = st.rc.Flush()
	panic(http.ErrAbortHandler)
}

// stall holds the stream open until the client goes away.
func stall(st *stream) {
	<-st.ctx.Done()
}

func (x *exchange) newStream(ctx context.Context, w http.ResponseWriter, s *Server) stream {
	h := w.Header()
	h["Content-Type"] = s.ctSSE
	h["Cache-Control"] = s.noCache
	w.WriteHeader(http.StatusOK)
	return stream{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: x.c.ChunkDelay}
}
