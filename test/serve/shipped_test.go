package serve_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/test/kubetest"
)

// shippedBase renders deploy/canaryd and returns its daemon config (the ConfigMap's
// canaryd.yaml) and its Secret's values, as the pod would see them mounted.
func shippedBase(t *testing.T) (map[string]any, map[string]string) {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("..", "..", "deploy", "canaryd"))
	if err != nil {
		t.Fatalf("kustomize deploy/canaryd: %v", err)
	}
	data, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	secret := map[string]string{}
	for _, o := range objs {
		switch o.GetKind() {
		case "ConfigMap":
			text := stringAt(o.Object, "data", "canaryd.yaml")
			if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
				t.Fatalf("the ConfigMap's canaryd.yaml: %v", err)
			}
		case "Secret":
			sd, _ := o.Object["stringData"].(map[string]any)
			for k, v := range sd {
				secret[k], _ = v.(string)
			}
		}
	}
	if cfg == nil || len(secret) == 0 {
		t.Fatalf("deploy/canaryd renders no ConfigMap canaryd.yaml or no Secret values")
	}
	return cfg, secret
}

// stringAt is the string at path in obj, or "".
func stringAt(obj map[string]any, path ...string) string {
	var cur any = obj
	for _, p := range path {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// TestServeShippedBase runs canaryd serve with deploy/canaryd's own config and its empty
// Secret (only the addresses that differ on a laptop replaced): it starts, says that
// operator actions are disabled in the status API and the log, refuses actions, reads the
// repo without a token, and takes its Lease in the pod's namespace ($POD_NAMESPACE), since
// the config names none.
func TestServeShippedBase(t *testing.T) {
	w := newWorld(t)
	cfg, secret := shippedBase(t)
	le := cfg["kubernetes"].(map[string]any)["leaderElection"].(map[string]any)
	if ns, ok := le["namespace"]; ok && ns != "" {
		t.Fatalf("deploy/canaryd's config names the lease namespace %v; it must follow the pod", ns)
	}
	secretDir := filepath.Join(w.dir, "secret")
	for k, v := range secret {
		write(t, filepath.Join(secretDir, k), v)
	}
	git := cfg["git"].(map[string]any)
	git["url"] = "file://" + w.remote
	git["pollInterval"] = "1s"
	git["auth"].(map[string]any)["tokenFile"] = filepath.Join(secretDir, "git-token")
	if _, ok := git["webhookSecretFile"]; ok {
		git["webhookSecretFile"] = filepath.Join(secretDir, "webhook-secret")
	}
	cfg["listen"], cfg["dataDir"] = w.listen, filepath.Join(w.dir, "data")
	cfg["kubernetes"].(map[string]any)["kubeconfig"] = filepath.Join(w.dir, "kubeconfig")
	cfg["prometheus"] = map[string]any{"address": w.prom.URL}
	cfg["api"] = map[string]any{"tokenFile": filepath.Join(secretDir, "api-token")}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.config, string(data))

	w.serve("POD_NAME=canaryd-0", "POD_NAMESPACE="+w.ns)
	code, body := w.api("GET", "/api/v1/rollouts", "", nil)
	var list server.RolloutList
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /api/v1/rollouts: %d %s", code, body)
	}
	if list.Actions != server.ActionsDisabled || len(list.Rollouts) != 1 {
		t.Errorf("actions %q with %d rollouts, want %q and the one rollout", list.Actions, len(list.Rollouts), server.ActionsDisabled)
	}
	code, body = w.api("POST", "/api/v1/rollouts/"+rolloutName+"/pause", "anything", map[string]string{"reason": "test"})
	if code != 403 || !strings.Contains(string(body), "disabled") {
		t.Errorf("pause with actions disabled: %d %s, want 403 saying actions are disabled", code, body)
	}
	if log := w.logText(); !strings.Contains(log, "operator actions disabled") || !strings.Contains(log, "reading the repo anonymously") {
		t.Errorf("the log does not say that actions are disabled and Git is read anonymously:\n%s", log)
	}
	kube := kubernetes.NewForConfigOrDie(w.kube.Config)
	w.eventually(30*time.Second, "the lease in the pod's namespace", func() (bool, string) {
		l, err := kube.CoordinationV1().Leases(w.ns).Get(context.Background(), "canaryd", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "canaryd-0", "holder not yet canaryd-0"
	})
	if _, err := os.Stat(filepath.Join(w.dir, "data", "canaryd.db")); err != nil {
		t.Errorf("no store in the data dir: %v", err)
	}
}
