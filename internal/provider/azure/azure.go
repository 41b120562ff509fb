// Package azure is the adapter for Azure OpenAI: OpenAI's API behind
// per-deployment paths and an api-version (or the v1 endpoint), with an
// api-key or a Microsoft Entra ID token. It configures the OpenAI adapter
// with Azure's URLs, credentials and errors rather than copying it.
package azure

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
)

// DefaultAPIVersion is the api-version sent when none is configured: the
// GA version of the data-plane inference API.
const DefaultAPIVersion = "2024-10-21"

// Scope is the Entra ID scope of Azure OpenAI (Cognitive Services) tokens.
const Scope = "https://cognitiveservices.azure.com/.default"

// Config configures one Azure OpenAI resource.
type Config struct {
	Name string
	// BaseURL is the resource root, https://RESOURCE.openai.azure.com
	// (a trailing /openai or /openai/v1 is tolerated).
	BaseURL string
	// APIKey is sent as the api-key header. Empty: an Entra ID bearer
	// token from Credential.
	APIKey string
	// APIVersion is a dated version (default DefaultAPIVersion), sent as
	// ?api-version= on /openai/deployments/{deployment}/... paths; "v1" or
	// "preview" selects the v1 endpoint, /openai/v1/..., where the model
	// field names the deployment ("preview" adds api-version=preview).
	APIVersion string
	// Credential gives Entra ID tokens when APIKey is empty; nil: the
	// DefaultAzureCredential chain (environment, workload identity,
	// managed identity, Azure CLI).
	Credential azcore.TokenCredential
	Models     []string
	Client     *http.Client
	// MaxResponseBytes bounds a non-streamed answer (0: the OpenAI
	// adapter's default).
	MaxResponseBytes int64
}

// v1 reports whether version selects the v1 endpoint.
func v1(version string) bool { return version == "v1" || version == "preview" }

// New returns the provider for cfg: the OpenAI adapter speaking chat,
// Responses and embeddings natively at Azure's paths.
func New(cfg Config) *openai.Provider {
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	u := &urls{root: root(cfg.BaseURL), version: cfg.APIVersion}
	oc := openai.Config{Name: cfg.Name, Type: "azure", APIKey: cfg.APIKey, Models: cfg.Models, Client: cfg.Client,
		MaxResponseBytes: cfg.MaxResponseBytes, Endpoint: u.endpoint,
		Surfaces:        []provider.Surface{provider.SurfaceResponses, provider.SurfaceEmbeddings},
		MapError:        func(status int, h http.Header, body []byte) *api.Error { return mapError(cfg.Name, status, h, body) },
		OmitStreamUsage: !streamUsageSupported(cfg.APIVersion)}
	if cfg.APIKey != "" {
		key := []string{cfg.APIKey}
		oc.Authorize = func(_ context.Context, h http.Header) error {
			h["Api-Key"] = key
			return nil
		}
	} else {
		oc.Authorize = newTokenSource(cfg.Name, cfg.Credential).authorize
	}
	return openai.New(oc)
}

// defaultCredential is the DefaultAzureCredential chain, or an error naming
// the provider when it cannot be built.
func defaultCredential(name string) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azure provider %s: no Entra ID credential: %w", name, err)
	}
	return cred, nil
}

// root is the resource root of base: without a trailing slash, /openai or
// /openai/v1, which people paste from Azure's portal.
func root(base string) string {
	base = strings.TrimRight(base, "/")
	base = strings.TrimSuffix(base, "/openai/v1")
	return strings.TrimSuffix(base, "/openai")
}

// streamUsageSupported reports whether version accepts stream_options
// (from 2024-09-01-preview; every v1 version). Dated versions compare as
// strings.
func streamUsageSupported(version string) bool {
	return v1(version) || version >= "2024-09-01"
}

// maxCachedURLs bounds the parsed URLs kept: one per deployment and
// surface; a client naming deployments at will ("azure/anything") gets
// its URL built per call past it.
const maxCachedURLs = 1024

// urls builds and keeps the parsed endpoint of each (surface, deployment).
type urls struct {
	root, version string
	mu            sync.RWMutex
	byModel       [3]map[string]*url.URL // chat, responses, embeddings
}

// slot is the index in byModel of surface s.
func slot(s provider.Surface) (int, string, bool) {
	switch s {
	case provider.SurfaceChat:
		return 0, "/chat/completions", true
	case provider.SurfaceResponses:
		return 1, "/responses", true
	case provider.SurfaceEmbeddings:
		return 2, "/embeddings", true
	}
	return 0, "", false
}

// endpoint is the URL of surface s for deployment model:
// {root}/openai/deployments/{model}{path}?api-version=V, or on the v1
// endpoint {root}/openai/v1{path}. Responses always go to the v1 endpoint,
// where Azure serves them.
func (u *urls) endpoint(s provider.Surface, model string) (*url.URL, error) {
	i, path, ok := slot(s)
	if !ok {
		return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "surface_not_supported",
			Message: fmt.Sprintf("Azure OpenAI does not serve the %s API", s)}
	}
	u.mu.RLock()
	e := u.byModel[i][model]
	u.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	if model == "" {
		return nil, api.InvalidRequest("model", "an Azure OpenAI request needs a deployment name as its model")
	}
	var raw string
	switch {
	case v1(u.version) || s == provider.SurfaceResponses:
		raw = u.root + "/openai/v1" + path
		if u.version == "preview" {
			raw += "?api-version=preview"
		}
	default:
		raw = u.root + "/openai/deployments/" + url.PathEscape(model) + path + "?api-version=" + url.QueryEscape(u.version)
	}
	e, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("azure: endpoint %q: %w", raw, err)
	}
	e.Host = strings.TrimSuffix(e.Host, ":")
	u.mu.Lock()
	if u.byModel[i] == nil {
		u.byModel[i] = make(map[string]*url.URL)
	}
	if len(u.byModel[i]) < maxCachedURLs {
		u.byModel[i][model] = e
	}
	u.mu.Unlock()
	return e, nil
}
