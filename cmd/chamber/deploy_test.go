package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// declaredMetrics finds every chamber_* metric the code registers.
func declaredMetrics(t *testing.T) []string {
	re := regexp.MustCompile(`Name:\s*"(chamber_[a-z_]+)"`)
	var out []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestGrafanaDashboard: every metric the dashboard queries exists, and
// every metric Chamber exports is on the dashboard.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/chamber.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	declared := declaredMetrics(t)
	if len(declared) < 10 {
		t.Fatalf("found only %d declared metrics: %v", len(declared), declared)
	}
	used := map[string]bool{}
	re := regexp.MustCompile(`chamber_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(declared, base) {
						m = base
					}
				}
				if !slices.Contains(declared, m) {
					t.Errorf("panel %q queries %s, which Chamber does not export", p.Title, m)
				}
				used[m] = true
			}
		}
	}
	for _, m := range declared {
		if !used[m] {
			t.Errorf("metric %s is on no dashboard panel", m)
		}
	}
}

// TestDeployConfiguration: the compose file and the Kubernetes manifests
// parse, and every CHAMBER_* setting they use is a real flag of chamber
// serve (or the P12 password).
func TestDeployConfiguration(t *testing.T) {
	out, err := exec.Command(binary, "serve", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("serve -h: %v\n%s", err, out)
	}
	known := regexp.MustCompile(`CHAMBER_[A-Z0-9_]+`).FindAllString(string(out), -1)
	known = append(known, "CHAMBER_SIGNING_P12_PASSWORD")
	check := func(file string, vars []string) {
		for _, v := range vars {
			if !slices.Contains(known, v) {
				t.Errorf("%s sets %s, which chamber serve does not read", file, v)
			}
		}
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var vars []string
	nodes := map[string]bool{}
	for name, svc := range compose.Services {
		if !strings.HasPrefix(name, "chamber") {
			continue
		}
		for k := range svc.Environment {
			vars = append(vars, k)
		}
		nodes[svc.Environment["CHAMBER_NODE_ID"]] = true
	}
	if len(vars) == 0 {
		t.Fatal("compose.yaml configures no chamber service")
	}
	check("compose.yaml", vars)
	if len(nodes) != 3 || nodes[""] {
		t.Errorf("compose.yaml runs nodes %v, want three with distinct CHAMBER_NODE_ID", nodes)
	}

	b, err = os.ReadFile("../../deploy/kubernetes/chamber.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind       string            `yaml:"kind"`
			Data       map[string]string `yaml:"data"`
			StringData map[string]string `yaml:"stringData"`
		}
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("kubernetes/chamber.yaml: %v", err)
		}
		kinds[doc.Kind] = true
		vars = vars[:0]
		for k := range doc.Data {
			vars = append(vars, k)
		}
		for k := range doc.StringData {
			vars = append(vars, k)
		}
		check("kubernetes/chamber.yaml "+doc.Kind, vars)
	}
	for _, k := range []string{"ConfigMap", "Secret", "StatefulSet", "Service", "Ingress", "PodDisruptionBudget"} {
		if !kinds[k] {
			t.Errorf("kubernetes/chamber.yaml has no %s", k)
		}
	}
}
