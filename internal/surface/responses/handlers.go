package responses

import (
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// Routes serves the stored responses: GET /v1/responses/{id} (JSON, or
// the event stream with ?stream=true), DELETE /v1/responses/{id} and GET
// /v1/responses/{id}/input_items. Scope names the caller, whose responses
// alone it sees: another key's id is a 404, as an unknown one is. Routes
// run after the server's authentication.
type Routes struct {
	Store Store // nil: the store is off, every id is a 404
	Scope func(*http.Request) surface.Scope
}

func notFound(id string) *api.Error {
	return &api.Error{Status: http.StatusNotFound, Type: api.TypeInvalidRequest, Message: "Response with id '" + id + "' not found."}
}

// load returns the caller's record id, or writes the error.
func (rt Routes) load(w http.ResponseWriter, r *http.Request) (id string, response, items gjson.Result, ok bool) {
	id = r.PathValue("id")
	if !validID(id) {
		api.WriteError(w, api.InvalidRequest("id", "id: not a response id"))
		return id, response, items, false
	}
	if rt.Store == nil {
		api.WriteError(w, notFound(id))
		return id, response, items, false
	}
	rec, found, err := rt.Store.Get(r.Context(), rt.Scope(r).Principal, id)
	if err != nil {
		api.WriteError(w, errStoreDown(err))
		return id, response, items, false
	}
	if found {
		response, items, found = decodeRecord(rec)
	}
	if !found {
		api.WriteError(w, notFound(id))
		return id, response, items, false
	}
	return id, response, items, true
}

// Retrieve serves GET /v1/responses/{id}.
func (rt Routes) Retrieve(w http.ResponseWriter, r *http.Request) {
	_, response, _, ok := rt.load(w, r)
	if !ok {
		return
	}
	if s := r.URL.Query().Get("stream"); s == "true" {
		out, err := AppendReplay(nil, []byte(response.Raw))
		if err != nil {
			api.WriteError(w, err)
			return
		}
		sse.SetHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append([]byte(response.Raw), '\n'))
}

// Delete serves DELETE /v1/responses/{id}.
func (rt Routes) Delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		api.WriteError(w, api.InvalidRequest("id", "id: not a response id"))
		return
	}
	if rt.Store == nil {
		api.WriteError(w, notFound(id))
		return
	}
	deleted, err := rt.Store.Delete(r.Context(), rt.Scope(r).Principal, id)
	if err != nil {
		api.WriteError(w, errStoreDown(err))
		return
	}
	if !deleted {
		api.WriteError(w, notFound(id))
		return
	}
	out := append([]byte(`{"id":`), api.AppendString(nil, id)...)
	out = append(out, `,"object":"response.deleted","deleted":true}`+"\n"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// InputItems serves GET /v1/responses/{id}/input_items: the items the
// response was given (those inherited through previous_response_id
// first), a page at a time: limit (1 to 100, default 20), order (desc,
// the default, newest first, or asc) and after (the id of the item the
// page starts after).
func (rt Routes) InputItems(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			api.WriteError(w, api.InvalidRequest("limit", "limit: must be an integer between 1 and 100"))
			return
		}
		limit = n
	}
	order := q.Get("order")
	switch order {
	case "":
		order = "desc"
	case "asc", "desc":
	default:
		api.WriteError(w, api.InvalidRequest("order", "order: must be asc or desc"))
		return
	}
	_, _, items, ok := rt.load(w, r)
	if !ok {
		return
	}
	all := items.Array()
	if order == "desc" {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	start := 0
	if after := q.Get("after"); after != "" {
		start = -1
		for i, it := range all {
			if it.Get("id").Str == after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			api.WriteError(w, api.InvalidRequest("after", "after: no input item with id '%s' in this response", after))
			return
		}
	}
	page := all[start:min(start+limit, len(all))]
	out := []byte(`{"object":"list","data":[`)
	for i, it := range page {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it.Raw...)
	}
	out = append(out, `],"first_id":`...)
	first, last := "", ""
	if len(page) > 0 {
		first, last = page[0].Get("id").Str, page[len(page)-1].Get("id").Str
	}
	out = api.AppendString(out, first)
	out = append(out, `,"last_id":`...)
	out = api.AppendString(out, last)
	out = append(out, `,"has_more":`...)
	out = strconv.AppendBool(out, start+len(page) < len(all))
	out = append(out, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
