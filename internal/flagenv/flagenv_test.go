package flagenv

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	t.Setenv("RINGMASTER_WORKER_TIMEOUT", "7s")
	t.Setenv("RINGMASTER_ID", "from-env")
	t.Setenv("RINGMASTER_CORES", "4")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	timeout := fs.Duration("worker-timeout", time.Second, "")
	id := fs.String("id", "", "")
	cores := fs.Int("cores", 1, "")
	if err := fs.Parse([]string{"-id", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs); err != nil {
		t.Fatal(err)
	}
	if *timeout != 7*time.Second || *cores != 4 {
		t.Errorf("env not applied: timeout %v, cores %d", *timeout, *cores)
	}
	if *id != "from-flag" {
		t.Errorf("env overrode an explicit flag: id %q", *id)
	}
	t.Setenv("RINGMASTER_CORES", "many")
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Int("cores", 1, "")
	if err := Apply(fs2); err == nil || !strings.Contains(err.Error(), "RINGMASTER_CORES") {
		t.Errorf("bad env value: err = %v, want one naming RINGMASTER_CORES", err)
	}
}
