// Package deploy holds the deployment files (Dockerfiles, docker-compose's
// Prometheus config and alert rules, the Grafana board, Kubernetes
// manifests) and the Go code that checks them: BoardQueries reads the
// Grafana board's PromQL for the tests that run it against a real
// Prometheus, and the package's tests run promtool on the config and rules.
package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// board is the part of a Grafana dashboard JSON the checks read.
type board struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
	Targets []target `json:"targets"`
}

type target struct {
	Expr string `json:"expr"`
}

// BoardQueries returns the PromQL of every panel target of the Grafana board
// at path, in board order. A panel (other than a row) without a query, or a
// target without an expression, is an error: it would draw nothing.
func BoardQueries(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("grafana board: %w", err)
	}
	var b board
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("grafana board %s: %w", path, err)
	}
	var out []string
	var walk func([]panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			if p.Type == "row" {
				if err := walk(p.Panels); err != nil {
					return err
				}
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("grafana board %s: panel %q has no query", path, p.Title)
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("grafana board %s: panel %q has a target without expr", path, p.Title)
				}
				out = append(out, t.Expr)
			}
		}
		return nil
	}
	if err := walk(b.Panels); err != nil {
		return nil, err
	}
	return out, nil
}

// ExpandBoardQuery replaces the Grafana variables the board uses so that
// Prometheus can run the query: $job_id becomes the given job (a regexp;
// ".+" for all) and $__rate_interval one minute.
func ExpandBoardQuery(q, jobID string) string {
	return strings.NewReplacer("$job_id", jobID, "$__rate_interval", "1m").Replace(q)
}
