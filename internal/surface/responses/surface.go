package responses

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// Surface is POST /v1/responses. Store keeps the answers for
// previous_response_id and GET; nil turns the store off.
type Surface struct {
	Store Store
	// Now stamps translated answers that carry no creation time (nil:
	// time.Now).
	Now func() time.Time
}

var _ surface.Surface = (*Surface)(nil)

// ID is provider.SurfaceResponses.
func (s *Surface) ID() provider.Surface { return provider.SurfaceResponses }

// WriteError writes e in OpenAI's error envelope.
func (s *Surface) WriteError(w http.ResponseWriter, e *api.Error) { api.WriteError(w, e) }

// Parse validates body as a Responses request.
func (s *Surface) Parse(body []byte, lim api.Limits) (surface.Request, error) {
	f, err := parseFields(body, lim)
	if err != nil {
		return nil, err
	}
	return &Request{s: s, body: body, f: f}, nil
}

// Request is one parsed Responses request.
type Request struct {
	s    *Surface
	body []byte
	f    fields

	// resolved is the body with previous_response_id replaced by the
	// conversation it names (Prepare); nil when there is none to resolve.
	resolved []byte
	// history is the conversation inherited through previous_response_id,
	// the items its input_items start with.
	history []byte
	id      string // the id of every answer this request sends
	created int64  // its created_at, 0 until read
	e       *echo
}

var (
	_ surface.Preparer = (*Request)(nil)
	_ surface.Recorder = (*Request)(nil)
)

// Info is the model, stream and max_output_tokens.
func (r *Request) Info() surface.Info {
	return surface.Info{Model: r.f.model, Stream: r.f.stream, MaxTokens: r.f.maxOutputTokens}
}

// Raw is the client's request.
func (r *Request) Raw() []byte { return r.body }

// SetRaw replaces the body after redaction.
func (r *Request) SetRaw(b []byte) { r.body, r.e = b, nil }

// PromptTokens is Parse's prompt estimate (input, instructions, tools).
func (r *Request) PromptTokens() int { return cost.EstimateTokensOfLen(r.f.promptBytes) }

// Fallbacks: the Responses API has no fallbacks member; the
// X-Fallback-Models header still applies.
func (r *Request) Fallbacks() ([]string, error) { return nil, nil }

// keyIgnore are the members that never change the answer: where it is
// kept, how it is delivered, what the client tags it with.
var keyIgnore = []string{"store", "stream", "stream_options", "metadata", "user", "safety_identifier", "prompt_cache_key", "background", "include"}

// KeyBody is the request with previous_response_id resolved into the
// conversation it names, so a continuation is keyed by what it asks.
func (r *Request) KeyBody() ([]byte, []string) { return r.upstreamBody(), keyIgnore }

func (r *Request) upstreamBody() []byte {
	if r.resolved != nil {
		return r.resolved
	}
	return r.body
}

// Upstream is the client's request for a provider that speaks Responses
// (previous_response_id resolved when the store knew it), a chat request
// otherwise.
func (r *Request) Upstream(native bool, _ http.Header) ([]byte, http.Header, error) {
	if native {
		return r.upstreamBody(), nil, nil
	}
	b, err := ToChat(r.upstreamBody())
	return b, nil, err
}

// ID is the id the request's answers get: fresh for every request, cached
// answers included.
func (r *Request) ID() string {
	if r.id == "" {
		r.id = NewID()
	}
	return r.id
}

func (r *Request) echo() *echo {
	if r.e == nil {
		r.e = readEcho(r.body)
	}
	return r.e
}

// now is the request's time, read once: every copy of its answer says
// the same created_at.
func (r *Request) now() int64 {
	if r.created == 0 {
		if r.s.Now != nil {
			r.created = r.s.Now().Unix()
		} else {
			r.created = time.Now().Unix()
		}
	}
	return r.created
}

// Answer reads a provider's answer: a Response from a native upstream,
// taken as is, or a chat completion translated into one.
func (r *Request) Answer(body []byte, native bool) (surface.Answer, error) {
	if native {
		if !gjson.ValidBytes(body) {
			return surface.Answer{}, badAnswer("not valid JSON")
		}
		body = r.restorePrevious(body, "previous_response_id")
		a, ok := readResponse(body)
		if !ok {
			return surface.Answer{}, badAnswer("not a response object")
		}
		return a, nil
	}
	fc, err := translateChat(body, r.echo(), r.ID(), r.now())
	if err != nil {
		return surface.Answer{}, err
	}
	a := surface.Answer{Body: fc.body, Model: fc.model, Usage: fc.usage.cost(), Estimated: !fc.hasUsage, Finish: []string{fc.finish}}
	if !fc.hasUsage {
		a.Usage = cost.Usage{PromptTokens: cost.EstimateTokensOfLen(r.f.promptBytes), CompletionTokens: cost.EstimateTokensOfLen(len(fc.body))}
	}
	return a, nil
}

// readResponse reads what the pipeline needs of a Response in one pass
// over its members: the model, the usage by kind and the finish reason in
// chat's terms (see finishOf).
func readResponse(body []byte) (surface.Answer, bool) {
	a := surface.Answer{Body: body, Estimated: true}
	// The adapters that pass Responses through check that the answer is
	// JSON (as chat's are trusted to); a cut one, which must never be
	// cached, is still refused here at the cost of one byte's look.
	if t := bytes.TrimRight(body, " \t\r\n"); len(t) == 0 || t[len(t)-1] != '}' {
		return a, false
	}
	var object, status, reason string
	calls := false
	gjson.Parse(api.View(body)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "object":
			object = v.Str
		case "model":
			a.Model = v.Str
		case "status":
			status = v.Str
		case "incomplete_details":
			reason = v.Get("reason").Str
		case "usage":
			if v.IsObject() {
				a.Usage, a.Estimated = usageOf(v), false
			}
		case "output":
			v.ForEach(func(_, it gjson.Result) bool {
				calls = it.Get("type").Str == "function_call"
				return !calls
			})
		}
		return true
	})
	a.Finish = []string{finishFrom(status, reason, calls)}
	return a, object == "response"
}

// AppendJSON appends a fresh answer as it is, and a stored one under this
// request's own id, time and request members (see rebrand).
func (r *Request) AppendJSON(dst, answer []byte, m surface.Meta) []byte {
	if m.Tier == "" {
		return append(dst, answer...)
	}
	return append(dst, r.rebrand(answer)...)
}

// AppendReplay appends a stored answer as an event stream, under this
// request's own id.
func (r *Request) AppendReplay(dst, answer []byte) ([]byte, error) {
	return AppendReplay(dst, r.rebrand(answer))
}

// rebrand gives a cached answer what is this request's: a fresh id (a
// client expects one per answer, and stores it under it), the time, and
// the members the cache key leaves out (store, metadata, user) or
// resolves (previous_response_id). Output item ids stay: they name the
// cached items.
func (r *Request) rebrand(answer []byte) []byte {
	e := r.echo()
	out := make([]byte, 0, len(answer)+64)
	out = append(out, '{')
	n := 0
	member := func(k, raw string) {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = api.AppendString(out, k)
		out = append(out, ':')
		out = append(out, raw...)
	}
	var buf [72]byte // an id or a time
	seenUser := false
	gjson.Parse(api.View(answer)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			member("id", api.View(api.AppendString(buf[:0], r.ID())))
		case "created_at":
			member("created_at", api.View(strconv.AppendInt(buf[:0], r.now(), 10)))
		case "previous_response_id":
			member(k.Str, or(e.previousResponseID, "null"))
		case "store":
			member(k.Str, or(e.store, "true"))
		case "metadata":
			member(k.Str, or(e.metadata, "{}"))
		case "user":
			seenUser = true
			member(k.Str, or(e.user, "null"))
		default:
			member(k.Str, v.Raw)
		}
		return true
	})
	if !seenUser && e.user != "" {
		member("user", e.user)
	}
	return append(out, '}')
}

// NewStream returns the copier of a streamed answer: native events framed
// as they came, or chat chunks translated.
func (r *Request) NewStream(native bool, maxCapture int) surface.Stream {
	st := &stream{r: r, native: native, max: maxCapture, prompt: cost.EstimateTokensOfLen(r.f.promptBytes)}
	if !native {
		st.tr = newStreamTranslator(r.echo(), r.ID())
	}
	return st
}

type stream struct {
	r      *Request
	native bool
	max    int
	prompt int
	acc    Accumulator
	tr     *StreamTranslator
	ev     events // error events of a native stream
}

func (s *stream) Add(dst, payload []byte) ([]byte, error) {
	if s.native {
		if s.r.resolved != nil && bytes.Contains(payload, []byte(`"response":`)) {
			payload = s.r.restorePrevious(payload, "response.previous_response_id")
		}
		typ, err := s.acc.Add(payload)
		if err != nil {
			return dst, err
		}
		return appendEvent(dst, typ, payload), nil
	}
	return s.tr.Add(dst, payload)
}

func (s *stream) End(dst []byte, _ bool) ([]byte, *surface.Answer, error) {
	var resp []byte
	if s.native {
		resp = s.acc.Response()
		if resp == nil {
			return dst, nil, badStream("the stream ended before its response.completed event")
		}
	} else {
		var err error
		if dst, resp, err = s.tr.Finish(dst); err != nil {
			return dst, nil, err
		}
	}
	if s.Overflowed() {
		return dst, nil, nil
	}
	root := gjson.ParseBytes(resp)
	a := &surface.Answer{Body: resp, Model: root.Get("model").Str, Usage: Usage(resp), Finish: []string{finishOf(root)}}
	if !s.native {
		a.Estimated = !s.tr.hasUse
	} else {
		a.Estimated = !root.Get("usage").IsObject()
	}
	if a.Estimated {
		a.Usage, _ = s.Partial()
	}
	return dst, a, nil
}

func (s *stream) AppendError(dst []byte, e *api.Error) []byte {
	if s.native {
		// The error event continues the upstream's numbering.
		s.ev.seq = max(s.ev.seq, s.acc.next)
		return s.ev.errorEvent(dst, e)
	}
	return s.tr.AppendError(dst, e)
}

func (s *stream) Partial() (cost.Usage, bool) {
	if s.native {
		return s.acc.partialUsage(s.prompt)
	}
	if s.tr.hasUse {
		return s.tr.usage.cost(), false
	}
	return cost.Usage{PromptTokens: s.prompt, CompletionTokens: cost.EstimateTokensOfLen(s.tr.text)}, true
}

func (s *stream) Overflowed() bool {
	if s.max <= 0 {
		return false
	}
	if s.native {
		return s.acc.TextBytes() > s.max
	}
	return s.tr.text > s.max
}

// errStoreOff is previous_response_id on a translated route with the store
// off: nothing can resolve it.
func errStoreOff() *api.Error {
	return api.InvalidRequest("previous_response_id",
		"previous_response_id: the gateway's response store is off (responses.store: false), and this model's provider does not speak the Responses API, so nothing can continue that response; send the whole conversation in input")
}

func errPreviousNotFound(id string) *api.Error {
	e := api.InvalidRequest("previous_response_id", "Previous response with id '%s' not found.", id)
	e.Code = "previous_response_not_found"
	return e
}

func errStoreDown(err error) *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeServer, Code: "response_store_unavailable",
		Message: "the gateway's response store could not be read; retry the request", Err: err}
}

// Prepare resolves previous_response_id from the store: the response's
// input items and its output become the start of this request's input,
// and previous_response_id goes, so any provider reads the whole
// conversation. An id the store does not hold for this principal (never
// answered, expired, deleted, another key's) is a 400
// previous_response_not_found. With the store off, a native upstream gets
// the id as sent (its own store may know it) and a translated route a 400.
func (r *Request) Prepare(ctx context.Context, sc surface.Scope, native bool) error {
	prev := r.f.previousResponseID
	if prev == "" {
		return nil
	}
	if r.s.Store == nil {
		if native {
			return nil
		}
		return errStoreOff()
	}
	rec, ok, err := r.s.Store.Get(ctx, sc.Principal, prev)
	if err != nil {
		return errStoreDown(err)
	}
	if !ok {
		return errPreviousNotFound(prev)
	}
	response, inputs, ok := decodeRecord(rec)
	if !ok {
		return errPreviousNotFound(prev)
	}
	hist := make([]byte, 0, len(inputs.Raw)+len(response.Raw))
	hist = append(hist, '[')
	n := 0
	add := func(items gjson.Result) {
		items.ForEach(func(_, it gjson.Result) bool {
			if n > 0 {
				hist = append(hist, ',')
			}
			n++
			hist = append(hist, it.Raw...)
			return true
		})
	}
	add(inputs)
	add(response.Get("output"))
	hist = append(hist, ']')
	r.history = hist

	conv := append([]byte{'['}, stripItems(hist)...)
	own := ownItems(r.body, "")
	if len(own) > 2 {
		if len(conv) > 1 {
			conv = append(conv, ',')
		}
		conv = append(conv, own[1:len(own)-1]...)
	}
	conv = append(conv, ']')
	b, err := sjson.SetRawBytes(append([]byte(nil), r.body...), "input", conv)
	if err == nil {
		b, err = sjson.DeleteBytes(b, "previous_response_id")
	}
	if err != nil {
		return api.InvalidRequest("previous_response_id", "previous_response_id: the conversation could not be rebuilt: %v", err)
	}
	r.resolved = b
	return nil
}

// stripItems writes the items of an array without their ids and statuses
// (the members of an output item that an upstream's own store would try to
// resolve), without the brackets.
func stripItems(arr []byte) []byte {
	var out []byte
	n := 0
	gjson.ParseBytes(arr).ForEach(func(_, it gjson.Result) bool {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		b := []byte(it.Raw)
		switch it.Get("type").Str {
		case "message", "function_call", "function_call_output":
			b, _ = sjson.DeleteBytes(b, "id")
			b, _ = sjson.DeleteBytes(b, "status")
		}
		out = append(out, b...)
		return true
	})
	return out
}

// ownItems is the request's own input as items (a string input a user
// message), each with an id when respID is set, as input_items lists them
// and pages by. A JSON array.
func ownItems(body []byte, respID string) []byte {
	in := gjson.GetBytes(body, "input")
	out := []byte{'['}
	if in.Type == gjson.String {
		out = append(out, `{`...)
		if respID != "" {
			out = append(out, `"id":`...)
			out = api.AppendString(out, inputItemID("msg_", respID, 0))
			out = append(out, ',')
		}
		out = append(out, `"type":"message","role":"user","content":[{"type":"input_text","text":`...)
		out = append(out, in.Raw...)
		out = append(out, "}]}]"...)
		return out
	}
	i := 0
	in.ForEach(func(_, it gjson.Result) bool {
		if i > 0 {
			out = append(out, ',')
		}
		b := []byte(it.Raw)
		typ := it.Get("type").Str
		prefix := "item_"
		switch typ {
		case "", "message":
			prefix = "msg_"
			if typ == "" {
				b, _ = sjson.SetBytes(b, "type", "message")
			}
			if c := it.Get("content"); c.Type == gjson.String {
				kind := "input_text"
				if it.Get("role").Str == "assistant" {
					kind = "output_text"
				}
				b, _ = sjson.SetRawBytes(b, "content", []byte(`[{"type":"`+kind+`","text":`+c.Raw+`}]`))
			}
		case "function_call":
			prefix = "fc_"
		case "function_call_output":
			prefix = "fco_"
		}
		if respID != "" && !it.Get("id").Exists() {
			b, _ = sjson.SetBytes(b, "id", inputItemID(prefix, respID, i))
		}
		out = append(out, b...)
		i++
		return true
	})
	return append(out, ']')
}

// Record keeps an answer the client received whole, fresh or cached, with
// the items it was given, unless the request said store: false. A record
// over the store's bound is not kept (GET then reads 404); a store that
// cannot be written costs the record, not the answer.
func (r *Request) Record(ctx context.Context, sc surface.Scope, answer []byte, fresh bool) error {
	if r.s.Store == nil || !r.f.store {
		return nil
	}
	if !fresh {
		answer = r.sentAnswer(answer)
	}
	id := gjson.GetBytes(answer, "id").Str
	if id == "" {
		return nil
	}
	own := ownItems(r.body, id)
	items := own
	if len(r.history) > 2 {
		items = append(append([]byte(nil), r.history[:len(r.history)-1]...), ',')
		items = append(items, own[1:]...)
		if len(own) == 2 { // no input of its own
			items = append(r.history[:len(r.history)-1:len(r.history)-1], ']')
		}
	}
	err := r.s.Store.Put(ctx, sc.Principal, id, encodeRecord(answer, items))
	if errors.Is(err, ErrTooLarge) {
		return nil
	}
	return err
}

// restorePrevious puts the client's previous_response_id back at path of
// a native upstream's answer or event when Prepare resolved it (the
// upstream never saw it, and says null).
func (r *Request) restorePrevious(b []byte, path string) []byte {
	if r.resolved == nil || r.f.previousResponseID == "" || !gjson.GetBytes(b, path).Exists() {
		return b
	}
	if out, err := sjson.SetBytes(b, path, r.f.previousResponseID); err == nil {
		return out
	}
	return b
}

// sentAnswer is the Response a client got for a stored answer: the
// pipeline may hand Record the stored answer itself (as cached), the one
// AppendJSON rewrote, or the event stream AppendReplay wrote, whose
// terminal event carries the Response. Whichever it is, what is kept is
// what was sent: under this request's id.
func (r *Request) sentAnswer(answer []byte) []byte {
	if bytes.HasPrefix(answer, []byte("event: ")) {
		i := bytes.LastIndex(answer, []byte("\ndata: "))
		if i < 0 {
			return nil
		}
		return []byte(gjson.GetBytes(bytes.TrimSpace(answer[i+len("\ndata: "):]), "response").Raw)
	}
	if gjson.GetBytes(answer, "id").Str != r.ID() {
		return r.rebrand(answer)
	}
	return answer
}

// validID reports whether id could be a response id, for the GET and DELETE
// routes: the ids the gateway and OpenAI give.
func validID(id string) bool {
	return id != "" && len(id) <= 256 && !strings.ContainsAny(id, "/ \t\r\n")
}

// inputItemID names input item i of response respID that came without an
// id: its type's prefix, the response's hex and "in" with the index.
func inputItemID(prefix, respID string, i int) string {
	return prefix + strings.TrimPrefix(respID, "resp_") + "_in" + itoa(i)
}
