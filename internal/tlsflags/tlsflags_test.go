package tlsflags

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

// Replicas sharing one certificates folder each claim a different worker
// certificate; a released claim is taken again; an exhausted pool or a
// pattern that matches nothing is a clear error.
func TestClaimGivesEachHolderItsOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsauth.InitDir(dir, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{10, 1, 2} {
		id := tlsauth.Identity{Role: tlsauth.RoleWorker, Name: fmt.Sprintf("worker-%d", i)}
		if _, err := ca.IssueToDir(dir, "", tlsauth.IssueOptions{Identity: id}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	var second interface{ Close() error }
	for i := range 3 {
		name, held, err := Claim(dir, "worker-*")
		if err != nil {
			t.Fatalf("claim %d: %v", i+1, err)
		}
		t.Cleanup(func() { held.Close() })
		if i == 1 {
			second = held
		}
		names = append(names, name)
	}
	if got := strings.Join(names, ","); got != "worker-1,worker-2,worker-10" {
		t.Fatalf("claimed %s, want worker-1,worker-2,worker-10", got)
	}
	if _, _, err := Claim(dir, "worker-*"); err == nil || !strings.Contains(err.Error(), "all 3 matching certificates") {
		t.Fatalf("fourth claim: %v, want the pool exhausted", err)
	}
	second.Close()
	if name, held, err := Claim(dir, "worker-*"); err != nil || name != "worker-2" {
		t.Fatalf("claim after worker-2 was released: %q, %v", name, err)
	} else {
		held.Close()
	}
	if _, _, err := Claim(dir, "trainer-*"); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("claim with no match: %v", err)
	}
}
