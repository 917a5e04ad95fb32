package layering

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ringmaster-ml/ringmaster/"

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Deps       []string
}

// list is `go list -json` of every package of the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("go list: %v (the go tool is needed to read the import graph)", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the module has more", len(pkgs))
	}
	return pkgs
}

// The GEMM is an execution option of each model (model.Compute), never
// installed for the whole process: no non-test file calls blas32.Use.
func TestNoProcessWideGEMM(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	for _, p := range list(t) {
		for _, name := range append(p.GoFiles, p.CgoFiles...) {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "blas32" && sel.Sel.Name == "Use" {
					t.Errorf("%s: blas32.Use installs a GEMM for the whole process; pass it to the model in model.Compute (train.WithCompute)", fset.Position(sel.Pos()))
				}
				return true
			})
		}
	}
	t.Logf("%d files checked", checked)
}

// Imports flow one way: cmd → train → parallel → model / allreduce → leaves.
// These are the edges DESIGN.md forbids.
func TestImportRules(t *testing.T) {
	rules := []struct {
		from   string   // package (import path below the module)
		banned []string // project packages it must not import, directly or not
		why    string
	}{
		{"pkg/coord", []string{"pkg/model", "pkg/model/kernels", "pkg/train"}, "the coordinator binary links neither the layers nor the kernels"},
		{"pkg/coordinator", []string{"pkg/model", "pkg/model/kernels", "pkg/train", "pkg/allreduce"}, "the coordinator process is the control plane only"},
		{"cmd/coordinator", []string{"pkg/model", "pkg/model/kernels", "pkg/train"}, "the coordinator binary links neither the layers nor the kernels"},
		{"pkg/parallel", nil, "the one split is a leaf every room, down to the kernels, can use"},
		{"pkg/vecmath", nil, "a leaf both the model and the collectives use"},
		{"pkg/model", []string{"pkg/train", "pkg/coord", "pkg/allreduce", "pkg/ckpt", "pkg/parallel/ddp"}, "the model knows nothing about networks, Raft or checkpoints"},
		{"pkg/allreduce", []string{"pkg/model", "pkg/train", "pkg/coord"}, "collectives move float32s, they do not know the model"},
		{"pkg/jobspec", []string{"pkg/model", "pkg/train", "pkg/coord"}, "the spec is read by every room"},
		{"pkg/parallel/tp", []string{"pkg/train", "pkg/coord", "pkg/ckpt"}, "the layers know the model and a collective, not the loop"},
		{"pkg/parallel/ddp", []string{"pkg/model", "pkg/train", "pkg/coord", "pkg/ckpt"}, "gradient buckets move ranges of a buffer"},
	}
	deps := map[string][]string{}
	for _, p := range list(t) {
		deps[strings.TrimPrefix(p.ImportPath, module)] = p.Imports
	}
	// transitive closure of project imports
	var reach func(p string, seen map[string]bool)
	reach = func(p string, seen map[string]bool) {
		for _, imp := range deps[p] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			q := strings.TrimPrefix(imp, module)
			if !seen[q] {
				seen[q] = true
				reach(q, seen)
			}
		}
	}
	for _, r := range rules {
		if _, ok := deps[r.from]; !ok {
			t.Fatalf("%s: no such package", r.from)
		}
		seen := map[string]bool{}
		reach(r.from, seen)
		if r.banned == nil { // a leaf: nothing of the project
			for q := range seen {
				t.Errorf("%s imports %s, but it must import nothing of the project: %s", r.from, q, r.why)
			}
			continue
		}
		for _, b := range r.banned {
			if seen[b] {
				t.Errorf("%s imports %s (directly or through another package): %s", r.from, b, r.why)
			}
		}
		keys := make([]string, 0, len(seen))
		for q := range seen {
			keys = append(keys, q)
		}
		slices.Sort(keys)
		t.Logf("%s → %s", r.from, strings.Join(keys, " "))
	}
}
