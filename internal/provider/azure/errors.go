package azure

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// CodeContentFilter is the code of a request Azure's content filter
// refused, as Azure and OpenAI's envelope both spell it.
const CodeContentFilter = "content_filter"

// mapError maps an Azure OpenAI error answer. Azure's errors are OpenAI's
// envelope with its own codes: the status repeated as a string ("429"),
// Azure names (DeploymentNotFound, BadRequest), and content_filter with the
// filter's verdict in innererror. What the client did wrong stays a 4xx in
// its words; what the gateway's configuration got wrong (the api-version,
// the resource URL) is the gateway's 502.
func mapError(name string, status int, h http.Header, body []byte) *api.Error {
	e := provider.UpstreamError(name, status, h, body)
	code := gjson.GetBytes(body, "error.code").String()
	inner := gjson.GetBytes(body, "error.innererror")
	msg := gjson.GetBytes(body, "error.message").String()
	if _, err := strconv.Atoi(code); err == nil && e.Code == code {
		// Azure's "429", "503": the status again, no code of its own.
		e.Code = ""
		if e.Status == http.StatusBadGateway {
			e.Code = "upstream_error"
		}
	}
	switch {
	case status == http.StatusBadRequest && (code == CodeContentFilter || inner.Get("code").String() == "ResponsibleAIPolicyViolation"):
		e.Status, e.Type, e.Code = http.StatusBadRequest, api.TypeInvalidRequest, CodeContentFilter
		if e.Param == "" {
			e.Param = "prompt"
		}
		if cats := filtered(inner); cats != "" {
			e.Message += " (filtered: " + cats + ")"
		}
	case status == http.StatusBadRequest && strings.Contains(strings.ToLower(msg), "api version"):
		e = config502(status, "unsupported_api_version",
			fmt.Sprintf("provider %s: Azure OpenAI refused the configured api_version: %s", name, msg))
	case status == http.StatusNotFound && code == "DeploymentNotFound":
		e.Type, e.Code = api.TypeNotFound, "model_not_found"
		e.Message = fmt.Sprintf("provider %s has no such deployment: %s", name, msg)
	case status == http.StatusNotFound:
		// "Resource not found": a path Azure does not serve, from a
		// base_url that is not the resource root or a missing api-version.
		e = config502(status, "upstream_not_found",
			fmt.Sprintf("provider %s: Azure OpenAI answered 404 (%s); check base_url (the resource root) and api_version", name, msg))
	case status == http.StatusTooManyRequests:
		if e.Code == "" {
			e.Code = "rate_limit_exceeded"
		}
		if ms, err := strconv.ParseInt(h.Get("Retry-After-Ms"), 10, 64); err == nil && ms > 0 {
			e.RetryAfter = time.Duration(ms) * time.Millisecond
		}
	}
	return e
}

// config502 is a refusal caused by the gateway's configuration of the
// provider: the client's request was fine.
func config502(status int, code, msg string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: code, UpstreamStatus: status, Message: msg}
}

// filtered lists the categories the content filter blocked, with their
// severity ("violence medium, jailbreak"), from innererror's
// content_filter_result (Azure's spelling) or content_filter_results (its
// specification's).
func filtered(inner gjson.Result) string {
	res := inner.Get("content_filter_result")
	if !res.Exists() {
		res = inner.Get("content_filter_results")
	}
	var cats []string
	res.ForEach(func(k, v gjson.Result) bool {
		if v.Get("filtered").Bool() {
			c := k.String()
			if sev := v.Get("severity").String(); sev != "" && sev != "safe" {
				c += " " + sev
			}
			cats = append(cats, c)
		}
		return true
	})
	sort.Strings(cats)
	return strings.Join(cats, ", ")
}
