package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// promtool returns the promtool binary; without it the test is skipped,
// except in CI, which installs it (.ci/run) and must run these checks.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus); CI must check the rules")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestPrometheusConfigAndRulesAreValid(t *testing.T) {
	pt := promtool(t)
	run(t, pt, "check", "config", "prometheus.yml") // also checks the rule files it names
	run(t, pt, "check", "rules", "alerts.yml")
}

// The rule unit tests (deploy/alerts_test.yml) pass, and every alert has a
// case that fires it and one that does not.
func TestAlertRulesFireAndStayQuiet(t *testing.T) {
	pt := promtool(t)
	run(t, pt, "test", "rules", "alerts_test.yml")

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			Name  string `yaml:"name"`
			Cases []struct {
				Alert string `yaml:"alertname"`
				Exp   []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "alerts_test.yml", &tests)
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if len(c.Exp) > 0 {
				fires[c.Alert]++
			} else {
				quiet[c.Alert]++
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if fires[r.Alert] == 0 || quiet[r.Alert] == 0 {
				t.Errorf("alert %s: %d firing and %d quiet test cases in alerts_test.yml, want at least one of each", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	for _, want := range []string{"TrainingStalled", "WorkerLost", "NonFiniteLoss", "CoordinatorNoLeader",
		"CoordinatorQuorumAtRisk", "CheckpointTooOld", "StragglerHigh", "TokensPerSecondHalved"} {
		if fires[want] == 0 {
			t.Errorf("no alert %s (or no test firing it)", want)
		}
	}
	if n < 8 {
		t.Errorf("%d alerts, want at least the 8 operators expect", n)
	}
}

// Every ringmaster_* name the rules and the board use is one the binaries
// export: a constant of pkg/metrics/names.go (histograms with their
// _bucket, _sum and _count series).
func TestRulesAndBoardUseExportedNames(t *testing.T) {
	known := exportedNames(t)
	queries, err := BoardQueries("grafana/ringmaster.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 30 {
		t.Errorf("the board has %d queries, want the ≥ 30 panels of its five rows", len(queries))
	}
	rules, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`ringmaster_[a-z_]+`)
	for src, text := range map[string]string{"alerts.yml": string(rules), "grafana/ringmaster.json": strings.Join(queries, "\n")} {
		for _, n := range name.FindAllString(text, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suf); ok && known[b] {
					base = b
				}
			}
			if !known[base] {
				t.Errorf("%s uses %s, which pkg/metrics/names.go does not define", src, n)
			}
		}
	}
}

// exportedNames parses pkg/metrics/names.go for its string constants.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../pkg/metrics/names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "ringmaster_") {
				names[s] = true
			}
		}
		return true
	})
	if len(names) < 40 {
		t.Fatalf("found %d metric names in names.go; the parser is not reading it", len(names))
	}
	return names
}

func TestBoardQueriesRejectsAPanelWithoutQuery(t *testing.T) {
	path := t.TempDir() + "/b.json"
	if err := os.WriteFile(path, []byte(`{"panels":[{"type":"row","title":"r","panels":[{"type":"timeseries","title":"empty"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BoardQueries(path); err == nil || !strings.Contains(err.Error(), `"empty"`) {
		t.Fatalf("BoardQueries = %v, want an error naming the panel", err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
