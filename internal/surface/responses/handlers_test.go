package responses

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/surface"
)

// routesServer serves the stored-response routes; the X-Key header names
// the principal, as the server's authentication would.
func routesServer(t *testing.T, store Store) *httptest.Server {
	rt := Routes{Store: store, Scope: func(r *http.Request) surface.Scope {
		return surface.Scope{Principal: r.Header.Get("X-Key")}
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/responses/{id}", rt.Retrieve)
	mux.HandleFunc("DELETE /v1/responses/{id}", rt.Delete)
	mux.HandleFunc("GET /v1/responses/{id}/input_items", rt.InputItems)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, key string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, url, nil)
	req.Header.Set("X-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestStoredResponseRoutes(t *testing.T) {
	schemas := responseSchemas(t)
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	stored := answerTranslated(t, s, alice, `{"model":"m","input":[{"role":"user","content":"one"},{"role":"user","content":"two"},{"role":"user","content":"three"}]}`, toolCallCompletion)
	id := gjson.GetBytes(stored, "id").Str
	srv := routesServer(t, s.Store)

	status, body := call(t, "GET", srv.URL+"/v1/responses/"+id, "alice")
	if status != 200 || strings.TrimSpace(string(body)) != string(stored) {
		t.Fatalf("GET = %d %s", status, body)
	}
	conform(t, schemas, "Response", "GET", body)

	status, body = call(t, "GET", srv.URL+"/v1/responses/"+id+"?stream=true", "alice")
	if status != 200 || !strings.Contains(string(body), "event: response.completed") {
		t.Errorf("GET ?stream=true = %d %s", status, body)
	}

	for _, key := range []string{"bob", ""} {
		status, body = call(t, "GET", srv.URL+"/v1/responses/"+id, key)
		if status != 404 {
			t.Errorf("GET as %q = %d %s", key, status, body)
		}
		conform(t, schemas, "ErrorResponse", "404", body)
	}

	status, body = call(t, "GET", srv.URL+"/v1/responses/"+id+"/input_items", "alice")
	conform(t, schemas, "ResponseItemList", "input_items", body)
	if status != 200 || gjson.GetBytes(body, "data.0.content.0.text").Str != "three" || gjson.GetBytes(body, "data.#").Int() != 3 {
		t.Errorf("input_items (desc) = %d %s", status, body)
	}
	_, body = call(t, "GET", srv.URL+"/v1/responses/"+id+"/input_items?order=asc&limit=2", "alice")
	if gjson.GetBytes(body, "data.#").Int() != 2 || !gjson.GetBytes(body, "has_more").Bool() || gjson.GetBytes(body, "data.0.content.0.text").Str != "one" {
		t.Errorf("input_items page 1 = %s", body)
	}
	last := gjson.GetBytes(body, "last_id").Str
	_, body = call(t, "GET", srv.URL+"/v1/responses/"+id+"/input_items?order=asc&limit=2&after="+last, "alice")
	if gjson.GetBytes(body, "data.#").Int() != 1 || gjson.GetBytes(body, "has_more").Bool() || gjson.GetBytes(body, "data.0.content.0.text").Str != "three" {
		t.Errorf("input_items page 2 = %s", body)
	}
	if status, _ := call(t, "GET", srv.URL+"/v1/responses/"+id+"/input_items?limit=0", "alice"); status != 400 {
		t.Errorf("limit=0: %d", status)
	}
	if status, _ := call(t, "GET", srv.URL+"/v1/responses/"+id+"/input_items", "bob"); status != 404 {
		t.Errorf("input_items as bob: %d", status)
	}

	if status, _ := call(t, "DELETE", srv.URL+"/v1/responses/"+id, "bob"); status != 404 {
		t.Errorf("DELETE as bob: %d", status)
	}
	status, body = call(t, "DELETE", srv.URL+"/v1/responses/"+id, "alice")
	if status != 200 {
		t.Errorf("DELETE = %d %s", status, body)
	}
	conform(t, schemas, "DeleteResponseResponse", "DELETE", body)
	if status, _ := call(t, "GET", srv.URL+"/v1/responses/"+id, "alice"); status != 404 {
		t.Errorf("GET after DELETE: %d", status)
	}
}

func TestStoredResponseRoutesWithTheStoreOff(t *testing.T) {
	srv := routesServer(t, nil)
	if status, _ := call(t, "GET", srv.URL+"/v1/responses/resp_1", "alice"); status != 404 {
		t.Errorf("GET = %d", status)
	}
	if status, _ := call(t, "DELETE", srv.URL+"/v1/responses/resp_1", "alice"); status != 404 {
		t.Errorf("DELETE = %d", status)
	}
}
