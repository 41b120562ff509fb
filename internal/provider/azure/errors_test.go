package azure

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// The errors Azure OpenAI documents, as its data plane sends them, and what
// the client sees in OpenAI's envelope.
func TestAzureErrorsMapToTheClientsEnvelope(t *testing.T) {
	const filterBody = `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":true,"detected":true},"violence":{"filtered":true,"severity":"medium"}}}}}`
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		wantParam  string
		wantInMsg  string
		wantRetry  time.Duration
	}{
		{name: "prompt refused by the content filter", status: 400, body: filterBody,
			wantStatus: 400, wantType: api.TypeInvalidRequest, wantCode: "content_filter", wantParam: "prompt",
			wantInMsg: "(filtered: jailbreak, violence medium)"},
		{name: "content filter told only by innererror (spec spelling)", status: 400,
			body:       `{"error":{"message":"filtered","innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_results":{"sexual":{"filtered":true,"severity":"high"}}}}}`,
			wantStatus: 400, wantType: api.TypeInvalidRequest, wantCode: "content_filter", wantParam: "prompt", wantInMsg: "(filtered: sexual high)"},
		{name: "OpenAI validation error passed through", status: 400,
			body:       `{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`,
			wantStatus: 400, wantType: api.TypeInvalidRequest, wantCode: "invalid_value", wantParam: "temperature", wantInMsg: "temperature"},
		{name: "unsupported api-version is the gateway's configuration", status: 400,
			body:       `{"error":{"code":"BadRequest","message":"API version not supported"}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: "unsupported_api_version", wantInMsg: "api_version"},
		{name: "model needs a newer api-version", status: 400,
			body:       `{"error":{"code":"BadRequest","message":"Model o3-mini is enabled only for api versions 2024-12-01-preview and later"}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: "unsupported_api_version", wantInMsg: "2024-12-01-preview"},
		{name: "deployment not found", status: 404,
			body:       `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`,
			wantStatus: 404, wantType: api.TypeNotFound, wantCode: "model_not_found", wantInMsg: "no such deployment"},
		{name: "resource not found is a wrong base_url or api-version", status: 404,
			body:       `{"error":{"code":"404","message":"Resource not found"}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: "upstream_not_found", wantInMsg: "base_url"},
		{name: "invalid key", status: 401,
			body:       `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: provider.CodeAuthFailed, wantInMsg: "Access denied"},
		{name: "forbidden by the resource's network rules", status: 403,
			body:       `{"error":{"code":"403","message":"Traffic is not from an approved private endpoint."}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: provider.CodeAuthFailed, wantInMsg: "private endpoint"},
		{name: "rate limited, retry-after-ms wins over Retry-After", status: 429,
			header:     http.Header{"Retry-After": {"7"}, "Retry-After-Ms": {"6500"}},
			body:       `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit."}}`,
			wantStatus: 429, wantType: api.TypeRateLimit, wantCode: "rate_limit_exceeded", wantInMsg: "rate limit", wantRetry: 6500 * time.Millisecond},
		{name: "rate limited with Retry-After only", status: 429, header: http.Header{"Retry-After": {"3"}},
			body:       `{"error":{"code":"429","message":"Rate limit is exceeded."}}`,
			wantStatus: 429, wantType: api.TypeRateLimit, wantCode: "rate_limit_exceeded", wantInMsg: "exceeded", wantRetry: 3 * time.Second},
		{name: "server error", status: 500,
			body:       `{"error":{"code":"InternalServerError","message":"The server had an error processing your request."}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: "InternalServerError", wantInMsg: "status 500"},
		{name: "overloaded", status: 503, body: `{"error":{"code":"503","message":"Service Unavailable"}}`,
			wantStatus: 502, wantType: api.TypeUpstream, wantCode: "upstream_error", wantInMsg: "Service Unavailable"},
		{name: "timeout", status: 504, body: `{"error":{"code":"Timeout","message":"The operation was timeout."}}`,
			wantStatus: 504, wantType: api.TypeTimeout, wantCode: "Timeout", wantInMsg: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := mapError("azure", tt.status, h, []byte(tt.body))
			if e.Status != tt.wantStatus || e.Type != tt.wantType || e.Code != tt.wantCode || e.Param != tt.wantParam {
				t.Fatalf("got status %d type %q code %q param %q, want %d %q %q %q", e.Status, e.Type, e.Code, e.Param,
					tt.wantStatus, tt.wantType, tt.wantCode, tt.wantParam)
			}
			if !strings.Contains(e.Message, tt.wantInMsg) {
				t.Fatalf("message %q lacks %q", e.Message, tt.wantInMsg)
			}
			if e.UpstreamStatus != tt.status {
				t.Fatalf("upstream status %d, want %d", e.UpstreamStatus, tt.status)
			}
			if tt.wantRetry != 0 && e.RetryAfter != tt.wantRetry {
				t.Fatalf("retry after %v, want %v", e.RetryAfter, tt.wantRetry)
			}
		})
	}
}
