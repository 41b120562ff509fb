package chartcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

const chartDir = "../helm/edge-agent"

// rendered is one render of the chart, every manifest decoded strictly into
// its Kubernetes API type.
type rendered struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMap      *corev1.ConfigMap
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	pdb            *policyv1.PodDisruptionBudget
	serviceAccount *corev1.ServiceAccount
	serviceMonitor *monitoringv1.ServiceMonitor
	rule           *monitoringv1.PrometheusRule
	kinds          []string
}

var valueFiles = []struct {
	name, file string
}{
	{"default values", ""},
	{"Redis Cluster over TLS", "values-redis-cluster.yaml"},
}

// TestChartLintsClean is `helm lint` (helm's own linter, from its Go
// module: no helm binary is installable here) for each values file.
func TestChartLintsClean(t *testing.T) {
	for _, vf := range valueFiles {
		t.Run(vf.name, func(t *testing.T) {
			l := lint.All(chartDir, readValues(t, vf.file), "edge", false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestChartRendersManifestsTheBinaryAccepts renders the chart as `helm
// template` does and checks the result against the gateway itself: the
// rendered ConfigMap and environment load as its configuration, the
// container ports are the ones it listens on, and the probes answer on
// its real handler.
func TestChartRendersManifestsTheBinaryAccepts(t *testing.T) {
	for _, vf := range valueFiles {
		t.Run(vf.name, func(t *testing.T) {
			r := render(t, readValues(t, vf.file))
			for _, kind := range []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount"} {
				if !slices.Contains(r.kinds, kind) {
					t.Errorf("no %s rendered (got %v)", kind, r.kinds)
				}
			}
			pod := r.deployment.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			checkSecurity(t, pod, c)
			if len(pod.TopologySpreadConstraints) == 0 {
				t.Error("no topology spread constraints")
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
			}

			env, secretRefs := containerEnv(t, c)
			checkEnvNamesAreRead(t, env, secretRefs)
			cfg := loadConfig(t, r.configMap, c, env, secretRefs)

			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if int(ports["http"]) != cfg.Port || int(ports["metrics"]) != cfg.MetricsPort {
				t.Errorf("container ports %v, but the gateway listens on %d and metrics on %d", ports, cfg.Port, cfg.MetricsPort)
			}
			if cfg.MetricsHost != "0.0.0.0" {
				t.Errorf("METRICS_HOST %q: the metrics port cannot be scraped from another pod", cfg.MetricsHost)
			}
			for _, sp := range r.service.Spec.Ports {
				if _, ok := ports[sp.TargetPort.String()]; !ok {
					t.Errorf("service port %s targets %q, not a container port %v", sp.Name, sp.TargetPort.String(), ports)
				}
			}
			if r.serviceMonitor != nil {
				for _, ep := range r.serviceMonitor.Spec.Endpoints {
					if !slices.ContainsFunc(r.service.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.TargetPort.String() == "metrics" }) {
						t.Errorf("ServiceMonitor scrapes port %q, not the service's metrics port", ep.Port)
					}
				}
			}
			checkProbes(t, c, cfg)
			checkSelectors(t, r)
			checkShutdown(t, pod, cfg)
		})
	}
}

// TestRedisClusterValuesTurnOnClusterModeOverTLS checks that the Redis
// Cluster values file gives the gateway cluster mode, the URL from its
// Secret and the CA it needs, and that the optional ServiceMonitor and
// PrometheusRule come with it.
func TestRedisClusterValuesTurnOnClusterModeOverTLS(t *testing.T) {
	r := render(t, readValues(t, "values-redis-cluster.yaml"))
	c := r.deployment.Spec.Template.Spec.Containers[0]
	env, secretRefs := containerEnv(t, c)
	if env["REDIS_CLUSTER"] != "true" {
		t.Errorf("REDIS_CLUSTER = %q, want true", env["REDIS_CLUSTER"])
	}
	if ref, ok := secretRefs["REDIS_URL"]; !ok || ref.Name != "edge-agent-redis" {
		t.Errorf("REDIS_URL comes from %+v, want the Secret edge-agent-redis", ref)
	}
	caFile := env["SSL_CERT_FILE"]
	mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return strings.HasPrefix(caFile, m.MountPath+"/")
	})
	if caFile == "" || !mounted {
		t.Errorf("SSL_CERT_FILE %q is not in a mounted volume (%+v)", caFile, c.VolumeMounts)
	}
	cfg := loadConfig(t, r.configMap, c, env, secretRefs)
	if !cfg.Cache.RedisCluster || cfg.Cache.RedisURL == "" {
		t.Errorf("gateway config: cluster %v, url %q", cfg.Cache.RedisCluster, cfg.Cache.RedisURL)
	}
	if r.serviceMonitor == nil || r.rule == nil {
		t.Fatalf("ServiceMonitor %v, PrometheusRule %v: want both", r.serviceMonitor != nil, r.rule != nil)
	}
	if ep := r.serviceMonitor.Spec.Endpoints; len(ep) != 1 || ep[0].Authorization == nil || ep[0].Authorization.Credentials == nil {
		t.Errorf("ServiceMonitor endpoints %+v: want one, with the admin key (keys are configured)", ep)
	}
}

// TestPrometheusRuleIsTheAlertsFile keeps the chart's copy of the alert
// rules (Helm cannot read files outside the chart) equal to
// deploy/prometheus/alerts.yml, which promtool tests.
func TestPrometheusRuleIsTheAlertsFile(t *testing.T) {
	chartCopy, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chartCopy, orig) {
		t.Fatal("deploy/helm/edge-agent/files/alerts.yml differs from deploy/prometheus/alerts.yml: cp deploy/prometheus/alerts.yml deploy/helm/edge-agent/files/")
	}
	r := render(t, readValues(t, "values-redis-cluster.yaml"))
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(orig, &want); err != nil {
		t.Fatalf("alerts.yml is not a PrometheusRule spec: %v", err)
	}
	if len(r.rule.Spec.Groups) != len(want.Groups) || len(r.rule.Spec.Groups[0].Rules) != len(want.Groups[0].Rules) {
		t.Fatalf("PrometheusRule has %d groups, want %d", len(r.rule.Spec.Groups), len(want.Groups))
	}
	for i, rule := range want.Groups[0].Rules {
		got := r.rule.Spec.Groups[0].Rules[i]
		if got.Alert != rule.Alert || got.Expr.String() != rule.Expr.String() || got.Annotations["description"] != rule.Annotations["description"] {
			t.Errorf("rule %d: got %s %q, want %s %q", i, got.Alert, got.Expr.String(), rule.Alert, rule.Expr.String())
		}
	}
}

// TestChartRefusesRedisSettingsTheGatewayCannotUse: an unknown mode, no
// address, TLS over redis://.
func TestChartRefusesRedisSettingsTheGatewayCannotUse(t *testing.T) {
	tests := []struct {
		name  string
		redis map[string]any
		want  string
	}{
		{"unknown mode", map[string]any{"mode": "sentinel"}, "is not none, single or cluster"},
		{"no address", map[string]any{"mode": "single", "url": ""}, "set redis.url or redis.existingSecret.name"},
		{"tls without rediss", map[string]any{"mode": "single", "url": "redis://r:6379", "tls": map[string]any{"enabled": true}}, "needs a rediss:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderErr(t, map[string]any{"redis": tt.redis})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("render error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

func render(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := renderErr(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// renderErr is `helm template edge <chart> -f values`: the chart's values
// under the overrides, rendered by helm's engine, split into manifests.
func renderErr(t *testing.T, vals map[string]any) (*rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "edge", Namespace: "llm", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	var all strings.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(files[name]) != "" {
			fmt.Fprintf(&all, "---\n# Source: %s\n%s\n", name, files[name])
		}
	}
	r := &rendered{}
	for _, doc := range releaseutil.SplitManifests(all.String()) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("manifest is not YAML: %v\n%s", err, doc)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			r.deployment = &appsv1.Deployment{}
			obj = r.deployment
		case "v1 Service":
			r.service = &corev1.Service{}
			obj = r.service
		case "v1 ConfigMap":
			r.configMap = &corev1.ConfigMap{}
			obj = r.configMap
		case "v1 ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			obj = r.serviceAccount
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			obj = r.hpa
		case "policy/v1 PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			obj = r.pdb
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.serviceMonitor = &monitoringv1.ServiceMonitor{}
			obj = r.serviceMonitor
		case "monitoring.coreos.com/v1 PrometheusRule":
			r.rule = &monitoringv1.PrometheusRule{}
			obj = r.rule
		default:
			t.Fatalf("unexpected manifest %s %s", head.APIVersion, head.Kind)
		}
		// Strict: a field the API type does not have (a typo, a wrong
		// indentation) is an error, as the API server's strict field
		// validation makes it.
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
		}
		r.kinds = append(r.kinds, head.Kind)
	}
	if r.deployment == nil || r.configMap == nil || r.service == nil {
		t.Fatalf("rendered %v: want a Deployment, a ConfigMap and a Service", r.kinds)
	}
	return r, nil
}

func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot with a non-zero uid", psc)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want no privilege escalation, a read-only root and every capability dropped", sc)
	}
}

// containerEnv returns the container's literal variables and those taken
// from Secrets.
func containerEnv(t *testing.T, c corev1.Container) (literal map[string]string, secrets map[string]*corev1.SecretKeySelector) {
	t.Helper()
	literal, secrets = map[string]string{}, map[string]*corev1.SecretKeySelector{}
	for _, e := range c.Env {
		if _, dup := literal[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			literal[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			secrets[e.Name] = e.ValueFrom.SecretKeyRef
		default:
			literal[e.Name] = "from-" + e.Name // fieldRef: the kubelet fills it
		}
	}
	return literal, secrets
}

// binaryEnv is every environment variable name the gateway reads: those of
// internal/config (recorded by running its ApplyEnv), of the telemetry
// setup, and of the Go runtime and standard library that matter in a pod.
func binaryEnv() map[string]string {
	read := map[string]string{}
	cfg := config.Default()
	_ = config.ApplyEnv(&cfg, func(name string) string {
		read[name] = "internal/config"
		return ""
	})
	for _, name := range telemetry.EnvVars() {
		read[name] = "internal/telemetry"
	}
	for _, name := range []string{"GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		read[name] = "Go runtime / crypto/x509"
	}
	return read
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnvNamesAreRead fails for a variable the binary never reads: a
// misspelt name does nothing at run time, so only this test can catch it.
// A variable that only feeds another through the kubelet's $(NAME)
// expansion is allowed.
func checkEnvNamesAreRead(t *testing.T, env map[string]string, secrets map[string]*corev1.SecretKeySelector) {
	t.Helper()
	read := binaryEnv()
	if len(read) < 20 || read["REDIS_URL"] == "" || read["PORT"] == "" {
		t.Fatalf("the list of variables the binary reads looks wrong: %v", slices.Sorted(maps.Keys(read)))
	}
	expanded := map[string]bool{}
	for _, v := range env {
		for _, m := range envRef.FindAllStringSubmatch(v, -1) {
			expanded[m[1]] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if read[name] == "" && !expanded[name] {
			t.Errorf("env %s is set by the chart but the binary never reads it", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		if read[name] == "" {
			t.Errorf("env %s (from Secret %s) is set by the chart but the binary never reads it", name, secrets[name].Name)
		}
	}
}

// loadConfig loads the gateway's configuration exactly as the container
// does: the ConfigMap's file at the path of --config, then the container's
// environment (Secrets given placeholder values).
func loadConfig(t *testing.T, cm *corev1.ConfigMap, c corev1.Container, env map[string]string, secrets map[string]*corev1.SecretKeySelector) config.Config {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %v: no --config", c.Args)
	}
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == c.Args[i+1] })
	if mount < 0 {
		t.Fatalf("--config %s is not a mounted file (%+v)", c.Args[i+1], c.VolumeMounts)
	}
	data, ok := cm.Data[c.VolumeMounts[mount].SubPath]
	if !ok {
		t.Fatalf("ConfigMap has no key %q", c.VolumeMounts[mount].SubPath)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	all := maps.Clone(env)
	for name := range secrets {
		all[name] = "secret-" + strings.ToLower(name)
		if name == "REDIS_URL" {
			all[name] = "rediss://127.0.0.1:1/0"
		}
	}
	cfg, err := config.Load(path, func(k string) string { return all[k] })
	if err != nil {
		t.Fatalf("the gateway refuses the rendered configuration: %v", err)
	}
	return cfg
}

// checkProbes sends each probe's request to the gateway's real handler,
// built from the rendered configuration: liveness must answer 200, and
// readiness must be the route that answers 200 or 503, never a 404.
func checkProbes(t *testing.T, c corev1.Container, cfg config.Config) {
	t.Helper()
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Fatal("liveness and readiness probes are both required")
	}
	cfg.Cache.RedisURL = "" // no Redis runs here; the probes do not depend on it
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "probe-check", Type: "openai", BaseURL: "http://127.0.0.1:1/v1"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger, err := telemetry.NewLogger(io.Discard, "json", "error")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
		g := p.probe.HTTPGet
		if g == nil {
			t.Fatalf("%s probe is not an HTTP GET", p.name)
		}
		if g.Port.String() != "http" && g.Port.IntValue() != cfg.Port {
			t.Errorf("%s probe port %s is not the API port", p.name, g.Port.String())
		}
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, g.Path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s probe GET %s: %d %s", p.name, g.Path, rec.Code, rec.Body)
		}
		if p.probe.TimeoutSeconds == 0 || p.probe.PeriodSeconds == 0 {
			t.Errorf("%s probe without timeout or period: %+v", p.name, p.probe)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path == c.LivenessProbe.HTTPGet.Path {
		t.Error("readiness and liveness probe the same path: a draining pod would be restarted")
	}
}

func checkSelectors(t *testing.T, r *rendered) {
	t.Helper()
	podLabels := r.deployment.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(r.deployment.Spec.Selector.MatchLabels) {
		t.Errorf("deployment selector %v does not match its pods %v", r.deployment.Spec.Selector.MatchLabels, podLabels)
	}
	if !matches(r.service.Spec.Selector) {
		t.Errorf("service selector %v does not match the pods %v", r.service.Spec.Selector, podLabels)
	}
	if r.pdb != nil && !matches(r.pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PDB selector %v does not match the pods", r.pdb.Spec.Selector.MatchLabels)
	}
	if r.hpa != nil && (r.hpa.Spec.ScaleTargetRef.Kind != "Deployment" || r.hpa.Spec.ScaleTargetRef.Name != r.deployment.Name) {
		t.Errorf("HPA scales %+v, not the deployment %s", r.hpa.Spec.ScaleTargetRef, r.deployment.Name)
	}
	if r.hpa != nil && r.deployment.Spec.Replicas != nil {
		t.Error("the deployment sets replicas while an HPA scales it: every upgrade would reset the count")
	}
}

// checkShutdown: the pod's grace period covers the drain delay and the
// shutdown timeout, or the kubelet kills streams the gateway would finish.
func checkShutdown(t *testing.T, pod corev1.PodSpec, cfg config.Config) {
	t.Helper()
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	need := (cfg.ShutdownDrainDelay.D() + cfg.ShutdownTimeout.D()).Seconds()
	if got := float64(*pod.TerminationGracePeriodSeconds); got < need {
		t.Errorf("terminationGracePeriodSeconds %s < drain delay + shutdown timeout (%gs)", strconv.FormatFloat(got, 'f', -1, 64), need)
	}
}
